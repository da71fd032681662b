package proxy

import (
	"time"
)

// maintain runs the coarse timers: the idle sweep and rebalancing. One
// goroutine for all connections instead of a deadline per read; when it
// wakes and what is due then is maintSchedule's.
func (p *Proxy) maintain() {
	clk := p.cfg.Clock
	now := clk.Now()
	s := newMaintSchedule(now, p.cfg.IdleTimeout, p.cfg.RebalanceRate)
	for {
		t := clk.NewTimer(s.wait(now, p.rebalancing.Load()))
		select {
		case <-t.C():
		case <-p.kick:
			t.Stop()
		case <-p.stopping:
			t.Stop()
			return
		}
		now = clk.Now()
		sweep, rebalance := s.due(now)
		if sweep {
			p.sweepIdle(now)
		}
		if rebalance {
			p.rebalanceStep()
		}
	}
}

// maintSchedule decides when the maintenance goroutine wakes and what is
// due then: an idle sweep every tenth of IdleTimeout (1s..1min), and,
// while rebalancing, one step per 1/RebalanceRate. It never reads the
// clock.
type maintSchedule struct {
	idleEvery, rebalanceEvery time.Duration
	nextIdle                  time.Time
	nextRebalance             time.Time // zero while not rebalancing
}

func newMaintSchedule(now time.Time, idleTimeout time.Duration, rebalanceRate int) maintSchedule {
	idleEvery := min(max(idleTimeout/10, time.Second), time.Minute)
	return maintSchedule{
		idleEvery:      idleEvery,
		rebalanceEvery: time.Second / time.Duration(rebalanceRate),
		nextIdle:       now.Add(idleEvery),
	}
}

// wait is how long to sleep from now; rebalancing says that the
// rebalancer is on (its first step comes one interval after it is seen).
func (s *maintSchedule) wait(now time.Time, rebalancing bool) time.Duration {
	wait := s.nextIdle.Sub(now)
	if rebalancing {
		if s.nextRebalance.IsZero() {
			s.nextRebalance = now.Add(s.rebalanceEvery)
		}
		wait = min(wait, s.nextRebalance.Sub(now))
	} else {
		s.nextRebalance = time.Time{}
	}
	return max(wait, 0)
}

// due reports what to do at now and schedules the next of each.
func (s *maintSchedule) due(now time.Time) (sweep, rebalance bool) {
	if !now.Before(s.nextIdle) {
		sweep = true
		s.nextIdle = now.Add(s.idleEvery)
	}
	if !s.nextRebalance.IsZero() && !now.Before(s.nextRebalance) {
		rebalance = true
		s.nextRebalance = now.Add(s.rebalanceEvery)
	}
	return sweep, rebalance
}

// sweepIdle closes connections whose byte counts have not moved for
// IdleTimeout. A connection is first seen at some sweep, so the timeout
// is effective within one sweep interval of its nominal value.
func (p *Proxy) sweepIdle(now time.Time) {
	var idle []*conn
	for _, b := range p.pool.list() {
		b.mu.Lock()
		for c := b.head; c != nil; c = c.next {
			moved := c.in.Load() + c.out.Load()
			if c.idleSince.IsZero() || moved != c.seen {
				c.seen, c.idleSince = moved, now
				continue
			}
			if now.Sub(c.idleSince) >= p.cfg.IdleTimeout {
				idle = append(idle, c)
			}
		}
		b.mu.Unlock()
	}
	for _, c := range idle {
		c.abort()
	}
	if len(idle) > 0 {
		p.idleClosed.Add(uint64(len(idle)))
		p.log.Debug("closed idle connections", "count", len(idle))
	}
}

// startRebalance is the pool's hook for a backend coming up.
func (p *Proxy) startRebalance() {
	if !p.cfg.Rebalance {
		return
	}
	if !p.rebalancing.Swap(true) {
		p.log.Info("rebalancing connections", "rate_per_s", p.cfg.RebalanceRate)
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// rebalanceVictim returns the index of the backend to shed one
// connection from, or -1 when the spread is even (max-min <= 1). Ties go
// to the first, the order being the pool's.
func rebalanceVictim(active []int64) int {
	if len(active) < 2 {
		return -1
	}
	hi, lo := 0, 0
	for i, a := range active {
		if a > active[hi] {
			hi = i
		}
		if a < active[lo] {
			lo = i
		}
	}
	if active[hi]-active[lo] <= 1 {
		return -1
	}
	return hi
}

// rebalanceStep closes the oldest connection of the most loaded ready
// backend, or ends rebalancing when the spread is even.
func (p *Proxy) rebalanceStep() {
	ready := p.pool.current().ready
	active := make([]int64, len(ready))
	for i, b := range ready {
		active[i] = b.active.Load()
	}
	i := rebalanceVictim(active)
	var c *conn
	if i >= 0 {
		c = ready[i].oldest()
	}
	if c == nil {
		p.rebalancing.Store(false)
		p.log.Info("rebalancing done")
		return
	}
	c.abort()
	p.rebalanced.Add(1)
}
