package proxy

import (
	"time"
)

// maintain runs the coarse timers: the idle sweep and rebalancing. One
// goroutine for all connections instead of a deadline per read.
func (p *Proxy) maintain() {
	clk := p.cfg.Clock
	idleEvery := min(max(p.cfg.IdleTimeout/10, time.Second), time.Minute)
	rebalanceEvery := time.Second / time.Duration(p.cfg.RebalanceRate)
	now := clk.Now()
	nextIdle := now.Add(idleEvery)
	var nextRebalance time.Time
	for {
		wait := nextIdle.Sub(now)
		if p.rebalancing.Load() {
			if nextRebalance.IsZero() {
				nextRebalance = now.Add(rebalanceEvery)
			}
			wait = min(wait, nextRebalance.Sub(now))
		} else {
			nextRebalance = time.Time{}
		}
		t := clk.NewTimer(max(wait, 0))
		if p.tickDone != nil { // tests step a fake clock in lockstep
			select {
			case p.tickDone <- struct{}{}:
			case <-p.stopping:
				t.Stop()
				return
			}
		}
		select {
		case <-t.C():
		case <-p.kick:
			t.Stop()
		case <-p.stopping:
			t.Stop()
			return
		}
		now = clk.Now()
		if !now.Before(nextIdle) {
			p.sweepIdle(now)
			nextIdle = now.Add(idleEvery)
		}
		if !nextRebalance.IsZero() && !now.Before(nextRebalance) {
			p.rebalanceStep()
			nextRebalance = now.Add(rebalanceEvery)
		}
	}
}

// sweepIdle closes connections whose byte counts have not moved for
// IdleTimeout. A connection is first seen at some sweep, so the timeout
// is effective within one sweep interval of its nominal value.
func (p *Proxy) sweepIdle(now time.Time) {
	var idle []*conn
	for _, b := range p.pool.backends {
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
