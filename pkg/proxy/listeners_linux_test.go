package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/hapod/hapod/internal/lab"
)

var (
	loop4 = netip.MustParseAddrPort("127.0.0.1:0")
	loop6 = netip.MustParseAddrPort("[::1]:0")
)

// onBoth makes a proxy listen on 127.0.0.1 and ::1 (startProxy's mod).
func onBoth(c *Config) { c.Listen = []netip.AddrPort{loop4, loop6} }

func TestListenValidation(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		name   string
		listen []netip.AddrPort
		want   string // in the error; "": valid
	}{
		{"none", nil, "no listen address"},
		{"zero", []netip.AddrPort{{}}, "listen address invalid AddrPort"},
		{"twice", []netip.AddrPort{ap("198.18.0.10:8443"), ap("[2001:db8::10]:8443"), ap("198.18.0.10:8443")}, "listen address 198.18.0.10:8443 given twice"},
		{"mapped twice", []netip.AddrPort{ap("198.18.0.10:8443"), ap("[::ffff:198.18.0.10]:8443")}, "listen address 198.18.0.10:8443 given twice"},
		{"wildcard and address", []netip.AddrPort{ap("198.18.0.10:8443"), ap("0.0.0.0:8443")}, "listen addresses 198.18.0.10:8443 and 0.0.0.0:8443: a wildcard cannot share its port"},
		{"v6 wildcard and address", []netip.AddrPort{ap("[::]:8443"), ap("[2001:db8::10]:8443")}, "listen addresses [::]:8443 and [2001:db8::10]:8443"},
		{"both families, several each", []netip.AddrPort{ap("198.18.0.10:8443"), ap("198.18.0.11:8443"), ap("[2001:db8::10]:8443"), ap("[2001:db8::11]:8443")}, ""},
		{"wildcards of both families", []netip.AddrPort{ap("0.0.0.0:8443"), ap("[::]:8443")}, ""},
		{"wildcard on another port", []netip.AddrPort{ap("0.0.0.0:8443"), ap("198.18.0.10:9443")}, ""},
		{"v4 wildcard and a v6 address", []netip.AddrPort{ap("0.0.0.0:8443"), ap("[2001:db8::10]:8443")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig(tc.listen...)
			_, err := New(cfg, NewPool(nil, nil))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("New: %v", err)
			case tc.want != "" && (!errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("New error = %v, want ErrInvalidConfig with %q", err, tc.want)
			}
		})
	}
}

// TestListenersShareThePool: clients of an IPv4 and an IPv6 listener are
// spread over one pool, and Stats counts each listener's.
func TestListenersShareThePool(t *testing.T) {
	b1, b2 := startBackend(t, echo), startBackend(t, echo)
	p := startProxy(t, NewPool([]netip.AddrPort{b1.addr, b2.addr}, &RoundRobin{}), onBoth)
	addrs := p.Addrs()
	if len(addrs) != 2 || addrs[0].Addr() != loop4.Addr() || addrs[1].Addr() != loop6.Addr() {
		t.Fatalf("Addrs = %v, want 127.0.0.1 and ::1 in that order", addrs)
	}
	// One of each family in turn: one round robin over both listeners'
	// clients gives each backend 3 (a pool per listener would start each
	// at the first backend: 4 and 2).
	for i := range 6 {
		roundTrip(t, dial(t, addrs[i%2]), "hello")
	}
	for addr, n := range activeOf(p) {
		if n != 3 {
			t.Errorf("backend %v has %d connections, want 3 (%v)", addr, n, activeOf(p))
		}
	}
	roundTrip(t, dial(t, addrs[1]), "one more over IPv6")
	s := p.Stats()
	want := []ListenerStats{{Addr: addrs[0], Accepted: 3}, {Addr: addrs[1], Accepted: 4}}
	if !slices.Equal(s.Listeners, want) || s.Accepted != 7 || s.Active != 7 {
		t.Errorf("Stats: listeners %+v, accepted %d, active %d; want %+v, 7, 7", s.Listeners, s.Accepted, s.Active, want)
	}
}

// TestListenAllOrNone: when one address cannot be bound, Listen closes
// the sockets it bound before it and names the address; once the address
// is free, Listen binds them all.
func TestListenAllOrNone(t *testing.T) {
	b := startBackend(t, echo)
	free4, free6 := freePort(t, loop4), freePort(t, loop6)
	taken, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	busy := taken.Addr().(*net.TCPAddr).AddrPort()
	p, err := New(DefaultConfig(free4, free6, busy), NewPool([]netip.AddrPort{b.addr}, nil))
	if err != nil {
		t.Fatal(err)
	}
	err = p.Listen()
	if err == nil || !strings.Contains(err.Error(), "listen on "+busy.String()) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Listen with %v taken = %v, want EADDRINUSE naming it", busy, err)
	}
	if a := p.Addrs(); a != nil {
		t.Errorf("Addrs after a failed Listen = %v, want none", a)
	}
	if s := p.Stats(); s.Listeners != nil {
		t.Errorf("Stats.Listeners after a failed Listen = %v, want none", s.Listeners)
	}
	for _, a := range []netip.AddrPort{free4, free6} {
		ln, err := net.Listen("tcp", a.String())
		if err != nil {
			t.Fatalf("%v still bound after the failed Listen: %v", a, err)
		}
		ln.Close()
	}

	taken.Close()
	if err := p.Listen(); err != nil {
		t.Fatalf("Listen once %v is free: %v", busy, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx) }()
	for _, a := range []netip.AddrPort{free4, free6, busy} {
		roundTrip(t, dial(t, a), "through "+a.String())
	}
	cancel()
	p.closeAll()
	if err := <-served; err != nil && !errors.Is(err, ErrDrainTimeout) {
		t.Errorf("Serve: %v", err)
	}
}

// freePort returns like's address with a port nothing listens on.
func freePort(t *testing.T, like netip.AddrPort) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", like.String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// TestCloseLocal: only the connections made to the given address end; the
// others go on relaying, both listeners go on accepting, and the closes
// count as VIPReleased.
func TestCloseLocal(t *testing.T) {
	b := startBackend(t, echo)
	if n := (&Proxy{}).CloseLocal(loop4.Addr()); n != 0 {
		t.Errorf("CloseLocal before Serve = %d, want 0", n)
	}
	p := startProxy(t, NewPool([]netip.AddrPort{b.addr}, nil), onBoth)
	addrs := p.Addrs()
	var v4, v6 []*net.TCPConn
	for range 2 {
		c4, c6 := dial(t, addrs[0]), dial(t, addrs[1])
		roundTrip(t, c4, "v4")
		roundTrip(t, c6, "v6")
		v4, v6 = append(v4, c4), append(v6, c6)
	}
	if n := p.CloseLocal(netip.MustParseAddr("127.0.0.2")); n != 0 {
		t.Errorf("CloseLocal(an address without connections) = %d, want 0", n)
	}
	if n := p.CloseLocal(loop4.Addr()); n != 2 {
		t.Errorf("CloseLocal(127.0.0.1) = %d, want 2", n)
	}
	for i, c := range v4 {
		if !closedByPeer(c) {
			t.Errorf("IPv4 client %d still open after CloseLocal", i)
		}
	}
	for _, c := range v6 {
		roundTrip(t, c, "the IPv6 clients go on")
	}
	roundTrip(t, dial(t, addrs[0]), "IPv4 still accepted")
	roundTrip(t, dial(t, addrs[1]), "IPv6 still accepted")
	eventually(t, "the 2 closed connections are gone", func() bool { return p.Stats().Active == 4 })
	if s := p.Stats(); s.VIPReleased != 2 {
		t.Errorf("VIPReleased = %d, want 2", s.VIPReleased)
	}
	// An IPv4-mapped address is its IPv4 address; the IPv6 clients go too.
	if n := p.CloseLocal(netip.MustParseAddr("::ffff:127.0.0.1"), loop6.Addr()); n != 4 {
		t.Errorf("CloseLocal(::ffff:127.0.0.1, ::1) = %d, want 4", n)
	}
	for i, c := range v6 {
		if !closedByPeer(c) {
			t.Errorf("IPv6 client %d still open after CloseLocal", i)
		}
	}
}

// TestCloseLocalWildcard: behind a wildcard listener each connection's
// local address is its own, the one its client connected to.
func TestCloseLocalWildcard(t *testing.T) {
	l := lab.New(t, 1)
	n := l.Nodes[0]
	vip := l.VIP4(0)
	n.Run(t, "ip", "addr", "add", vip.String()+"/32", "dev", "lo")
	b := startBackend(t, echo)
	var p *Proxy
	inNode(t, n, func() {
		p = startProxy(t, NewPool([]netip.AddrPort{b.addr}, nil), func(c *Config) {
			c.Listen = []netip.AddrPort{netip.AddrPortFrom(netip.IPv4Unspecified(), 8443)}
		})
	})
	connect := func(a netip.Addr) net.Conn {
		c, err := n.Dial(t.Context(), "tcp", netip.AddrPortFrom(a, 8443).String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		roundTrip(t, c, "to "+a.String())
		return c
	}
	toVIP, toNode := connect(vip), connect(n.IPv4)
	if got := p.CloseLocal(vip); got != 1 {
		t.Errorf("CloseLocal(VIP) = %d, want 1", got)
	}
	if !closedByPeer(toVIP) {
		t.Error("the client of the VIP still open after CloseLocal")
	}
	roundTrip(t, toNode, "the client of the node's address goes on")
}

// TestListenersShareMaxConnsAndDrain: MaxConns counts the connections of
// every listener together, and Shutdown closes every listener.
func TestListenersShareMaxConnsAndDrain(t *testing.T) {
	b := startBackend(t, echo)
	p := startProxy(t, NewPool([]netip.AddrPort{b.addr}, nil), func(c *Config) {
		onBoth(c)
		c.MaxConns = 2
	})
	addrs := p.Addrs()
	c4, c6 := dial(t, addrs[0]), dial(t, addrs[1])
	roundTrip(t, c4, "one")
	roundTrip(t, c6, "two")
	for _, a := range addrs {
		if !closedByPeer(dial(t, a)) {
			t.Errorf("a third connection, to %v, not refused", a)
		}
	}
	if s := p.Stats(); s.Refused != 2 || s.Accepted != 2 {
		t.Errorf("refused %d, accepted %d; want 2, 2", s.Refused, s.Accepted)
	}

	done := make(chan error, 1)
	go func() { done <- p.Shutdown(context.Background()) }()
	for _, a := range addrs {
		eventually(t, a.String()+" closed", func() bool {
			nc, err := net.Dial("tcp", a.String())
			if err == nil {
				nc.Close()
			}
			return err != nil
		})
	}
	roundTrip(t, c4, "draining")
	roundTrip(t, c6, "draining")
	c4.Close()
	c6.Close()
	if err := <-done; err != nil {
		t.Errorf("Shutdown = %v, want nil after the drain", err)
	}
}
