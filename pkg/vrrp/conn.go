package vrrp

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Received is an advertisement that passed every receive check.
type Received struct {
	Packet *Packet
	// Src is the sender's IP address (without zone), which breaks
	// priority ties.
	Src netip.Addr
}

// Conn sends and receives the adverts of one virtual router. It is the
// seam between the speaker and the network; tests fake it.
type Conn interface {
	// Send advertises p: multicast to 224.0.0.18 or ff02::12 on the
	// interface, or to each unicast peer. The Conn fills in what its
	// configuration owns: the version and VRID when zero, the virtual
	// addresses when p has none, and the authentication.
	Send(p *Packet) error
	// Receive blocks until an advert passes every check. Dropped packets
	// are counted, not returned. After Close it returns net.ErrClosed.
	Receive() (Received, error)
	// Close unblocks Receive and releases the socket.
	Close() error
}

var _ Conn = (*RawConn)(nil)

// ConnConfig says where and how one virtual router talks.
type ConnConfig struct {
	// Interface is the link the adverts are sent and received on.
	Interface string
	// Source is this node's address on Interface: the source of the
	// adverts, and how our own packets are recognised. For IPv6, RFC 9568
	// wants the link-local address; keepalived accepts any.
	Source netip.Addr
	// Peers switches to unicast mode when non-empty: adverts go to each
	// peer, and adverts from anyone else are dropped.
	Peers []netip.Addr
	// VRID is the virtual router ID, 1-255; adverts for others are dropped.
	VRID uint8
	// Version is the VRRP version spoken; adverts of the other are dropped.
	Version Version
	// Password turns on VRRPv2 simple authentication (at most 8 bytes).
	// Empty means auth type 0.
	Password string
	// Interval is our advert interval. VRRPv2 adverts with another one
	// are dropped (RFC 3768 section 7.1); zero skips the check.
	Interval time.Duration
	// Addrs are the virtual addresses this router protects, of the family
	// of Source. An advert of our VRID that does not list every one of
	// them is dropped (DropAddrMismatch): it comes from another virtual
	// router that happens to share the VRID, and obeying it would leave
	// our addresses unheld. Extra addresses in the advert are accepted.
	// Empty skips the check.
	Addrs []netip.Addr
	// OnDrop, if set, is called with every dropped packet's reason and
	// detail, on the receiving goroutine: it must not block.
	OnDrop func(*DropError)
}

// ErrUnimplemented is returned by Dial on systems other than Linux.
var ErrUnimplemented = errors.New("vrrp: raw sockets are implemented on Linux only")

// ErrInvalidConfig is wrapped by every ConnConfig validation error.
var ErrInvalidConfig = errors.New("vrrp: invalid connection config")

func (c *ConnConfig) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	src := c.Source.Unmap()
	switch {
	case c.Interface == "":
		return bad("no interface")
	case !src.IsValid():
		return bad("no source address")
	case c.VRID == 0:
		return bad("VRID 0")
	case c.Version != Version2 && c.Version != Version3:
		return bad("version %d", c.Version)
	case c.Version == Version2 && !src.Is4():
		return bad("VRRPv2 needs an IPv4 source, have %v", c.Source)
	case c.Version == Version3 && c.Password != "":
		return bad("VRRPv3 has no authentication, but a password is set")
	case len(c.Password) > maxPassword:
		return bad("password longer than %d bytes", maxPassword)
	}
	for _, p := range c.Peers {
		if !p.IsValid() || p.Unmap().Is4() != src.Is4() {
			return bad("peer %v is not of the family of source %v", p, c.Source)
		}
	}
	for _, a := range c.Addrs {
		if !a.IsValid() || a.Unmap().Is4() != src.Is4() {
			return bad("virtual address %v is not of the family of source %v", a, c.Source)
		}
	}
	return nil
}

// datagram holds what the IP layer tells about a received message.
type datagram struct {
	Src, Dst netip.Addr
	// HopLimit is the IPv4 TTL or IPv6 hop limit; -1 when the kernel did
	// not say.
	HopLimit int
	// IfIndex is the arrival interface; 0 when unknown.
	IfIndex int
}

// packetConn is an IP socket for protocol 112 that reports the IP header
// facts the checks need. conn_linux.go implements it for IPv4 and IPv6; the
// unit tests fake it.
type packetConn interface {
	// ReadFrom reads one VRRP message (IP header removed) into b.
	ReadFrom(b []byte) (int, datagram, error)
	// WriteTo sends one VRRP message to dst with the socket's TTL, DSCP,
	// interface and source.
	WriteTo(b []byte, dst netip.Addr) error
	Close() error
}

// RawConn is a Conn over a raw IP socket (see Dial).
type RawConn struct {
	cfg     ConnConfig
	src     netip.Addr // cfg.Source without zone or 4-in-6 mapping
	ifIndex int
	pc      packetConn
	dsts    atomic.Pointer[destinations]
	addrs   []netip.Addr // cfg.Addrs without zone or 4-in-6 mapping

	rmu sync.Mutex // serialises Receive, which reuses buf
	buf []byte

	closed atomic.Bool
	drops  [numDropReasons]atomic.Uint64
}

// destinations are where adverts go and whom they are accepted from.
// Replaced whole by SetPeers, so Send and Receive read them without a lock.
type destinations struct {
	dsts  []netip.Addr
	peers map[netip.Addr]bool // nil in multicast mode
}

func unicast(peers []netip.Addr) *destinations {
	d := &destinations{peers: make(map[netip.Addr]bool, len(peers))}
	for _, p := range peers {
		d.dsts = append(d.dsts, p)
		d.peers[p.Unmap().WithZone("")] = true
	}
	return d
}

// ErrMulticast is returned by SetPeers on a connection dialled without
// peers: multicast or unicast is decided when the socket is opened.
var ErrMulticast = errors.New("vrrp: multicast connection has no peers to set")

// SetPeers replaces the unicast peers: the next advert goes to exactly
// these, and adverts from a peer no longer listed are dropped
// (DropUnknownPeer). An empty list is refused, as it would silence the
// router; so is a connection in multicast mode (ErrMulticast).
func (c *RawConn) SetPeers(peers []netip.Addr) error {
	if c.dsts.Load().peers == nil {
		return ErrMulticast
	}
	cfg := c.cfg
	cfg.Peers = peers
	if len(peers) == 0 {
		return fmt.Errorf("%w: no peers left", ErrInvalidConfig)
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	c.dsts.Store(unicast(slices.Clone(peers)))
	return nil
}

// newConn wraps an open packetConn. ifIndex is the interface's index, used
// to drop packets from other links when the socket reports it (0: don't).
func newConn(cfg ConnConfig, ifIndex int, pc packetConn) (*RawConn, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &RawConn{
		cfg:     cfg,
		src:     cfg.Source.Unmap().WithZone(""),
		ifIndex: ifIndex,
		pc:      pc,
		buf:     make([]byte, MaxLen+1), // +1: an oversized message shows up as DropLength
	}
	c.cfg.Peers = slices.Clone(cfg.Peers)
	c.cfg.Addrs = slices.Clone(cfg.Addrs)
	for _, a := range cfg.Addrs {
		c.addrs = append(c.addrs, a.Unmap().WithZone(""))
	}
	if len(cfg.Peers) == 0 {
		group := GroupIPv6
		if c.src.Is4() {
			group = GroupIPv4
		}
		c.dsts.Store(&destinations{dsts: []netip.Addr{group}})
	} else {
		c.dsts.Store(unicast(c.cfg.Peers))
	}
	return c, nil
}

// Send advertises p to the group or to every peer. The zero Version and
// VRID of p are filled from the config, other values must match it; the
// VRRPv2 auth type and password always come from the config. A failure to
// reach one peer does not stop the others; the errors are joined.
func (c *RawConn) Send(p *Packet) error {
	q := *p
	if q.Version == 0 {
		q.Version = c.cfg.Version
	}
	if q.VRID == 0 {
		q.VRID = c.cfg.VRID
	}
	if q.Version != c.cfg.Version || q.VRID != c.cfg.VRID {
		return fmt.Errorf("%w: %v VRID %d on a %v VRID %d connection",
			ErrInvalidPacket, q.Version, q.VRID, c.cfg.Version, c.cfg.VRID)
	}
	if len(q.Addrs) == 0 {
		q.Addrs = c.cfg.Addrs
	}
	q.AuthType, q.Password = AuthNone, ""
	if c.cfg.Password != "" {
		q.AuthType, q.Password = AuthSimple, c.cfg.Password
	}
	var errs []error
	for _, dst := range c.dsts.Load().dsts {
		// The VRRPv3 checksum covers the destination: one encoding each.
		b, err := q.Marshal(c.src, dst)
		if err != nil {
			return err
		}
		if err := c.pc.WriteTo(b, dst); err != nil {
			if c.closed.Load() {
				return net.ErrClosed
			}
			errs = append(errs, fmt.Errorf("vrrp: send to %v: %w", dst, err))
		}
	}
	return errors.Join(errs...)
}

// Receive returns the next advert that passes every check.
func (c *RawConn) Receive() (Received, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		n, d, err := c.pc.ReadFrom(c.buf)
		if err != nil {
			if c.closed.Load() {
				return Received{}, net.ErrClosed
			}
			return Received{}, fmt.Errorf("vrrp: receive: %w", err)
		}
		p, de := c.check(c.buf[:n], d)
		if de != nil {
			c.drops[de.Reason].Add(1)
			if c.cfg.OnDrop != nil {
				c.cfg.OnDrop(de)
			}
			continue
		}
		return Received{Packet: p, Src: d.Src.Unmap().WithZone("")}, nil
	}
}

// check applies every receive check to message b with IP facts d: the
// arrival interface, then the VRID, then the cheap IP-header ones, then
// those of RFC 9568 section 7.1 in its order.
//
// The VRID comes first because an advert of another virtual router is no
// business of ours whatever else is wrong with it: a VRRPv2 router on the
// same LAN is not a version mismatch, nor is another group's sender in
// unicast mode a peer missing from --peer, and neither must be counted or
// warned about as one. It is byte 1 of the message in both versions (the
// packetConn has removed the IP header); a message too short for a VRRP
// header is left to Unmarshal, which calls it truncated.
func (c *RawConn) check(b []byte, d datagram) (*Packet, *DropError) {
	src := d.Src.Unmap().WithZone("")
	if d.IfIndex != 0 && c.ifIndex != 0 && d.IfIndex != c.ifIndex {
		return nil, drop(DropInterface, "arrived on interface %d, want %d", d.IfIndex, c.ifIndex)
	}
	if len(b) >= headerLen && b[1] != c.cfg.VRID {
		return nil, drop(DropVRID, "VRID %d from %v", b[1], src)
	}
	if src == c.src {
		return nil, drop(DropOwn, "from our own address %v", src)
	}
	// RFC 9568 wants TTL 255, which proves a multicast advert came from
	// the link. In unicast mode the configured peer list vets the sender
	// instead, and a peer's advert counts whatever its TTL, as keepalived
	// does: keepalived 2.2.7 sends IPv6 unicast adverts with hop limit 64
	// unless unicast_ttl is set, and unicast peers may sit a router away.
	if peers := c.dsts.Load().peers; peers != nil {
		if !peers[src] {
			return nil, drop(DropUnknownPeer, "%v is not a configured peer", src)
		}
	} else if d.HopLimit != 255 {
		return nil, drop(DropTTL, "TTL/hop limit %d from %v", d.HopLimit, src)
	}
	p, err := Unmarshal(b, src, d.Dst)
	if err != nil {
		var de *DropError
		if errors.As(err, &de) {
			return nil, de
		}
		return nil, drop(DropUnknown, "%v", err)
	}
	if p.Version != c.cfg.Version {
		return nil, drop(DropVersion, "%v from %v, configured %v", p.Version, src, c.cfg.Version)
	}
	if p.Version == Version2 {
		want := AuthNone
		if c.cfg.Password != "" {
			want = AuthSimple
		}
		if p.AuthType != want {
			return nil, drop(DropAuthType, "auth type %v from %v, configured %v", p.AuthType, src, want)
		}
		if want == AuthSimple && subtle.ConstantTimeCompare([]byte(p.Password), []byte(c.cfg.Password)) != 1 {
			return nil, drop(DropAuth, "wrong password from %v", src)
		}
		if c.cfg.Interval > 0 && p.Interval != c.cfg.Interval {
			return nil, drop(DropIntervalMismatch, "interval %v from %v, configured %v", p.Interval, src, c.cfg.Interval)
		}
	}
	// RFC 9568 and RFC 3768 section 7.1 let a router check the address
	// list, log a mismatch as a misconfiguration, and drop the advert
	// unless it comes from the address owner (priority 255). hapod drops
	// it whatever the priority: it never owns its VIP, so the sender is
	// another virtual router that shares our VRID (two clusters whose VIPs
	// end in the same byte), and obeying it would leave our VIP unheld.
	// keepalived drops such adverts too.
	for _, a := range c.addrs {
		if !slices.Contains(p.Addrs, a) {
			return nil, drop(DropAddrMismatch, "VRID %d from %v lists %v, configured %v", p.VRID, src, p.Addrs, c.addrs)
		}
	}
	return p, nil
}

// Drops returns a snapshot of the drop counters, by reason; reasons never
// seen are absent. Safe for concurrent use.
func (c *RawConn) Drops() map[DropReason]uint64 {
	m := make(map[DropReason]uint64)
	for r := range c.drops {
		if n := c.drops[r].Load(); n > 0 {
			m[DropReason(r)] = n
		}
	}
	return m
}

// Close closes the socket; a blocked Receive returns net.ErrClosed.
func (c *RawConn) Close() error {
	if c.closed.Swap(true) {
		return net.ErrClosed
	}
	return c.pc.Close()
}
