package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// The schedule: a sweep every tenth of IdleTimeout within 1s..1min, and
// while rebalancing one step per interval, the first one interval after
// rebalancing is seen, none before.
func TestMaintSchedule(t *testing.T) {
	for _, tt := range []struct {
		idle, every time.Duration
	}{
		{5 * time.Second, time.Second},
		{10 * time.Second, time.Second},
		{30 * time.Second, 3 * time.Second},
		{time.Hour, time.Minute},
	} {
		if got := newMaintSchedule(time.Time{}, tt.idle, 5).idleEvery; got != tt.every {
			t.Errorf("IdleTimeout %v: sweep every %v, want %v", tt.idle, got, tt.every)
		}
	}

	t0 := time.Unix(1000, 0)
	ms := time.Millisecond
	s := newMaintSchedule(t0, 10*time.Second, 5) // sweep every 1s, rebalance every 200ms
	steps := []struct {
		at          time.Duration
		rebalancing bool
		wait        time.Duration
		sweep, reb  bool // due at at, asked before wait
	}{
		{0, false, time.Second, false, false},
		{100 * ms, true, 200 * ms, false, false}, // rebalancing starts: first step at 300ms
		{200 * ms, true, 100 * ms, false, false}, // half way: nothing due
		{300 * ms, true, 200 * ms, false, true},
		{500 * ms, true, 200 * ms, false, true},
		{700 * ms, true, 200 * ms, false, true},
		{900 * ms, true, 100 * ms, false, true}, // the sweep at 1s comes first
		{time.Second, true, 100 * ms, true, false},
		{1100 * ms, false, 900 * ms, false, true}, // the step that found the spread even
		{2 * time.Second, false, time.Second, true, false},
	}
	for _, st := range steps {
		now := t0.Add(st.at)
		sweep, reb := s.due(now)
		if sweep != st.sweep || reb != st.reb {
			t.Fatalf("at %v: due sweep %v rebalance %v, want %v %v", st.at, sweep, reb, st.sweep, st.reb)
		}
		if got := s.wait(now, st.rebalancing); got != st.wait {
			t.Fatalf("at %v: wait %v, want %v", st.at, got, st.wait)
		}
	}
}

// sweepIdle closes a connection whose byte counts have not moved for
// IdleTimeout since the sweep that first saw it; a busy one stays.
func TestSweepIdle(t *testing.T) {
	b := startBackend(t, echo)
	// The maintenance goroutine waits on a fake clock nobody moves: the
	// test makes every sweep itself.
	p := startProxy(t, NewPool([]netip.AddrPort{b.addr}, nil), func(c *Config) {
		c.Clock = clocktesting.NewFakeClock(time.Unix(1000, 0))
		c.IdleTimeout = 10 * time.Second
	})
	t0 := time.Unix(1000, 0)
	quiet, busy := dial(t, p.Addrs()[0]), dial(t, p.Addrs()[0])
	roundTrip(t, quiet, "once")
	for sec := 1; sec <= 11; sec++ {
		roundTrip(t, busy, "tick")
		// Both counters of the round trip must have landed before the
		// sweep, or the sweep could see the same total twice.
		eventually(t, "counters", func() bool {
			s := p.Stats().Backends[0]
			return s.BytesIn == s.BytesOut
		})
		p.sweepIdle(t0.Add(time.Duration(sec) * time.Second))
		// The quiet one is first seen at second 1, so it is due at 11.
		if want := sec >= 11; (p.Stats().IdleClosed == 1) != want {
			t.Fatalf("second %d: idle closed %d", sec, p.Stats().IdleClosed)
		}
	}
	if !closedByPeer(quiet) {
		t.Error("idle connection still open")
	}
	roundTrip(t, busy, "busy one survives")
}

// Each rebalanceStep closes the oldest connection of the most loaded
// backend; its client reconnects, and least-conn sends it to the emptier
// one. With the spread even the step ends rebalancing and closes nothing.
func TestRebalanceStep(t *testing.T) {
	b1, b2 := startBackend(t, echo), startBackend(t, echo)
	pool := NewPool([]netip.AddrPort{b1.addr, b2.addr}, LeastConn{})
	p := startProxy(t, pool, func(c *Config) {
		c.Clock = clocktesting.NewFakeClock(time.Unix(1000, 0)) // never moved: the test steps
		c.Rebalance = true
	})
	pool.SetHealthy(b2.addr, false)
	var conns []*net.TCPConn
	for i := range 6 {
		c := dial(t, p.Addrs()[0])
		roundTrip(t, c, fmt.Sprint("c", i))
		conns = append(conns, c)
	}
	if got := activeOf(p); got[b1.addr] != 6 {
		t.Fatalf("spread before recovery %v, want all 6 on b1", got)
	}
	pool.SetHealthy(b2.addr, true)
	if !p.rebalancing.Load() {
		t.Fatalf("a backend came up and rebalancing did not start")
	}
	for round := 1; round <= 3; round++ {
		p.rebalanceStep()
		if got := p.Stats().Rebalanced; got != uint64(round) {
			t.Fatalf("round %d: rebalanced %d, want %d", round, got, round)
		}
		if !closedByPeer(conns[round-1]) {
			t.Fatalf("round %d: oldest connection still open", round)
		}
		roundTrip(t, conns[round], "younger ones stay")
		roundTrip(t, dial(t, p.Addrs()[0]), "reconnected")
		want1, want2 := int64(6-round), int64(round)
		eventually(t, fmt.Sprintf("spread %d/%d", want1, want2), func() bool {
			a := activeOf(p)
			return a[b1.addr] == want1 && a[b2.addr] == want2
		})
	}
	p.rebalanceStep()
	if p.rebalancing.Load() {
		t.Error("still rebalancing with an even spread")
	}
	if got := p.Stats().Rebalanced; got != 3 {
		t.Errorf("rebalanced %d, want 3", got)
	}
}

// The maintenance goroutine runs on the injected clock: moving it sweeps
// idle connections and a backend coming up starts rebalancing, which
// stops once the spread is even.
func TestMaintenanceRunsOnTheClock(t *testing.T) {
	b1, b2 := startBackend(t, echo), startBackend(t, echo)
	fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
	pool := NewPool([]netip.AddrPort{b1.addr, b2.addr}, LeastConn{})
	p := startProxy(t, pool, func(c *Config) {
		c.Clock = fc
		c.IdleTimeout = 10 * time.Second // long after rebalancing is done
		c.Rebalance = true
		c.RebalanceRate = 5
	})
	pool.SetHealthy(b2.addr, false)
	for i := range 4 {
		roundTrip(t, dial(t, p.Addrs()[0]), fmt.Sprint("c", i))
	}
	pool.SetHealthy(b2.addr, true)
	// 4/0: one step makes it 3/0, then 2/0, then 1/0, which is even enough.
	eventually(t, "rebalanced 3 and done", func() bool {
		fc.Step(200 * time.Millisecond)
		return p.Stats().Rebalanced == 3 && !p.rebalancing.Load()
	})
	eventually(t, "the last connection closed as idle", func() bool {
		fc.Step(time.Second)
		return p.Stats().IdleClosed == 1
	})
}
