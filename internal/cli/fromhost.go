package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/hapod/hapod/internal/hostnet"
	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/dhcpvip"
)

// What init and join take from this host: a VIP leased from DHCP, the
// VIP's interface, the peer that is this node; and what they refuse: a VIP
// or a peer that is one of its own addresses.

// leaseVIP leases the VIP from the site's DHCP server with the cluster's
// identity (a virtual MAC and client ID derived from the VRID and the
// cluster name, the same on every node), before anything else is decided.
// It returns a note saying what it leased.
func leaseVIP(ctx context.Context, cfg *config.Config, host Host) (string, error) {
	if cfg.VIP.Interface == "" {
		ifname, err := host.DefaultInterface()
		if err != nil {
			return "", &config.FieldError{Flag: "interface", Err: fmt.Errorf("not given and not detected for --vip dhcp: %v", err)}
		}
		cfg.VIP.Interface = ifname
	}
	cfg.Complete() // the VRID, which the DHCP identity derives from
	id := dhcpvip.NewIdentity(cfg.VRRP.VRID, cfg.VIP.ClusterName)
	lease, err := host.LeaseVIP(ctx, dhcpvip.Config{
		Interface: cfg.VIP.Interface,
		Identity:  id,
		Hostname:  "hapod-" + cfg.VIP.ClusterName,
	})
	if err != nil {
		return "", &config.FieldError{Flag: "vip", Value: "dhcp", Err: err}
	}
	cfg.VIP.Prefixes = []netip.Prefix{lease.Prefix}
	return fmt.Sprintf("leased VIP %s on %s from DHCP server %s for %v (client %s, cluster %q, VRID %d)",
		lease.Prefix, cfg.VIP.Interface, lease.Server, lease.Duration, id.MAC, cfg.VIP.ClusterName, cfg.VRRP.VRID), nil
}

// completeFromHost fills the interface (see vipInterface), refuses a VIP
// that is one of this host's own addresses, and on join drops the peers
// that are this host. It returns the VIPs a dead hapod left on an
// interface: the caller removes them once every check has passed. It
// asks nothing: f holds what the host showed.
func completeFromHost(cfg *config.Config, f hostFacts, join bool) (stale []hostnet.Addr, err error) {
	if !cfg.VIP.Primary().IsValid() {
		return nil, nil // Validate names the missing --vip
	}
	if f.AddrsErr != nil {
		return nil, f.AddrsErr
	}
	if f.LocalErr != nil {
		return nil, f.LocalErr
	}
	local := map[netip.Addr]bool{}
	for _, a := range f.Addrs {
		local[a.Prefix.Addr()] = true
	}
	for _, v := range f.Local {
		switch v.classify() {
		case vipNodeAddress:
			return nil, &config.FieldError{Flag: "vip", Value: v.Addr.Prefix.Addr().String(), Err: fmt.Errorf(
				"already an address of %s on this host: the VIP must be an address no node owns", v.Addr.Interface)}
		case vipStale:
			stale = append(stale, v.Addr)
		}
	}
	if join {
		cfg.VRRP.Peers = slices.DeleteFunc(cfg.VRRP.Peers, func(p netip.Addr) bool { return local[p] })
	}
	for _, p := range cfg.VRRP.Peers {
		if local[p] {
			return nil, &config.FieldError{Flag: "peer", Value: p.String(), Err: errors.New("is this host's own address; peers are the other nodes")}
		}
	}
	if cfg.VIP.Interface == "" {
		if cfg.VIP.Interface, err = vipInterface(f.Local, f.Routes); err != nil {
			return nil, err
		}
	}
	return stale, nil
}

// vipRoute is the route to a VIP that is not on this host: the interface
// it leads to, or why there is none.
type vipRoute struct {
	VIP       netip.Addr
	Interface string
	Err       error
}

// vipInterface is the interface of every VIP when --interface is not
// given. A VIP held here or left behind is on the interface hapod chose
// for it (the route to it now goes over lo, and the manifest comes out as
// on a node without it); any other leads where the route to it leads.
// hapod holds all its VIPs on one interface, so they must agree. A VIP
// with no route is left to the others: the preflight check then says
// whether the interface has an address of its family.
func vipInterface(local []localVIP, routes []vipRoute) (string, error) {
	type seen struct{ vip, ifname, how string }
	var found []seen
	for _, v := range local {
		found = append(found, seen{v.Addr.Prefix.Addr().String(), v.Addr.Interface, "is on"})
	}
	var routeErr error
	for _, r := range routes {
		if r.Err != nil {
			routeErr = cmp.Or(routeErr, r.Err)
			continue
		}
		found = append(found, seen{r.VIP.String(), r.Interface, "is routed to"})
	}
	if len(found) == 0 {
		return "", &config.FieldError{Flag: "interface", Err: fmt.Errorf("not given and not detected: %v", routeErr)}
	}
	for _, s := range found[1:] {
		if s.ifname != found[0].ifname {
			return "", &config.FieldError{Flag: "interface", Err: fmt.Errorf(
				"not given, and the VIPs are on different interfaces: %s %s %s, %s %s %s; hapod holds all its VIPs on one interface: pass --interface, one with an address of each VIP's family",
				found[0].vip, found[0].how, found[0].ifname, s.vip, s.how, s.ifname)}
		}
	}
	return found[0].ifname, nil
}

// ownManifestVIPs returns the VIPs of the hapod manifest already in the
// manifest directory (dir, "" for `hapod manifest`); none without one.
func ownManifestVIPs(ctx context.Context, dir string) config.VIP {
	path := manifestPath(dir)
	if path == "" {
		return config.VIP{}
	}
	v, ok, err := manifestVIPs(ctx, path)
	if err != nil || !ok {
		return config.VIP{}
	}
	return v
}
