package vip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// New resolves the interface, checks cfg and opens the sockets: a netlink
// route socket for addresses and, when the interface has an Ethernet
// address, an AF_PACKET socket for the announcements (CAP_NET_RAW). Both
// are bound to the calling thread's network namespace and the interface's
// index at this moment: if the interface is deleted and created again,
// make a new Manager.
func New(cfg Config) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ls, err := openLink(cfg.Interface, cfg.Label, cfg.Prefix.Addr().Is6())
	if err != nil {
		return nil, err
	}
	m := newManager(cfg, ls.table, nil, nil)
	if ls.sender == nil {
		m.log.Info("interface has no Ethernet address; the VIP will not be announced", "hwaddr", ls.hw.String())
		return m, nil
	}
	m.sender, m.frames = ls.sender, announcement(ls.mac, cfg.Prefix.Addr(), ls.router)
	return m, nil
}

// linkSockets are what VIPs of one family need on one interface index:
// the address table and, on an Ethernet link, the announcement socket.
type linkSockets struct {
	index  int
	hw     net.HardwareAddr // as the kernel has it
	table  *netlinkTable
	sender *packetSender // nil when the link has no Ethernet address
	mac    hwAddr        // hw, when sender is set
	router bool          // IPv6 and the interface forwards: the NA's Router flag
}

// openLink resolves the interface and opens its sockets for IPv4 or IPv6
// VIPs with the IPv4 label given.
func openLink(ifname, label string, ipv6 bool) (*linkSockets, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("vip: netlink: %w", err)
	}
	link, err := h.LinkByName(ifname)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("vip: interface %q: %w", ifname, err)
	}
	attrs := link.Attrs()
	ls := &linkSockets{
		index: attrs.Index,
		hw:    attrs.HardwareAddr,
		table: &netlinkTable{
			h:     h,
			link:  &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: attrs.Index, Name: attrs.Name}},
			label: label,
		},
	}
	if len(attrs.HardwareAddr) != len(hwAddr{}) {
		return ls, nil
	}
	ls.mac = hwAddr(attrs.HardwareAddr)
	etherType := etherTypeARP
	if ipv6 {
		etherType = etherTypeIPv6
		// Read once, here, in the namespace New runs in: /proc/sys/net
		// follows the reading thread's namespace.
		ls.router = ipv6Forwarding(attrs.Name)
	}
	if ls.sender, err = openPacketSender(attrs.Index, etherType); err != nil {
		h.Close()
		return nil, fmt.Errorf("vip: announce socket on %s: %w", attrs.Name, err)
	}
	return ls, nil
}

// netlinkTable is addrTable over a netlink handle.
type netlinkTable struct {
	h     *netlink.Handle
	link  netlink.Link
	label string
}

var _ addrTable = (*netlinkTable)(nil)

func (t *netlinkTable) add(p netip.Prefix) error {
	a := &netlink.Addr{IPNet: &net.IPNet{
		IP:   p.Addr().AsSlice(),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}}
	if p.Addr().Is4() {
		a.Label = t.label
		if b := broadcast(p); b.IsValid() {
			a.Broadcast = b.AsSlice()
		}
	} else {
		// No DAD: the VIP moves between nodes on purpose, and a tentative
		// address can neither be bound nor announced for a second or more.
		a.Flags = unix.IFA_F_NODAD
		// Preferred lifetime 0 (deprecated, still valid forever) keeps the
		// kernel from picking the VIP as the source of the node's own
		// outgoing connections, which would break when the VIP moves.
		// Incoming connections to it are unaffected.
		a.PreferedLft = 0
		a.ValidLft = int(^uint32(0)) // INFINITY_LIFE_TIME
	}
	err := t.h.AddrAdd(t.link, a)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

func (t *netlinkTable) remove(addr netip.Addr) (bool, error) {
	family := netlink.FAMILY_V4
	if addr.Is6() {
		family = netlink.FAMILY_V6
	}
	list, err := t.h.AddrList(t.link, family)
	if err != nil {
		return false, err
	}
	removed := false
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP); !ok || ip.Unmap() != addr {
			continue
		}
		err := t.h.AddrDel(t.link, &netlink.Addr{IPNet: a.IPNet, Peer: a.Peer})
		if errors.Is(err, unix.EADDRNOTAVAIL) {
			continue // gone between list and delete
		}
		if err != nil {
			return removed, err
		}
		removed = true
	}
	return removed, nil
}

func (t *netlinkTable) close() error {
	t.h.Close()
	return nil
}

// packetSender is frameSender over an AF_PACKET SOCK_RAW socket.
type packetSender struct {
	c *packet.Conn
}

var _ frameSender = (*packetSender)(nil)

// openPacketSender opens a raw packet socket on the interface. Binding
// needs a protocol, and a bound packet socket queues every matching frame
// it sees; a filter that accepts nothing keeps this send-only socket from
// filling its receive buffer with the segment's ARP or IPv6 traffic.
func openPacketSender(ifindex int, etherType int) (*packetSender, error) {
	dropAll, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err != nil {
		return nil, err
	}
	c, err := packet.Listen(&net.Interface{Index: ifindex}, packet.Raw, etherType, &packet.Config{Filter: dropAll})
	if err != nil {
		return nil, err
	}
	return &packetSender{c: c}, nil
}

func (s *packetSender) send(frame []byte) error {
	// SOCK_RAW takes the frame as is; the address only has to be present.
	_, err := s.c.WriteTo(frame, &packet.Addr{HardwareAddr: net.HardwareAddr(frame[0:6])})
	return err
}

func (s *packetSender) close() error {
	return s.c.Close()
}

// ipv6Forwarding reports whether the interface forwards IPv6, which the
// NA's Router flag must reflect. An unreadable sysctl counts as "no".
func ipv6Forwarding(ifname string) bool {
	b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + ifname + "/forwarding")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// Held reports whether addr is on the interface, with any prefix length,
// in the calling thread's network namespace.
func Held(ifname string, addr netip.Addr) (bool, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return false, fmt.Errorf("vip: interface %q: %w", ifname, err)
	}
	family := netlink.FAMILY_V4
	if addr.Is6() {
		family = netlink.FAMILY_V6
	}
	list, err := netlink.AddrList(link, family)
	if err != nil {
		return false, fmt.Errorf("vip: addresses of %q: %w", ifname, err)
	}
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
			return true, nil
		}
	}
	return false, nil
}
