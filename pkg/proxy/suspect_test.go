package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

func TestClearsSuspect(t *testing.T) {
	for _, tt := range []struct {
		marked, start int64
		want          bool
	}{
		{0, 100, false},  // no mark
		{100, 99, false}, // the check was under way before the evidence
		{100, 100, true},
		{100, 250, true},
	} {
		if got := clearsSuspect(tt.marked, tt.start); got != tt.want {
			t.Errorf("clearsSuspect(%d, %d) = %v, want %v", tt.marked, tt.start, got, tt.want)
		}
	}
}

// TestSuspectUntilChecked: a backend marked suspect on outside evidence
// (its node's VRRP router went silent) gets no new connection however
// long it takes, its open connections are closed, and only a passing
// check that started after the mark lifts it.
func TestSuspectUntilChecked(t *testing.T) {
	b1, b2 := startBackend(t, echo), startBackend(t, echo)
	fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
	pool := NewPool([]netip.AddrPort{b1.addr, b2.addr}, &RoundRobin{})
	p := startProxy(t, pool, func(c *Config) { c.Clock = fc })
	var conns []*net.TCPConn
	for i := range 4 {
		c := dial(t, p.Addr())
		roundTrip(t, c, fmt.Sprint("x", i))
		conns = append(conns, c)
	}
	checkStarted := fc.Now() // a check under way when the evidence comes
	fc.Step(time.Millisecond)
	closed, ok := pool.Suspect(b1.addr)
	if !ok || closed != 2 {
		t.Fatalf("Suspect = %d, %v; want 2 closed (round robin put two on b1)", closed, ok)
	}
	if _, ok := pool.Suspect(netip.MustParseAddrPort("198.18.0.1:1")); ok {
		t.Error("Suspect of an unknown backend reported ok")
	}
	for i, c := range conns {
		if i%2 == 0 && !closedByPeer(c) {
			t.Errorf("conn %d to the suspect backend still open", i)
		}
	}
	// Far longer than a failed dial's hold-down: still avoided.
	fc.Step(10 * suspectHoldDown)
	pool.CheckPassed(b1.addr, checkStarted)
	for i := range 4 {
		roundTrip(t, dial(t, p.Addr()), fmt.Sprint("new", i))
	}
	s := p.Stats()
	if !s.Backends[0].Suspect || s.Backends[0].Active != 0 || s.Backends[1].Active != 6 {
		t.Errorf("suspect %v, active %d / %d; want true, 0 / 6", s.Backends[0].Suspect, s.Backends[0].Active, s.Backends[1].Active)
	}
	if s.DownClosed != 2 || s.Healthy != 2 {
		t.Errorf("DownClosed %d Healthy %d, want 2 2", s.DownClosed, s.Healthy)
	}
	pool.CheckPassed(b1.addr, fc.Now())
	if p.Stats().Backends[0].Suspect {
		t.Fatal("still suspect after a check started after the mark passed")
	}
	for i := range 2 {
		roundTrip(t, dial(t, p.Addr()), fmt.Sprint("back", i))
	}
	if got := activeOf(p)[b1.addr]; got == 0 {
		t.Error("the cleared backend got no new connection")
	}
}

// TestSuspectKeptByDialFailure: a failed dial does not shorten a mark
// with no time limit, and a passing check after a failed dial ends that
// dial's hold-down early.
func TestSuspectKeptByDialFailure(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
	a := netip.MustParseAddrPort("198.18.0.1:6443")
	pool := NewPool([]netip.AddrPort{a}, nil)
	pool.clock = fc
	b := pool.byAddr[a]
	pool.Suspect(a)
	fc.Step(time.Second)
	pool.markSuspect(b)
	fc.Step(2 * suspectHoldDown)
	if s := b.stats(fc.Now().UnixNano()); !s.Suspect {
		t.Fatal("a failed dial shortened the mark to its own hold-down")
	}
	pool.CheckPassed(a, fc.Now())
	pool.markSuspect(b)
	fc.Step(time.Millisecond)
	pool.CheckPassed(a, fc.Now())
	if s := b.stats(fc.Now().UnixNano()); s.Suspect {
		t.Error("a check that started after the failed dial did not end its hold-down")
	}
}
