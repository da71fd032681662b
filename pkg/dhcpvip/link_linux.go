//go:build linux

package dhcpvip

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Link is the macvlan child of the VIP's interface that carries the
// virtual MAC, with nclient4's raw broadcast UDP socket on port 68 bound to
// it. Frames leave with the virtual MAC as their source, so a switch with
// DHCP snooping sees chaddr match the source MAC, and broadcast replies
// reach the socket without the host's IP stack.
//
// The link is silent by itself: no IPv4 address, ARP off, no IPv6
// link-local address (address generation "none"), so a macvlan with the
// same MAC on every node sends nothing until its Keeper is active.
type Link struct {
	name string
	h    *netlink.Handle
	link netlink.Link
	conn net.PacketConn
}

// OpenLink creates the macvlan name (mode bridge) on parent with mac, brings
// it up and opens the DHCP client socket on it. A macvlan of that name on
// the same parent, left by a killed hapod, is replaced; any other link of
// that name is an error. Everything happens in the calling thread's network
// namespace, which the link keeps for Close.
func OpenLink(parent, name string, mac net.HardwareAddr) (*Link, error) {
	if name == "" || len(name) > maxIfNameLen {
		return nil, fmt.Errorf("%w: link name %q must be 1..%d bytes", ErrInvalidConfig, name, maxIfNameLen)
	}
	if len(mac) != 6 {
		return nil, fmt.Errorf("%w: MAC %q is not 6 bytes", ErrInvalidConfig, mac)
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("dhcpvip: netlink: %w", err)
	}
	l, err := openLink(h, parent, name, mac)
	if err != nil {
		h.Close()
		return nil, err
	}
	return l, nil
}

func openLink(h *netlink.Handle, parent, name string, mac net.HardwareAddr) (*Link, error) {
	p, err := h.LinkByName(parent)
	if err != nil {
		return nil, fmt.Errorf("dhcpvip: interface %s: %w", parent, err)
	}
	if old, err := h.LinkByName(name); err == nil {
		mv, ok := old.(*netlink.Macvlan)
		if !ok || mv.Attrs().ParentIndex != p.Attrs().Index {
			return nil, fmt.Errorf("dhcpvip: link name %s is taken by a %s that is not a macvlan of %s", name, old.Type(), parent)
		}
		if err := h.LinkDel(old); err != nil {
			return nil, fmt.Errorf("dhcpvip: remove the stale macvlan %s: %w", name, err)
		}
	} else if !errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil, fmt.Errorf("dhcpvip: look up %s: %w", name, err)
	}

	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.ParentIndex = p.Attrs().Index
	attrs.HardwareAddr = mac
	mv := &netlink.Macvlan{LinkAttrs: attrs, Mode: netlink.MACVLAN_MODE_BRIDGE}
	if err := h.LinkAdd(mv); err != nil {
		return nil, fmt.Errorf("dhcpvip: create macvlan %s on %s: %w", name, parent, err)
	}
	l := &Link{name: name, h: h, link: mv}
	if err := l.setUp(); err != nil {
		_ = h.LinkDel(mv)
		return nil, err
	}
	return l, nil
}

func (l *Link) setUp() error {
	if err := l.h.LinkSetARPOff(l.link); err != nil {
		return fmt.Errorf("dhcpvip: ARP off on %s: %w", l.name, err)
	}
	// Before the link goes up, or the kernel has already made a
	// link-local address and sent DAD and router solicitations from the
	// shared MAC. A kernel without IPv6 refuses the attribute: nothing to
	// silence there.
	if err := l.h.LinkSetIP6AddrGenMode(l.link, nl.IN6_ADDR_GEN_MODE_NONE); err != nil &&
		!errors.Is(err, unix.EAFNOSUPPORT) && !errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("dhcpvip: IPv6 address generation off on %s: %w", l.name, err)
	}
	if err := l.h.LinkSetUp(l.link); err != nil {
		if errors.Is(err, unix.EADDRINUSE) {
			// Linux refuses two macvlans up with one MAC on one parent.
			return fmt.Errorf("dhcpvip: set %s up: %w: another macvlan of this interface has MAC %s up (a running hapod keeps this lease)",
				l.name, err, l.link.Attrs().HardwareAddr)
		}
		return fmt.Errorf("dhcpvip: set %s up: %w", l.name, err)
	}
	conn, err := nclient4.NewRawUDPConn(l.name, dhcpv4.ClientPort)
	if err != nil {
		return fmt.Errorf("dhcpvip: DHCP socket on %s: %w", l.name, err)
	}
	l.conn = conn
	return nil
}

// Name is the macvlan's name.
func (l *Link) Name() string { return l.name }

// Conn is the DHCP client socket: every write is broadcast from the virtual
// MAC, reads return the DHCP payload of UDP packets to port 68.
func (l *Link) Conn() net.PacketConn { return l.conn }

// Close closes the socket and removes the macvlan.
func (l *Link) Close() error {
	err := l.conn.Close()
	if derr := l.h.LinkDel(l.link); derr != nil {
		err = errors.Join(err, fmt.Errorf("dhcpvip: remove macvlan %s: %w", l.name, derr))
	}
	l.h.Close()
	return err
}

// DialKeeper creates the macvlan for cfg.Identity on cfg.Interface and
// returns a Keeper on it, inactive. Close removes the macvlan (and never
// releases the lease).
func DialKeeper(cfg Config) (*Keeper, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Interface == "" {
		return nil, fmt.Errorf("%w: interface missing", ErrInvalidConfig)
	}
	l, err := OpenLink(cfg.Interface, cfg.linkName(DefaultLinkName), cfg.Identity.MAC)
	if err != nil {
		return nil, err
	}
	k, err := newKeeper(l.Conn(), l.Close, cfg)
	if err != nil {
		_ = l.Close()
		return nil, err
	}
	return k, nil
}

// Acquire obtains a lease for `hapod init`: it creates a macvlan on
// cfg.Interface (named DefaultAcquireLinkName unless cfg.LinkName says
// otherwise, so it never replaces a running Keeper's link), runs Discover/Offer/Request/ACK with cfg.Identity (asking
// for cfg.Want when set), removes the macvlan and returns the lease. It
// waits at most cfg.Timeout (default 10 s) and fails with ErrNoServer
// ("no DHCP server answered on eth0 within 10s") when nothing answered.
// The lease is never released.
func Acquire(ctx context.Context, cfg Config) (Lease, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Lease{}, err
	}
	if cfg.Interface == "" {
		return Lease{}, fmt.Errorf("%w: interface missing", ErrInvalidConfig)
	}
	name := cfg.linkName(DefaultAcquireLinkName)
	l, err := OpenLink(cfg.Interface, name, cfg.Identity.MAC)
	if err != nil {
		return Lease{}, err
	}
	lease, err := AcquireConn(ctx, l.Conn(), cfg)
	if cerr := l.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return lease, err
}
