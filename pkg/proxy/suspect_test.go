package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
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
		c := dial(t, p.Addrs()[0])
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
		roundTrip(t, dial(t, p.Addrs()[0]), fmt.Sprint("new", i))
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
		roundTrip(t, dial(t, p.Addrs()[0]), fmt.Sprint("back", i))
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
	pool.markSuspect(b, syscall.ECONNREFUSED)
	fc.Step(2 * suspectHoldDown)
	if s := b.stats(fc.Now().UnixNano()); !s.Suspect {
		t.Fatal("a failed dial shortened the mark to its own hold-down")
	}
	pool.CheckPassed(a, fc.Now())
	pool.markSuspect(b, syscall.ECONNREFUSED)
	fc.Step(time.Millisecond)
	pool.CheckPassed(a, fc.Now())
	if s := b.stats(fc.Now().UnixNano()); s.Suspect {
		t.Error("a check that started after the failed dial did not end its hold-down")
	}
}

// TestPickAllocatesNothing: choosing a backend, with a suspect one to
// skip, costs no allocation (the hot path of every new connection).
func TestPickAllocatesNothing(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
	addrs := []netip.AddrPort{
		netip.MustParseAddrPort("198.18.0.1:6443"),
		netip.MustParseAddrPort("198.18.0.2:6443"),
		netip.MustParseAddrPort("198.18.0.3:6443"),
	}
	pool := NewPool(addrs, nil)
	pool.clock = fc
	pool.Suspect(addrs[0])
	client := netip.MustParseAddrPort("198.18.0.100:40000")
	allocs := testing.AllocsPerRun(1000, func() {
		b := pool.pick(client, nil)
		if b == nil || b.Addr == addrs[0] {
			t.Fatalf("picked %v", b)
		}
		b.active.Add(-1)
	})
	if allocs != 0 {
		t.Errorf("pick allocates %v times per call", allocs)
	}
}

func TestHoldDownEnds(t *testing.T) {
	for _, tt := range []struct {
		err  error
		ends bool
	}{
		{syscall.ECONNREFUSED, true}, // the host answered: apiserver restarting
		{syscall.ECONNRESET, true},
		{syscall.ETIMEDOUT, false},    // SYNs unanswered: a dead host
		{syscall.EHOSTUNREACH, false}, // its neighbour entry failed
		{syscall.ENETUNREACH, false},
		{fmt.Errorf("connect: %w", syscall.ETIMEDOUT), false},
	} {
		if got := holdDownEnds(tt.err); got != tt.ends {
			t.Errorf("holdDownEnds(%v) = %v, want %v", tt.err, got, tt.ends)
		}
	}
}

// TestTimedOutDialSuspectUntilChecked: a dial that timed out marks the
// backend until a check passes, not for the refused dial's hold-down.
func TestTimedOutDialSuspectUntilChecked(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
	a := netip.MustParseAddrPort("198.18.0.1:6443")
	pool := NewPool([]netip.AddrPort{a}, nil)
	pool.clock = fc
	b := pool.byAddr[a]
	pool.markSuspect(b, syscall.ETIMEDOUT)
	fc.Step(10 * suspectHoldDown)
	if !b.stats(fc.Now().UnixNano()).Suspect {
		t.Fatal("a timed-out dial's mark ended with the hold-down")
	}
	pool.CheckPassed(a, fc.Now())
	if b.stats(fc.Now().UnixNano()).Suspect {
		t.Error("still suspect after a passing check")
	}
}

func TestAttemptShare(t *testing.T) {
	for _, tt := range []struct {
		left       time.Duration
		candidates int
		want       time.Duration
	}{
		{3 * time.Second, 3, raceDelay},                     // others left: race after raceDelay
		{300 * time.Millisecond, 3, 100 * time.Millisecond}, // an equal share when smaller
		{3 * time.Second, 1, 3 * time.Second},               // the last candidate gets all that is left
		{3 * time.Second, 0, 3 * time.Second},               // a suspect fallback beyond the healthy count
	} {
		if got := attemptShare(tt.left, tt.candidates); got != tt.want {
			t.Errorf("attemptShare(%v, %d) = %v, want %v", tt.left, tt.candidates, got, tt.want)
		}
	}
}
