package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// lockstep makes the maintenance loop report each time it arms its
// timer, so a test can step the fake clock only while the loop waits.
func lockstep(p *Proxy) { p.tickDone = make(chan struct{}) }

func TestRebalanceEvensSpreadAtBoundedRate(t *testing.T) {
	b1, b2 := startBackend(t, echo), startBackend(t, echo)
	fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
	pool := NewPool([]netip.AddrPort{b1.addr, b2.addr}, LeastConn{})
	p := startProxy(t, pool, func(c *Config) {
		c.Clock = fc
		c.Rebalance = true
		c.RebalanceRate = 5 // one close per 200ms
	}, lockstep)
	<-p.tickDone

	pool.SetHealthy(b2.addr, false)
	var conns []*net.TCPConn
	for i := range 6 {
		c := dial(t, p.Addr())
		roundTrip(t, c, fmt.Sprint("c", i))
		conns = append(conns, c)
	}
	if got := activeOf(p); got[b1.addr] != 6 {
		t.Fatalf("spread before recovery %v, want all 6 on b1", got)
	}

	pool.SetHealthy(b2.addr, true) // kicks the loop: rebalancing starts
	<-p.tickDone
	for round := 1; round <= 3; round++ {
		// Half the interval: the timer has not fired, nothing closes.
		fc.Step(100 * time.Millisecond)
		if got := p.Stats().Rebalanced; got != uint64(round-1) {
			t.Fatalf("round %d: %d closed before the interval elapsed", round, got)
		}
		fc.Step(100 * time.Millisecond)
		<-p.tickDone
		if got := p.Stats().Rebalanced; got != uint64(round) {
			t.Fatalf("round %d: rebalanced %d, want %d (one per interval)", round, got, round)
		}
		// The oldest connection went; its client reconnects, and
		// least-conn sends it to the emptier backend.
		if !closedByPeer(conns[round-1]) {
			t.Fatalf("round %d: oldest connection still open", round)
		}
		roundTrip(t, conns[round], "younger ones stay")
		roundTrip(t, dial(t, p.Addr()), "reconnected")
		want1, want2 := int64(6-round), int64(round)
		eventually(t, fmt.Sprintf("spread %d/%d", want1, want2), func() bool {
			a := activeOf(p)
			return a[b1.addr] == want1 && a[b2.addr] == want2
		})
	}
	// Even now: the next tick ends rebalancing without closing more.
	fc.Step(200 * time.Millisecond)
	<-p.tickDone
	if p.rebalancing.Load() {
		t.Error("still rebalancing with an even spread")
	}
	if got := p.Stats().Rebalanced; got != 3 {
		t.Errorf("rebalanced %d, want 3", got)
	}
}

func TestIdleTimeout(t *testing.T) {
	b := startBackend(t, echo)
	fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
	p := startProxy(t, NewPool([]netip.AddrPort{b.addr}, nil), func(c *Config) {
		c.Clock = fc
		c.IdleTimeout = 10 * time.Second // swept every second
	}, lockstep)
	<-p.tickDone
	quiet, busy := dial(t, p.Addr()), dial(t, p.Addr())
	roundTrip(t, quiet, "once")
	for sec := 1; sec <= 11; sec++ {
		roundTrip(t, busy, "tick")
		// Both counters of the round trip must have landed before the
		// sweep, or the sweep could see the same total twice.
		eventually(t, "counters", func() bool {
			s := p.Stats().Backends[0]
			return s.BytesIn == s.BytesOut
		})
		fc.Step(time.Second)
		<-p.tickDone
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
