package vip

import (
	"fmt"
	"net/netip"
	"slices"
)

// Kernel is what the kernel says, at one moment, about the interface that
// carries the VIPs, looked up by name: the name is what the configuration
// gives, the index changes when the interface is deleted and created
// again (driver reload, NIC hot-plug, netplan).
type Kernel struct {
	// Index is the interface's index now; 0 when no interface has the
	// name.
	Index int
	// Usable: administratively up, with carrier, operationally up (see
	// usable).
	Usable bool
	// Source: the node's own address, which VRRP adverts are sent from,
	// is on the interface. `ip addr flush` takes it away with the VIP.
	Source bool
	// VIPs are the configured VIPs that are on the interface, with any
	// prefix length, in the configured order.
	VIPs []netip.Addr
}

// Desired is what hapod wants and what it has bound its sockets to.
type Desired struct {
	// Held: the VRRP speaker is active and wants the VIPs here (all of
	// them: they move together).
	Held bool
	// Bound is the interface index the VIP managers and the VRRP socket
	// use; 0 when they were never bound.
	Bound int
}

// Action is a step Reconcile asks the Group to perform, in order.
type Action interface{ isAction() }

// Rebind asks for the VIP managers (address table, announcement socket)
// and the VRRP socket to be opened again on the interface's new index:
// sockets bound to a deleted interface neither send nor receive.
type Rebind struct {
	Index  int
	Reason string
}

// SetLink tells the VRRP speaker whether it can take part in the
// protocol on this interface. Down makes it leave Active (releasing the
// VIP) or stay in Init, so that a backup takes over.
type SetLink struct {
	Up     bool
	Reason string
}

// AddVIP asks for one VIP to be added and announced again.
type AddVIP struct {
	VIP    netip.Addr
	Reason string
}

// RemoveVIP asks for one VIP to be removed.
type RemoveVIP struct {
	VIP    netip.Addr
	Reason string
}

func (Rebind) isAction()    {}
func (SetLink) isAction()   {}
func (AddVIP) isAction()    {}
func (RemoveVIP) isAction() {}

// Reconcile compares what hapod wants with what the kernel has and
// returns what to do about it. vips are the group's VIPs, in order. It is
// pure: the Group reads the kernel and performs the actions.
//
// The rules, in order:
//   - An interface with a new index gets the sockets bound to it first,
//     so that everything after acts on the interface that exists.
//   - The speaker's link state is "up" only when the interface exists, is
//     usable and carries the node's own address: without that address no
//     advert can leave, and a node that holds the VIPs without advertising
//     is one that no backup replaces. The link is one for all the VIPs, so
//     the actions carry it once; the speaker ignores a repeat.
//   - Each VIP on its own, in order: active and usable without it (removed
//     by hand, `ip addr flush`, netplan apply, a DHCP client dropping
//     secondaries): add it and announce it again. Not active with it on
//     the interface (a missed release, an address added by hand): remove
//     it, or two nodes answer ARP for it. The VIPs in line get no action.
func Reconcile(d Desired, k Kernel, ifname string, vips []netip.Addr, source netip.Addr) []Action {
	if k.Index == 0 {
		return []Action{SetLink{Up: false, Reason: fmt.Sprintf("interface %s does not exist", ifname)}}
	}
	var acts []Action
	if k.Index != d.Bound {
		reason := fmt.Sprintf("interface %s appeared with index %d", ifname, k.Index)
		if d.Bound != 0 {
			reason = fmt.Sprintf("interface %s was created again (index %d, was %d)", ifname, k.Index, d.Bound)
		}
		acts = append(acts, Rebind{Index: k.Index, Reason: reason})
	}
	up := SetLink{Up: true, Reason: fmt.Sprintf("interface %s is usable", ifname)}
	switch {
	case !k.Usable:
		up = SetLink{Up: false, Reason: fmt.Sprintf("interface %s is down or has no carrier", ifname)}
	case !k.Source:
		up = SetLink{Up: false, Reason: fmt.Sprintf("interface %s lost this node's address %s, which VRRP adverts are sent from", ifname, source)}
	}
	acts = append(acts, up)
	for _, v := range vips {
		on := slices.Contains(k.VIPs, v)
		switch {
		case d.Held && up.Up && !on:
			acts = append(acts, AddVIP{VIP: v, Reason: fmt.Sprintf("%s is missing from %s while this node is active", v, ifname)})
		case !d.Held && on:
			acts = append(acts, RemoveVIP{VIP: v, Reason: fmt.Sprintf("%s is on %s while this node is not active", v, ifname)})
		}
	}
	return acts
}
