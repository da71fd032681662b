package cli

import (
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

// completeFromHost fills the interface from the VIP's own (on the node
// that holds it) or from the route to the VIP, refuses a VIP that is one
// of this host's own addresses, and on join drops the peer that is this
// host. It returns the VIP when a dead hapod left it on an interface: the
// caller removes it once every check has passed. It asks nothing: f holds
// what the host showed.
func completeFromHost(cfg *config.Config, f hostFacts, join bool) (stale *hostnet.Addr, err error) {
	if !cfg.VIP.Primary().IsValid() {
		return nil, nil // Validate names the missing --vip
	}
	vip := cfg.VIP.Primary().Addr()
	if f.AddrsErr != nil {
		return nil, f.AddrsErr
	}
	local := map[netip.Addr]bool{}
	for _, a := range f.Addrs {
		local[a.Prefix.Addr()] = true
	}
	if v := f.Local; v != nil {
		if f.LocalErr != nil {
			return nil, f.LocalErr
		}
		a := v.Addr
		switch v.classify() {
		case vipNodeAddress:
			return nil, &config.FieldError{Flag: "vip", Value: vip.String(), Err: fmt.Errorf(
				"already an address of %s on this host: the VIP must be an address no node owns", a.Interface)}
		case vipStale:
			stale = &a
		}
		// Held or left behind, the VIP is on the interface hapod chose
		// for it; the route to it now goes over lo. The manifest comes
		// out as on a node without the VIP.
		if cfg.VIP.Interface == "" {
			cfg.VIP.Interface = a.Interface
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
		if f.RouteErr != nil {
			return nil, &config.FieldError{Flag: "interface", Err: fmt.Errorf("not given and not detected: %v", f.RouteErr)}
		}
		cfg.VIP.Interface = f.Route
	}
	return stale, nil
}

// ownManifestHasVIP reports whether the manifest directory (dir, "" for
// `hapod manifest`) already holds a hapod manifest for vip.
func ownManifestHasVIP(ctx context.Context, dir string, vip netip.Addr) bool {
	path := manifestPath(dir)
	if path == "" {
		return false
	}
	p, ok, err := manifestVIP(ctx, path)
	return err == nil && ok && p.Addr() == vip
}
