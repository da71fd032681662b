package vrrp

import (
	"cmp"
	"errors"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakePC is an in-memory packetConn: the test queues datagrams with their
// IP facts and reads back what was written.
type wFakePC struct {
	in   chan wFakeDatagram
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	written []wFakeDatagram
	failTo  map[netip.Addr]error
}

type wFakeDatagram struct {
	b []byte
	d datagram
}

func wNewFakePC() *wFakePC {
	return &wFakePC{in: make(chan wFakeDatagram, 64), done: make(chan struct{})}
}

func (f *wFakePC) ReadFrom(b []byte) (int, datagram, error) {
	select {
	case p := <-f.in:
		return copy(b, p.b), p.d, nil
	case <-f.done:
		return 0, datagram{}, errors.New("fake: use of closed connection")
	}
}

func (f *wFakePC) WriteTo(b []byte, dst netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failTo[dst]; err != nil {
		return err
	}
	f.written = append(f.written, wFakeDatagram{b: append([]byte(nil), b...), d: datagram{Dst: dst}})
	return nil
}

func (f *wFakePC) Close() error {
	f.once.Do(func() { close(f.done) })
	return nil
}

const wIfIndex = 7

func wNewConn(t *testing.T, cfg ConnConfig) (*RawConn, *wFakePC) {
	t.Helper()
	f := wNewFakePC()
	c, err := newConn(cfg, wIfIndex, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, f
}

// advert encodes a packet as peer would send it to dst.
func advert(t *testing.T, p Packet, from, to netip.Addr) []byte {
	t.Helper()
	b, err := p.Marshal(from, to)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wReceive(t *testing.T, c *RawConn) Received {
	t.Helper()
	type result struct {
		r   Received
		err error
	}
	ch := make(chan result, 1)
	go func() {
		r, err := c.Receive()
		ch <- result{r, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatalf("Receive: %v", res.err)
		}
		return res.r
	case <-time.After(10 * time.Second): // a hang guard, not a speed check
		t.Fatal("Receive did not return")
	}
	return Received{}
}

func TestReceiveChecks(t *testing.T) {
	v3 := Packet{Version: Version3, VRID: 51, Priority: 100, Interval: time.Second, Addrs: wAddrs("198.18.0.100")}
	v2 := Packet{Version: Version2, VRID: 51, Priority: 100, Interval: time.Second, Addrs: wAddrs("198.18.0.100")}
	v2pass := v2
	v2pass.AuthType, v2pass.Password = AuthSimple, "secret"
	stranger := netip.MustParseAddr("198.18.0.9")

	type bad struct {
		name string
		b    func(t *testing.T) []byte
		d    datagram
		want DropReason
	}
	dg := func(src, dst netip.Addr, ttl, ifi int) datagram {
		return datagram{Src: src, Dst: dst, HopLimit: ttl, IfIndex: ifi}
	}
	pkt := func(p Packet, edit func(*Packet), from, to netip.Addr) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			if edit != nil {
				edit(&p)
			}
			return advert(t, p, from, to)
		}
	}
	tests := []struct {
		name string
		cfg  ConnConfig
		ok   Packet // the packet that must get through after the bad ones
		// okTTL is the ok packet's TTL or hop limit; 0 means 255.
		okTTL int
		bad   []bad
	}{
		{
			// VRRPv3 backups learn the active router's interval: another
			// one than ours is not a drop.
			name: "v3 multicast",
			cfg:  ConnConfig{Interface: "x", Source: wSrc4, VRID: 51, Version: Version3, Interval: 2 * time.Second},
			ok:   v3,
			bad: []bad{
				{"other interface", pkt(v3, nil, wPeer4, GroupIPv4), dg(wPeer4, GroupIPv4, 255, 3), DropInterface},
				{"own", pkt(v3, nil, wSrc4, GroupIPv4), dg(wSrc4, GroupIPv4, 255, wIfIndex), DropOwn},
				{"ttl 64", pkt(v3, nil, wPeer4, GroupIPv4), dg(wPeer4, GroupIPv4, 64, wIfIndex), DropTTL},
				{"ttl 254", pkt(v3, nil, wPeer4, GroupIPv4), dg(wPeer4, GroupIPv4, 254, wIfIndex), DropTTL},
				{"ttl unknown", pkt(v3, nil, wPeer4, GroupIPv4), dg(wPeer4, GroupIPv4, -1, wIfIndex), DropTTL},
				{"checksum for another destination", pkt(v3, nil, wPeer4, wSrc4), dg(wPeer4, GroupIPv4, 255, wIfIndex), DropChecksum},
				{"v2 packet", pkt(v2, nil, wPeer4, GroupIPv4), dg(wPeer4, GroupIPv4, 255, wIfIndex), DropVersion},
				// Another virtual router speaking VRRPv2 on the LAN: not ours,
				// so not a version mismatch either.
				{"v2 packet of another VRID", pkt(v2, func(p *Packet) { p.VRID = 9 }, wPeer4, GroupIPv4), dg(wPeer4, GroupIPv4, 255, wIfIndex), DropVRID},
				{"other VRID", pkt(v3, func(p *Packet) { p.VRID = 52 }, wPeer4, GroupIPv4), dg(wPeer4, GroupIPv4, 255, wIfIndex), DropVRID},
				{"other VRID again", pkt(v3, func(p *Packet) { p.VRID = 1 }, wPeer4, GroupIPv4), dg(wPeer4, GroupIPv4, 255, wIfIndex), DropVRID},
				{"truncated", func(t *testing.T) []byte { return advert(t, v3, wPeer4, GroupIPv4)[:10] }, dg(wPeer4, GroupIPv4, 255, wIfIndex), DropTruncated},
				{"IPv6 source", pkt(v3, nil, wPeer4, GroupIPv4), dg(wSrc6, GroupIPv4, 255, wIfIndex), DropFamily},
			},
		},
		{
			name: "v3 unicast",
			cfg:  ConnConfig{Interface: "x", Source: wSrc4, Peers: []netip.Addr{wPeer4}, VRID: 51, Version: Version3},
			ok:   v3,
			bad: []bad{
				{"stranger", pkt(v3, nil, stranger, wSrc4), dg(stranger, wSrc4, 255, wIfIndex), DropUnknownPeer},
				{"stranger of another VRID", pkt(v3, func(p *Packet) { p.VRID = 9 }, stranger, wSrc4), dg(stranger, wSrc4, 255, wIfIndex), DropVRID},
				{"own", pkt(v3, nil, wSrc4, wPeer4), dg(wSrc4, wPeer4, 255, wIfIndex), DropOwn},
				{"stranger, ttl 64", pkt(v3, nil, stranger, wSrc4), dg(stranger, wSrc4, 64, wIfIndex), DropUnknownPeer},
			},
			// A configured peer counts whatever its TTL, as in keepalived,
			// which sends IPv6 unicast adverts with hop limit 64.
			okTTL: 64,
		},
		{
			name: "v2 password",
			cfg:  ConnConfig{Interface: "x", Source: wSrc4, VRID: 51, Version: Version2, Password: "secret"},
			ok:   v2pass,
			bad: []bad{
				{"no auth", pkt(v2, nil, wPeer4, GroupIPv4), dg(wPeer4, GroupIPv4, 255, wIfIndex), DropAuthType},
				{"wrong password", pkt(v2pass, func(p *Packet) { p.Password = "secreT" }, wPeer4, GroupIPv4), dg(wPeer4, GroupIPv4, 255, wIfIndex), DropAuth},
				{"prefix of password", pkt(v2pass, func(p *Packet) { p.Password = "secre" }, wPeer4, GroupIPv4), dg(wPeer4, GroupIPv4, 255, wIfIndex), DropAuth},
				{"v3 packet", pkt(v3, nil, wPeer4, GroupIPv4), dg(wPeer4, GroupIPv4, 255, wIfIndex), DropVersion},
			},
		},
		{
			name: "v2 no auth",
			cfg:  ConnConfig{Interface: "x", Source: wSrc4, VRID: 51, Version: Version2, Interval: time.Second},
			ok:   v2,
			bad: []bad{
				{"password sent", pkt(v2pass, nil, wPeer4, GroupIPv4), dg(wPeer4, GroupIPv4, 255, wIfIndex), DropAuthType},
				{"other interval", pkt(v2, func(p *Packet) { p.Interval = 3 * time.Second }, wPeer4, GroupIPv4), dg(wPeer4, GroupIPv4, 255, wIfIndex), DropIntervalMismatch},
			},
		},
		{
			name: "v3 IPv6 multicast, interface unknown",
			cfg:  ConnConfig{Interface: "x", Source: netip.MustParseAddr("fe80::1%x"), VRID: 51, Version: Version3},
			ok:   Packet{Version: Version3, VRID: 51, Priority: 100, Interval: time.Second, Addrs: wAddrs("2001:db8::100")},
			bad: []bad{
				{"own, zoned", pkt(Packet{Version: Version3, VRID: 51, Priority: 1, Interval: time.Second, Addrs: wAddrs("2001:db8::100")}, nil, wSrc6, GroupIPv6),
					dg(netip.MustParseAddr("fe80::1%x"), GroupIPv6, 255, 0), DropOwn},
				{"hop limit 1", pkt(Packet{Version: Version3, VRID: 51, Priority: 1, Interval: time.Second, Addrs: wAddrs("2001:db8::100")}, nil, netip.MustParseAddr("fe80::2"), GroupIPv6),
					dg(netip.MustParseAddr("fe80::2%x"), GroupIPv6, 1, 0), DropTTL},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			reported := map[DropReason]uint64{}
			tt.cfg.OnDrop = func(de *DropError) {
				mu.Lock()
				reported[de.Reason]++
				mu.Unlock()
			}
			c, f := wNewConn(t, tt.cfg)
			want := map[DropReason]uint64{}
			for _, b := range tt.bad {
				f.in <- wFakeDatagram{b: b.b(t), d: b.d}
				want[b.want]++
			}
			from, to := wPeer4, GroupIPv4
			if len(tt.cfg.Peers) > 0 {
				to = wSrc4
			}
			if !tt.cfg.Source.Unmap().Is4() {
				from, to = netip.MustParseAddr("fe80::2"), GroupIPv6
			}
			ttl := cmp.Or(tt.okTTL, 255)
			f.in <- wFakeDatagram{b: advert(t, tt.ok, from, to), d: dg(from, to, ttl, wIfIndex)}
			r := wReceive(t, c)
			if r.Src != from {
				t.Errorf("Src %v, want %v", r.Src, from)
			}
			if r.Packet.Priority != tt.ok.Priority || r.Packet.VRID != tt.ok.VRID || r.Packet.Password != tt.ok.Password {
				t.Errorf("got %+v, want %+v", *r.Packet, tt.ok)
			}
			if got := c.Drops(); !maps.Equal(got, want) {
				t.Errorf("drops %v, want %v", got, want)
			}
			mu.Lock()
			if !maps.Equal(reported, want) {
				t.Errorf("OnDrop saw %v, want %v", reported, want)
			}
			mu.Unlock()
		})
	}
}

// Each bad packet is also checked on its own so that a failure names it.
func TestCheckReasons(t *testing.T) {
	c, _ := wNewConn(t, ConnConfig{Interface: "x", Source: wSrc4, VRID: 51, Version: Version2, Password: "pw"})
	ok := Packet{Version: Version2, VRID: 51, Priority: 9, Interval: time.Second, AuthType: AuthSimple, Password: "pw", Addrs: wAddrs("198.18.0.100")}
	b := advert(t, ok, netip.Addr{}, netip.Addr{})
	d := datagram{Src: netip.AddrFrom16(wPeer4.As16()), Dst: GroupIPv4, HopLimit: 255}
	p, de := c.check(b, d)
	if de != nil {
		t.Fatalf("4-in-6 source: %v", de)
	}
	if p.Password != "pw" {
		t.Errorf("password %q", p.Password)
	}
	wrong := ok
	wrong.Password = "px"
	if _, de := c.check(advert(t, wrong, netip.Addr{}, netip.Addr{}), d); de == nil || de.Reason != DropAuth {
		t.Errorf("wrong password: %v", de)
	}
}

func TestSend(t *testing.T) {
	peerB := netip.MustParseAddr("198.18.0.3")
	tests := []struct {
		name     string
		cfg      ConnConfig
		p        Packet
		wantDsts []netip.Addr
		wantAuth AuthType
		// wantAddrs, when set, are the addresses the adverts must carry.
		wantAddrs []netip.Addr
	}{
		{"v3 multicast", ConnConfig{Interface: "x", Source: wSrc4, VRID: 51, Version: Version3},
			Packet{Priority: 100, Interval: 100 * time.Millisecond, Addrs: wAddrs("198.18.0.100")},
			[]netip.Addr{GroupIPv4}, AuthNone, nil},
		{"v3 unicast", ConnConfig{Interface: "x", Source: wSrc4, Peers: []netip.Addr{wPeer4, peerB}, VRID: 51, Version: Version3},
			Packet{Version: Version3, VRID: 51, Priority: 100, Interval: time.Second, Addrs: wAddrs("198.18.0.100")},
			[]netip.Addr{wPeer4, peerB}, AuthNone, nil},
		{"v3 IPv6 multicast", ConnConfig{Interface: "x", Source: wSrc6, VRID: 51, Version: Version3},
			Packet{Priority: 100, Interval: time.Second, Addrs: wAddrs("2001:db8::100")},
			[]netip.Addr{GroupIPv6}, AuthNone, nil},
		{"v2 password from config", ConnConfig{Interface: "x", Source: wSrc4, VRID: 51, Version: Version2, Password: "secret"},
			Packet{Priority: 100, Interval: time.Second, Addrs: wAddrs("198.18.0.100")},
			[]netip.Addr{GroupIPv4}, AuthSimple, nil},
		{"v2 caller's password ignored", ConnConfig{Interface: "x", Source: wSrc4, VRID: 51, Version: Version2},
			Packet{Priority: 100, Interval: time.Second, AuthType: AuthSimple, Password: "x", Addrs: wAddrs("198.18.0.100")},
			[]netip.Addr{GroupIPv4}, AuthNone, nil},
		{"addresses from config", ConnConfig{Interface: "x", Source: wSrc4, VRID: 51, Version: Version3, Addrs: wAddrs("198.18.0.100", "198.18.0.101")},
			Packet{Priority: 100, Interval: time.Second},
			[]netip.Addr{GroupIPv4}, AuthNone, wAddrs("198.18.0.100", "198.18.0.101")},
		{"caller's addresses kept", ConnConfig{Interface: "x", Source: wSrc4, VRID: 51, Version: Version3, Addrs: wAddrs("198.18.0.100")},
			Packet{Priority: 100, Interval: time.Second, Addrs: wAddrs("198.18.0.100", "198.18.0.102")},
			[]netip.Addr{GroupIPv4}, AuthNone, wAddrs("198.18.0.100", "198.18.0.102")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			reported := map[DropReason]uint64{}
			tt.cfg.OnDrop = func(de *DropError) {
				mu.Lock()
				reported[de.Reason]++
				mu.Unlock()
			}
			c, f := wNewConn(t, tt.cfg)
			orig := tt.p
			if err := c.Send(&tt.p); err != nil {
				t.Fatal(err)
			}
			if tt.p.Version != orig.Version || tt.p.Password != orig.Password {
				t.Errorf("Send changed the caller's packet: %+v", tt.p)
			}
			if len(f.written) != len(tt.wantDsts) {
				t.Fatalf("%d writes, want %d", len(f.written), len(tt.wantDsts))
			}
			for i, w := range f.written {
				if w.d.Dst != tt.wantDsts[i] {
					t.Errorf("write %d to %v, want %v", i, w.d.Dst, tt.wantDsts[i])
				}
				// Each copy must pass the checksum at its own destination.
				p, err := Unmarshal(w.b, tt.cfg.Source, w.d.Dst)
				if err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
				if p.Version != tt.cfg.Version || p.VRID != tt.cfg.VRID || p.AuthType != tt.wantAuth ||
					p.Password != tt.cfg.Password || p.Priority != tt.p.Priority {
					t.Errorf("write %d: %+v", i, *p)
				}
				if tt.wantAddrs != nil && !slices.Equal(p.Addrs, tt.wantAddrs) {
					t.Errorf("write %d: addresses %v, want %v", i, p.Addrs, tt.wantAddrs)
				}
			}
		})
	}
}

func TestSendErrors(t *testing.T) {
	cfg := ConnConfig{Interface: "x", Source: wSrc4, VRID: 51, Version: Version3}
	c, _ := wNewConn(t, cfg)
	for _, p := range []Packet{
		{Version: Version2, Priority: 1, Interval: time.Second, Addrs: wAddrs("198.18.0.100")},
		{VRID: 52, Priority: 1, Interval: time.Second, Addrs: wAddrs("198.18.0.100")},
		{Priority: 1, Interval: 5 * time.Millisecond, Addrs: wAddrs("198.18.0.100")},
		{Priority: 1, Interval: time.Second, Addrs: wAddrs("2001:db8::100")},
	} {
		if err := c.Send(&p); !errors.Is(err, ErrInvalidPacket) {
			t.Errorf("Send(%+v) = %v, want ErrInvalidPacket", p, err)
		}
	}

	// One unreachable peer does not stop the others.
	peerB := netip.MustParseAddr("198.18.0.3")
	cfg.Peers = []netip.Addr{wPeer4, peerB}
	c, f := wNewConn(t, cfg)
	unreachable := errors.New("no route")
	f.failTo = map[netip.Addr]error{wPeer4: unreachable}
	err := c.Send(&Packet{Priority: 1, Interval: time.Second, Addrs: wAddrs("198.18.0.100")})
	if !errors.Is(err, unreachable) {
		t.Errorf("got %v, want the peer's error", err)
	}
	if len(f.written) != 1 || f.written[0].d.Dst != peerB {
		t.Errorf("writes %+v, want one to %v", f.written, peerB)
	}
}

func TestClose(t *testing.T) {
	c, _ := wNewConn(t, ConnConfig{Interface: "x", Source: wSrc4, VRID: 51, Version: Version3})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Receive()
		errc <- err
	}()
	// Drops is safe while Receive runs (go test -race).
	_ = c.Drops()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != net.ErrClosed {
			t.Errorf("Receive after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second): // a hang guard, not a speed check
		t.Fatal("Receive still blocked after Close")
	}
	if _, err := c.Receive(); err != net.ErrClosed {
		t.Errorf("second Receive: %v", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

func TestConnConfigValidate(t *testing.T) {
	ok := ConnConfig{Interface: "x", Source: wSrc4, VRID: 1, Version: Version3}
	tests := []struct {
		name string
		edit func(*ConnConfig)
	}{
		{"no interface", func(c *ConnConfig) { c.Interface = "" }},
		{"no source", func(c *ConnConfig) { c.Source = netip.Addr{} }},
		{"VRID 0", func(c *ConnConfig) { c.VRID = 0 }},
		{"version 0", func(c *ConnConfig) { c.Version = 0 }},
		{"v2 IPv6", func(c *ConnConfig) { c.Version = Version2; c.Source = wSrc6 }},
		{"v3 password", func(c *ConnConfig) { c.Password = "x" }},
		{"long password", func(c *ConnConfig) { c.Version = Version2; c.Password = "123456789" }},
		{"peer of other family", func(c *ConnConfig) { c.Peers = wAddrs("2001:db8::1") }},
		{"zero peer", func(c *ConnConfig) { c.Peers = []netip.Addr{{}} }},
		{"virtual address of other family", func(c *ConnConfig) { c.Addrs = wAddrs("198.18.0.100", "2001:db8::100") }},
		{"zero virtual address", func(c *ConnConfig) { c.Addrs = []netip.Addr{{}} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			if _, err := newConn(cfg, 1, wNewFakePC()); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("got %v, want ErrInvalidConfig", err)
			}
			if _, err := Dial(cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Dial: got %v, want ErrInvalidConfig", err)
			}
		})
	}
	if _, err := newConn(ok, 1, wNewFakePC()); err != nil {
		t.Errorf("valid config: %v", err)
	}
	ok.Addrs = []netip.Addr{netip.AddrFrom16(netip.MustParseAddr("198.18.0.100").As16())} // 4-in-6 is IPv4
	if _, err := newConn(ok, 1, wNewFakePC()); err != nil {
		t.Errorf("valid config with a 4-in-6 virtual address: %v", err)
	}
}

func TestMisconfiguredReasons(t *testing.T) {
	want := map[DropReason]bool{DropVersion: true, DropAuthType: true, DropAuth: true,
		DropIntervalMismatch: true, DropUnknownPeer: true, DropAddrMismatch: true}
	for _, r := range DropReasons() {
		if r.Misconfigured() != want[r] {
			t.Errorf("%v.Misconfigured() = %v", r, r.Misconfigured())
		}
	}
}

// TestOtherVRIDFirst: an advert of another virtual router is dropped as
// vrid whatever else would fail on it, so that OnDrop never reports it as
// a misconfiguration (the daemon warns on those) and the other counters
// keep meaning what they say.
func TestOtherVRIDFirst(t *testing.T) {
	v2 := Packet{Version: Version2, VRID: 9, Priority: 100, Interval: time.Second, Addrs: wAddrs("198.18.0.9")}
	v3 := Packet{Version: Version3, VRID: 9, Priority: 100, Interval: time.Second, Addrs: wAddrs("198.18.0.9")}
	stranger := netip.MustParseAddr("198.18.0.9")
	v3conn := ConnConfig{Interface: "x", Source: wSrc4, VRID: 51, Version: Version3, Addrs: wAddrs("198.18.0.100")}
	unicast := v3conn
	unicast.Peers = []netip.Addr{wPeer4}
	v2conn := ConnConfig{Interface: "x", Source: wSrc4, VRID: 51, Version: Version2, Password: "secret",
		Interval: 3 * time.Second, Addrs: wAddrs("198.18.0.100")}
	tests := []struct {
		name string
		cfg  ConnConfig
		p    Packet
		from netip.Addr
		ttl  int
		// what the same advert with our VRID is dropped as: the check
		// the VRID must come before.
		ours DropReason
	}{
		{"v2 advert to a v3 conn", v3conn, v2, wPeer4, 255, DropVersion},
		{"v3 advert to a v2 conn", v2conn, v3, wPeer4, 255, DropVersion},
		{"unknown unicast sender", unicast, v3, stranger, 255, DropUnknownPeer},
		{"v2 without password to a v2 conn with one", v2conn, v2, wPeer4, 255, DropAuthType},
		{"other v2 interval", v2conn, func() Packet { p := v2; p.AuthType, p.Password = AuthSimple, "secret"; return p }(), wPeer4, 255, DropIntervalMismatch},
		{"other addresses", v3conn, v3, wPeer4, 255, DropAddrMismatch},
		{"forwarded (TTL 64)", v3conn, v3, wPeer4, 64, DropTTL},
		{"from our own address", v3conn, v3, wSrc4, 255, DropOwn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var reported []*DropError
			tt.cfg.OnDrop = func(de *DropError) {
				mu.Lock()
				reported = append(reported, de)
				mu.Unlock()
			}
			c, f := wNewConn(t, tt.cfg)
			ours := tt.p
			ours.VRID = tt.cfg.VRID
			d := datagram{Src: tt.from, Dst: GroupIPv4, HopLimit: tt.ttl, IfIndex: wIfIndex}
			if _, de := c.check(advert(t, ours, tt.from, GroupIPv4), d); de == nil || de.Reason != tt.ours {
				t.Fatalf("control: with our VRID: %v, want %v", de, tt.ours)
			}
			f.in <- wFakeDatagram{b: advert(t, tt.p, tt.from, GroupIPv4), d: d}
			ok := Packet{Version: tt.cfg.Version, VRID: tt.cfg.VRID, Priority: 100, Interval: time.Second, Addrs: tt.cfg.Addrs}
			if tt.cfg.Version == Version2 {
				ok.Interval, ok.AuthType, ok.Password = tt.cfg.Interval, AuthSimple, tt.cfg.Password
			}
			to := GroupIPv4
			if len(tt.cfg.Peers) > 0 {
				to = wSrc4
			}
			f.in <- wFakeDatagram{b: advert(t, ok, wPeer4, to), d: datagram{Src: wPeer4, Dst: to, HopLimit: 255, IfIndex: wIfIndex}}
			wReceive(t, c)
			if got := c.Drops(); !maps.Equal(got, map[DropReason]uint64{DropVRID: 1}) {
				t.Errorf("drops %v, want vrid 1", got)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(reported) != 1 || reported[0].Reason != DropVRID || reported[0].Reason.Misconfigured() {
				t.Errorf("OnDrop saw %v, want one vrid drop, not a misconfiguration", reported)
			}
		})
	}
	// A message too short to hold a VRRP header stays truncated, even
	// though byte 1 is there.
	c, _ := wNewConn(t, v3conn)
	short := advert(t, v3, wPeer4, GroupIPv4)[:headerLen-1]
	if _, de := c.check(short, datagram{Src: wPeer4, Dst: GroupIPv4, HopLimit: 255}); de == nil || de.Reason != DropTruncated {
		t.Errorf("%d-byte message of another VRID: %v, want truncated", len(short), de)
	}
}

// TestAddrCheck: an advert of our VRID must list every virtual address we
// protect; extra ones (keepalived may protect more) and any order are fine.
func TestAddrCheck(t *testing.T) {
	v3 := func(prio uint8, addrs ...string) Packet {
		return Packet{Version: Version3, VRID: 51, Priority: prio, Interval: 100 * time.Millisecond, Addrs: wAddrs(addrs...)}
	}
	peer6 := netip.MustParseAddr("fe80::2")
	tests := []struct {
		name  string
		addrs []netip.Addr // ConnConfig.Addrs
		p     Packet
		want  DropReason // DropUnknown: accepted
	}{
		{"same address", wAddrs("198.18.0.100"), v3(100, "198.18.0.100"), DropUnknown},
		{"extra addresses", wAddrs("198.18.0.100"), v3(100, "198.18.0.99", "198.18.0.100", "198.18.0.101"), DropUnknown},
		{"both, other order", wAddrs("198.18.0.100", "198.18.0.101"), v3(100, "198.18.0.101", "198.18.0.100"), DropUnknown},
		{"4-in-6 configured", []netip.Addr{netip.AddrFrom16(netip.MustParseAddr("198.18.0.100").As16())}, v3(100, "198.18.0.100"), DropUnknown},
		{"no check configured", nil, v3(100, "198.18.1.100"), DropUnknown},
		// Another cluster whose VIP ends in the same byte: same default VRID.
		{"another VIP", wAddrs("198.18.0.100"), v3(100, "198.18.1.100"), DropAddrMismatch},
		{"another VIP stepping down", wAddrs("198.18.0.100"), v3(0, "198.18.1.100"), DropAddrMismatch},
		// RFC 9568 would let an address owner's advert through; hapod
		// never owns its VIP, so an owner of other addresses is another
		// virtual router.
		{"another VIP's owner", wAddrs("198.18.0.100"), v3(255, "198.18.1.100"), DropAddrMismatch},
		{"one of two missing", wAddrs("198.18.0.100", "198.18.0.101"), v3(100, "198.18.0.100"), DropAddrMismatch},
		{"IPv6 same", wAddrs("2001:db8::100"), v3(100, "2001:db8::100"), DropUnknown},
		{"IPv6 another", wAddrs("2001:db8::100"), v3(100, "2001:db8:1::100"), DropAddrMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ConnConfig{Interface: "x", Source: wSrc4, VRID: 51, Version: Version3, Addrs: tt.addrs}
			from, to := wPeer4, GroupIPv4
			if tt.p.Addrs[0].Is6() {
				cfg.Source, from, to = wSrc6, peer6, GroupIPv6
			}
			c, _ := wNewConn(t, cfg)
			p, de := c.check(advert(t, tt.p, from, to), datagram{Src: from, Dst: to, HopLimit: 255, IfIndex: wIfIndex})
			if tt.want == DropUnknown {
				if de != nil {
					t.Fatalf("dropped: %v", de)
				}
				if !slices.Equal(p.Addrs, tt.p.Addrs) {
					t.Errorf("addresses %v, want %v", p.Addrs, tt.p.Addrs)
				}
				return
			}
			if de == nil || de.Reason != tt.want {
				t.Fatalf("got %v, want %v", de, tt.want)
			}
			// The warning names both lists, so whoever reads it can tell
			// the clusters apart.
			for _, a := range append(slices.Clone(tt.addrs), tt.p.Addrs...) {
				if !strings.Contains(de.Detail, a.Unmap().String()) {
					t.Errorf("detail %q does not name %v", de.Detail, a)
				}
			}
		})
	}
}
