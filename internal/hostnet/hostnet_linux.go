package hostnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
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
			out = append(out, Addr{
				Prefix:     netip.PrefixFrom(ip.Unmap(), bits),
				Interface:  l.Attrs().Name,
				Secondary:  a.Flags&unix.IFA_F_SECONDARY != 0,
				Deprecated: a.Flags&unix.IFA_F_DEPRECATED != 0,
			})
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

// RemoveAddr takes a off its interface; an address already gone is fine.
func RemoveAddr(a Addr) error {
	link, err := netlink.LinkByName(a.Interface)
	if err != nil {
		return fmt.Errorf("interface %q: %w", a.Interface, err)
	}
	ip := a.Prefix.Addr()
	nl := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(a.Prefix.Bits(), ip.BitLen())}}
	if err := netlink.AddrDel(link, nl); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("remove %s from %s: %w", a.Prefix, a.Interface, err)
	}
	return nil
}

// Listening reports whether a process listens on a TCP port of addr (not
// the wildcard) in this network namespace.
func Listening(addr netip.Addr) (bool, error) {
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if errors.Is(err, os.ErrNotExist) {
			continue // no IPv6
		}
		if err != nil {
			return false, err
		}
		ports, err := ParseProcNetTCP(f)
		f.Close()
		if err != nil {
			return false, fmt.Errorf("%s: %w", file, err)
		}
		for _, p := range ports {
			if p.Addr() == addr {
				return true, nil
			}
		}
	}
	return false, nil
}
