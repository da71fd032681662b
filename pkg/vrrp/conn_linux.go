package vrrp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// dscpCS6 is the TOS / traffic class byte of adverts: DSCP CS6 (network
// control, 48<<2), as keepalived sends them, so that a congested link
// queues them ahead of data.
const dscpCS6 = 0xc0

// Dial opens a raw IP socket for VRRP (protocol 112) on cfg.Interface, IPv4
// or IPv6 by the family of cfg.Source. It needs CAP_NET_RAW.
//
// The socket is bound to the interface, sends with TTL / hop limit 255 and
// DSCP CS6 from cfg.Source, does not loop its multicast back, and, in
// multicast mode, joins 224.0.0.18 or ff02::12 on the interface.
func Dial(cfg ConnConfig) (*RawConn, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("vrrp: interface %q: %w", cfg.Interface, err)
	}
	var pc packetConn
	if cfg.Source.Unmap().Is4() {
		pc, err = dial4(ifi, cfg)
	} else {
		pc, err = dial6(ifi, cfg)
	}
	if err != nil {
		return nil, err
	}
	c, err := newConn(cfg, ifi.Index, pc)
	if err != nil {
		pc.Close()
		return nil, err
	}
	return c, nil
}

// listen opens a raw socket bound to the interface, so it sees no other
// link's VRRP traffic (the arrival interface is checked as well).
func listen(network, ifname string) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.BindToDevice(int(fd), ifname)
		}); err != nil {
			return err
		}
		return serr
	}}
	addr := "0.0.0.0"
	if network == "ip6:112" {
		addr = "::"
	}
	c, err := lc.ListenPacket(context.Background(), network, addr)
	if err != nil {
		return nil, fmt.Errorf("vrrp: open %s socket on %s: %w", network, ifname, err)
	}
	return c, nil
}

// sockOpt is one socket setting made when a conn is opened.
type sockOpt struct {
	what string
	set  func() error
}

// setOpts makes the settings in order; at the first failure it closes c
// and names the setting and the interface.
func setOpts(c net.PacketConn, ifname string, opts []sockOpt) error {
	for _, o := range opts {
		if err := o.set(); err != nil {
			c.Close()
			return fmt.Errorf("vrrp: %s on %s: %w", o.what, ifname, err)
		}
	}
	return nil
}

// conn4 is the IPv4 packetConn.
type conn4 struct {
	c       net.PacketConn
	pc      *ipv4.PacketConn
	src     net.IP
	ifIndex int
}

func dial4(ifi *net.Interface, cfg ConnConfig) (*conn4, error) {
	c, err := listen("ip4:112", ifi.Name)
	if err != nil {
		return nil, err
	}
	pc := ipv4.NewPacketConn(c)
	// The TTL tells a link-local sender from a forwarded packet; the
	// destination is in the VRRPv3 checksum; the interface is checked.
	steps := []sockOpt{
		{"enable control messages", func() error {
			return pc.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true)
		}},
		{"set TOS", func() error { return pc.SetTOS(dscpCS6) }},
		{"set TTL", func() error { return pc.SetTTL(255) }},
		{"set multicast TTL", func() error { return pc.SetMulticastTTL(255) }},
		{"set multicast interface", func() error { return pc.SetMulticastInterface(ifi) }},
		{"disable multicast loopback", func() error { return pc.SetMulticastLoopback(false) }},
	}
	if len(cfg.Peers) == 0 {
		steps = append(steps, sockOpt{"join 224.0.0.18", func() error {
			return pc.JoinGroup(ifi, &net.IPAddr{IP: GroupIPv4.AsSlice()})
		}})
	}
	if err := setOpts(c, ifi.Name, steps); err != nil {
		return nil, err
	}
	return &conn4{c: c, pc: pc, src: cfg.Source.Unmap().AsSlice(), ifIndex: ifi.Index}, nil
}

func (c *conn4) ReadFrom(b []byte) (int, datagram, error) {
	n, cm, from, err := c.pc.ReadFrom(b)
	if err != nil {
		return 0, datagram{}, err
	}
	d := datagram{HopLimit: -1}
	if ia, ok := from.(*net.IPAddr); ok {
		d.Src = addrOf(ia.IP)
	}
	if cm != nil {
		d.HopLimit, d.Dst, d.IfIndex = cm.TTL, addrOf(cm.Dst), cm.IfIndex
	}
	return n, d, nil
}

func (c *conn4) WriteTo(b []byte, dst netip.Addr) error {
	// IP_PKTINFO picks the source address and the outgoing interface,
	// unicast included.
	cm := &ipv4.ControlMessage{Src: c.src, IfIndex: c.ifIndex}
	_, err := c.pc.WriteTo(b, cm, &net.IPAddr{IP: dst.AsSlice()})
	return err
}

func (c *conn4) Close() error { return c.c.Close() }

// conn6 is the IPv6 packetConn. The checksum is computed here, not by the
// kernel (IPV6_CHECKSUM stays off), so that bad ones are counted as drops
// instead of vanishing in the kernel.
type conn6 struct {
	c       net.PacketConn
	pc      *ipv6.PacketConn
	src     net.IP
	ifIndex int
}

func dial6(ifi *net.Interface, cfg ConnConfig) (*conn6, error) {
	c, err := listen("ip6:112", ifi.Name)
	if err != nil {
		return nil, err
	}
	pc := ipv6.NewPacketConn(c)
	steps := []sockOpt{
		{"enable control messages", func() error {
			return pc.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true)
		}},
		{"set traffic class", func() error { return pc.SetTrafficClass(dscpCS6) }},
		{"set hop limit", func() error { return pc.SetHopLimit(255) }},
		{"set multicast hop limit", func() error { return pc.SetMulticastHopLimit(255) }},
		{"set multicast interface", func() error { return pc.SetMulticastInterface(ifi) }},
		{"disable multicast loopback", func() error { return pc.SetMulticastLoopback(false) }},
	}
	if len(cfg.Peers) == 0 {
		steps = append(steps, sockOpt{"join ff02::12", func() error {
			return pc.JoinGroup(ifi, &net.IPAddr{IP: GroupIPv6.AsSlice()})
		}})
	}
	if err := setOpts(c, ifi.Name, steps); err != nil {
		return nil, err
	}
	return &conn6{c: c, pc: pc, src: cfg.Source.AsSlice(), ifIndex: ifi.Index}, nil
}

func (c *conn6) ReadFrom(b []byte) (int, datagram, error) {
	n, cm, from, err := c.pc.ReadFrom(b)
	if err != nil {
		return 0, datagram{}, err
	}
	d := datagram{HopLimit: -1}
	if ia, ok := from.(*net.IPAddr); ok {
		d.Src = addrOf(ia.IP)
	}
	if cm != nil {
		d.HopLimit, d.Dst, d.IfIndex = cm.HopLimit, addrOf(cm.Dst), cm.IfIndex
	}
	return n, d, nil
}

func (c *conn6) WriteTo(b []byte, dst netip.Addr) error {
	cm := &ipv6.ControlMessage{Src: c.src, IfIndex: c.ifIndex, HopLimit: 255, TrafficClass: dscpCS6}
	to := &net.IPAddr{IP: dst.AsSlice()}
	if dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast() {
		// The index, not the name: Go resolves a zone name in the
		// network namespace of the calling thread, which need not be
		// the socket's.
		to.Zone = strconv.Itoa(c.ifIndex)
	}
	_, err := c.pc.WriteTo(b, cm, to)
	return err
}

func (c *conn6) Close() error { return c.c.Close() }

// addrOf converts a net.IP from the socket API, unmapping 4-in-6 forms.
func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}
