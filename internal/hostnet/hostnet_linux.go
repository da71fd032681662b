package hostnet

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// RouteInterface returns the interface the kernel would use to reach addr.
func RouteInterface(addr netip.Addr) (string, error) {
	routes, err := netlink.RouteGet(net.IP(addr.AsSlice()))
	if err != nil {
		return "", fmt.Errorf("no route to %s: %w", addr, err)
	}
	for _, r := range routes {
		if r.LinkIndex == 0 {
			continue
		}
		link, err := netlink.LinkByIndex(r.LinkIndex)
		if err != nil {
			return "", fmt.Errorf("route to %s: %w", addr, err)
		}
		if link.Attrs().Name == "lo" {
			return "", fmt.Errorf("the route to %s goes over the loopback interface: is the VIP already a local address?", addr)
		}
		return link.Attrs().Name, nil
	}
	return "", fmt.Errorf("no route to %s", addr)
}

// Addrs returns every address configured on the host's interfaces.
func Addrs() ([]Addr, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []Addr
	for _, l := range links {
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if !ok {
				continue
			}
			bits, _ := a.Mask.Size()
			out = append(out, Addr{Prefix: netip.PrefixFrom(ip.Unmap(), bits), Interface: l.Attrs().Name})
		}
	}
	return out, nil
}

// DefaultInterface returns the interface of the IPv4 default route: where
// a DHCP-leased VIP goes when no interface is named.
func DefaultInterface() (string, error) {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return "", fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.LinkIndex != 0 && (r.Dst == nil || isZeroMask(r.Dst.Mask)) {
			link, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil {
				return "", err
			}
			return link.Attrs().Name, nil
		}
	}
	return "", fmt.Errorf("no IPv4 default route")
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}
