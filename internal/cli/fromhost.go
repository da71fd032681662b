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
	cfg.VIP.Prefix = lease.Prefix
	return fmt.Sprintf("leased VIP %s on %s from DHCP server %s for %v (client %s, cluster %q, VRID %d)",
		lease.Prefix, cfg.VIP.Interface, lease.Server, lease.Duration, id.MAC, cfg.VIP.ClusterName, cfg.VRRP.VRID), nil
}

// completeFromHost fills the interface from the VIP's own (on the node
// that holds it) or from the route to the VIP, refuses a VIP that is one
// of this host's own addresses, and on join drops the peer that is this
// host. It returns the VIP when a dead hapod left it on an interface: the
// caller removes it once every check has passed.
func completeFromHost(ctx context.Context, cfg *config.Config, host Host, join bool, manifestDir string) (stale *hostnet.Addr, err error) {
	if !cfg.VIP.Prefix.IsValid() {
		return nil, nil // Validate names the missing --vip
	}
	vip := cfg.VIP.Prefix.Addr()
	addrs, err := host.Addrs()
	if err != nil {
		return nil, err
	}
	local := map[netip.Addr]hostnet.Addr{}
	for _, a := range addrs {
		local[a.Prefix.Addr()] = a
	}
	if a, ok := local[vip]; ok {
		v, err := observeLocalVIP(host, a, ownManifestHasVIP(ctx, manifestDir, vip))
		if err != nil {
			return nil, err
		}
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
		cfg.VRRP.Peers = slices.DeleteFunc(cfg.VRRP.Peers, func(p netip.Addr) bool { _, ok := local[p]; return ok })
	}
	for _, p := range cfg.VRRP.Peers {
		if _, ok := local[p]; ok {
			return nil, &config.FieldError{Flag: "peer", Value: p.String(), Err: errors.New("is this host's own address; peers are the other nodes")}
		}
	}
	if cfg.VIP.Interface == "" {
		ifname, err := host.RouteInterface(vip)
		if err != nil {
			return nil, &config.FieldError{Flag: "interface", Err: fmt.Errorf("not given and not detected: %v", err)}
		}
		cfg.VIP.Interface = ifname
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
