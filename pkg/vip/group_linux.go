package vip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// NewGroup checks cfg and opens, on the interface, the sockets the VIPs
// share: a netlink route socket for their addresses and one for reading
// the interface's state, and, on an Ethernet link, one packet socket
// that announces them and one that asks and hears who else has them.
// Everything lives in the calling thread's network namespace, and so must
// the thread that calls Run: it opens the subscription and, after the
// interface was created again, the new sockets. Neither switches
// namespaces (setns needs CAP_SYS_ADMIN, which the pod does not have); in
// `hapod run` every thread is in the host's.
func NewGroup(cfg GroupConfig) (*Group, error) {
	cfg, vips, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	addrs := make([]netip.Addr, len(vips))
	for i, c := range vips {
		addrs[i] = c.Prefix.Addr()
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("vip: netlink: %w", err)
	}
	log := cfg.Logger.With("interface", cfg.Interface)
	bind := func() (*binding, error) {
		ls, err := openLink(cfg.Interface, cfg.Label, addrs[0].Is6())
		if err != nil {
			return nil, err
		}
		b := &binding{index: ls.index, shared: []interface{ close() error }{ls.table}}
		if ls.sender == nil {
			log.Info("interface has no Ethernet address; the VIPs will not be announced", "hwaddr", ls.hw.String())
		} else {
			b.shared = append(b.shared, ls.sender)
		}
		for _, c := range vips {
			m := newManager(c, lentTable{ls.table}, nil, nil)
			if ls.sender != nil {
				m.sender, m.frames = lentSender{ls.sender}, announcement(ls.mac, c.Prefix.Addr(), ls.router)
			}
			b.ms = append(b.ms, m)
		}
		if ls.sender != nil {
			if b.claims, err = openClaims(ls.index, ls.mac, cfg.Source, addrs); err != nil {
				b.close()
				return nil, fmt.Errorf("vip: probe socket on %s: %w", cfg.Interface, err)
			}
		}
		return b, nil
	}
	read := func() (Kernel, error) { return readKernel(h, cfg.Interface, cfg.Source, addrs) }
	g, err := newGroup(cfg, vips, seams{read: read, bind: bind, watch: watchKernel, close: h.Close})
	if err != nil {
		h.Close()
		return nil, err
	}
	return g, nil
}

// readKernel reads the interface's state by name.
func readKernel(h *netlink.Handle, ifname string, source netip.Addr, vips []netip.Addr) (Kernel, error) {
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
	on := make(map[netip.Addr]bool, len(list))
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			on[ip.Unmap()] = true
		}
	}
	k.Source = on[source]
	for _, v := range vips {
		if on[v] {
			k.VIPs = append(k.VIPs, v)
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

// packetClaims is claimWatcher over one AF_PACKET socket that receives
// only frames that may claim one of the VIPs (a BPF filter), and sends
// the probes.
type packetClaims struct {
	c      *packet.Conn
	mac    hwAddr
	vips   []netip.Addr
	probes [][]byte // per VIP
}

var _ claimWatcher = (*packetClaims)(nil)

func openClaims(index int, mac hwAddr, source netip.Addr, vips []netip.Addr) (*packetClaims, error) {
	etherType := etherTypeARP
	if vips[0].Is6() {
		etherType = etherTypeIPv6
	}
	prog, err := bpf.Assemble(claimFilter(vips))
	if err != nil {
		return nil, err
	}
	c, err := packet.Listen(&net.Interface{Index: index}, packet.Raw, etherType, &packet.Config{Filter: prog})
	if err != nil {
		return nil, err
	}
	p := &packetClaims{c: c, mac: mac, vips: vips}
	for _, v := range vips {
		p.probes = append(p.probes, probe(mac, source, v))
	}
	return p, nil
}

func (p *packetClaims) probe(vip netip.Addr) error {
	i := slices.Index(p.vips, vip)
	if i < 0 {
		return fmt.Errorf("vip: %s is not in the group", vip)
	}
	f := p.probes[i]
	_, err := p.c.WriteTo(f, &packet.Addr{HardwareAddr: net.HardwareAddr(f[0:6])})
	return err
}

func (p *packetClaims) next() (netip.Addr, hwAddr, error) {
	buf := make([]byte, 256)
	for {
		n, _, err := p.c.ReadFrom(buf)
		if err != nil {
			return netip.Addr{}, hwAddr{}, err
		}
		for _, v := range p.vips {
			if mac, ok := claimant(buf[:n], v, p.mac); ok {
				return v, mac, nil
			}
		}
	}
}

func (p *packetClaims) close() error { return p.c.Close() }
