package vip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// NewKeeper opens the VIP manager on the interface (as New does) and the
// sockets that follow the kernel: a netlink route socket to read the
// interface's state and, on an Ethernet link, a packet socket that asks
// and hears who has the VIP. Everything lives in the calling thread's
// network namespace, and so must the thread that calls Run: it opens the
// subscription and, after the interface was created again, the new
// sockets. Neither switches namespaces (setns needs CAP_SYS_ADMIN, which
// the pod does not have); in `hapod run` every thread is in the host's.
func NewKeeper(cfg KeeperConfig) (*Keeper, error) {
	vcfg, err := cfg.Config.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg.Config = vcfg
	if !cfg.Source.IsValid() {
		return nil, fmt.Errorf("%w: source address is not set", ErrInvalidConfig)
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("vip: netlink: %w", err)
	}
	bind := func() (*binding, error) {
		m, index, mac, err := open(cfg.Config)
		if err != nil {
			return nil, err
		}
		b := &binding{index: index, m: m}
		if mac != (hwAddr{}) {
			if b.claims, err = openClaims(index, mac, cfg.Source, cfg.Prefix.Addr()); err != nil {
				m.Close()
				return nil, fmt.Errorf("vip: probe socket on %s: %w", cfg.Interface, err)
			}
		}
		return b, nil
	}
	k, err := newKeeper(cfg, func() (Kernel, error) { return readKernel(h, cfg.Interface, cfg.Source, cfg.Prefix.Addr()) }, bind, watchKernel)
	if err != nil {
		h.Close()
		return nil, err
	}
	return k, nil
}

// readKernel reads the interface's state by name.
func readKernel(h *netlink.Handle, ifname string, source, vip netip.Addr) (Kernel, error) {
	link, err := h.LinkByName(ifname)
	if err != nil {
		if _, ok := errors.AsType[netlink.LinkNotFoundError](err); ok {
			return Kernel{}, nil
		}
		return Kernel{}, fmt.Errorf("vip: interface %q: %w", ifname, err)
	}
	attrs := link.Attrs()
	k := Kernel{Index: attrs.Index, Usable: usable(attrs.RawFlags, uint8(attrs.OperState))}
	list, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		if errors.Is(err, unix.ENODEV) {
			return Kernel{}, nil // deleted between the two reads
		}
		return Kernel{}, fmt.Errorf("vip: addresses of %q: %w", ifname, err)
	}
	for _, a := range list {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		switch ip.Unmap() {
		case source:
			k.Source = true
		case vip:
			k.VIP = true
		}
	}
	return k, nil
}

// watchKernel subscribes to link and address changes and sends one
// notification per burst of them; the receiver reads the state itself.
// The channel is closed when the subscription fails for good or ctx ends.
// The subscription lives in the calling thread's network namespace.
func watchKernel(ctx context.Context) (<-chan struct{}, error) {
	s, err := nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_LINK, unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR)
	if err != nil {
		return nil, fmt.Errorf("vip: subscribe to link and address changes: %w", err)
	}
	out := make(chan struct{}, 1)
	notify := func() {
		select {
		case out <- struct{}{}:
		default: // one is pending: it makes the receiver read the latest state
		}
	}
	go func() {
		<-ctx.Done()
		s.Close() // the socket is in the netpoller: Receive returns
	}()
	go func() {
		defer close(out)
		for {
			_, _, err := s.Receive()
			switch {
			case err == nil:
				notify()
			case errors.Is(err, unix.ENOBUFS):
				// Changes were lost, not the subscription: the state
				// read after this notification covers them.
				notify()
			case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
			default:
				return // closed (ctx ended) or broken
			}
		}
	}()
	return out, nil
}

// packetClaims is claimWatcher over an AF_PACKET socket that receives only
// frames that may claim the VIP (a BPF filter), and sends the probes.
type packetClaims struct {
	c     *packet.Conn
	mac   hwAddr
	vip   netip.Addr
	frame []byte // the probe
}

var _ claimWatcher = (*packetClaims)(nil)

func openClaims(index int, mac hwAddr, source, vip netip.Addr) (*packetClaims, error) {
	etherType := etherTypeARP
	if vip.Is6() {
		etherType = etherTypeIPv6
	}
	prog, err := bpf.Assemble(claimFilter(vip))
	if err != nil {
		return nil, err
	}
	c, err := packet.Listen(&net.Interface{Index: index}, packet.Raw, etherType, &packet.Config{Filter: prog})
	if err != nil {
		return nil, err
	}
	return &packetClaims{c: c, mac: mac, vip: vip, frame: probe(mac, source, vip)}, nil
}

// claimFilter passes ARP packets whose sender protocol address is vip and
// ICMPv6 Neighbor Advertisements whose target is vip; claimant checks
// them in full. Offsets count from the Ethernet header.
func claimFilter(vip netip.Addr) []bpf.Instruction {
	const keep, drop = 256, 0
	if vip.Is4() {
		a := vip.As4()
		return []bpf.Instruction{
			bpf.LoadAbsolute{Off: ethHeaderLen + 14, Size: 4}, // sender protocol address
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: be32(a[:]), SkipTrue: 1},
			bpf.RetConstant{Val: keep},
			bpf.RetConstant{Val: drop},
		}
	}
	a := vip.As16()
	const icmp = ethHeaderLen + ipv6HeaderLen
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: ethHeaderLen + 6, Size: 1}, // next header
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoICMPv6, SkipTrue: 11},
		bpf.LoadAbsolute{Off: icmp, Size: 1}, // ICMPv6 type
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: icmpv6NeighAdv, SkipTrue: 9},
	}
	for i := range 4 {
		prog = append(prog,
			bpf.LoadAbsolute{Off: icmp + 8 + uint32(4*i), Size: 4}, // target address
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: be32(a[4*i : 4*i+4]), SkipTrue: uint8(7 - 2*i)},
		)
	}
	return append(prog, bpf.RetConstant{Val: keep}, bpf.RetConstant{Val: drop})
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func (p *packetClaims) probe() error {
	_, err := p.c.WriteTo(p.frame, &packet.Addr{HardwareAddr: net.HardwareAddr(p.frame[0:6])})
	return err
}

func (p *packetClaims) next() (hwAddr, error) {
	buf := make([]byte, 256)
	for {
		n, _, err := p.c.ReadFrom(buf)
		if err != nil {
			return hwAddr{}, err
		}
		if mac, ok := claimant(buf[:n], p.vip, p.mac); ok {
			return mac, nil
		}
	}
}

func (p *packetClaims) close() error { return p.c.Close() }
