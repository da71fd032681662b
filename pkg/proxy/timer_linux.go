package proxy

import (
	"time"

	"golang.org/x/sys/unix"
)

// A loop's deadlines are instants of Config.Clock in unix nanoseconds,
// like every other timer of the proxy, so a fake clock drives them in
// tests: each connection's one pending deadline (its connect attempt, or
// the pause before the next round of attempts) in the loop's timerHeap,
// and the end of the accept back-off (loop.resumeAt). The loop waits for
// the earliest (see wait) and fires what is due after each batch of
// events (expire).

// clockNow returns Config.Clock's time, the base of the loop's
// deadlines, in unix nanoseconds.
func (l *loop) clockNow() int64 { return l.p.cfg.Clock.Now().UnixNano() }

// untilTimer returns how long it is until the clock reaches at.
func (l *loop) untilTimer(at int64) time.Duration { return time.Duration(at - l.clockNow()) }

// nextTimer returns the loop's earliest deadline; 0: none.
func (l *loop) nextTimer() int64 {
	next := int64(0)
	if len(l.timers) > 0 {
		next = l.timers[0].when
	}
	if l.resumeAt != 0 && (next == 0 || l.resumeAt < next) {
		next = l.resumeAt
	}
	return next
}

// expire fires the deadlines due at now: accepting resumes, a connect
// attempt fails with ETIMEDOUT, a paused connection starts its next round
// of attempts.
func (l *loop) expire(now int64) {
	if l.resumeAt != 0 && now >= l.resumeAt {
		l.resumeAt = 0
		if err := l.listen(); err != nil {
			l.p.log.Error("resume accepting", "err", err)
		}
	}
	for len(l.timers) > 0 && l.timers[0].when <= now {
		c := l.timers[0]
		l.timers.remove(c)
		switch c.state {
		case stateDialing:
			l.dialFailed(c, unix.ETIMEDOUT)
		case statePaused:
			l.dial(c)
		}
	}
}

// addTimer sets c's one pending deadline to when.
func (l *loop) addTimer(c *conn, when int64) {
	l.timers.remove(c)
	c.when = when
	l.timers.push(c)
}

// timerHeap orders connections by their one pending deadline (connect
// attempt or retry pause), a min-heap on conn.when. Each connection knows
// its index, so the deadline goes away the moment a connect succeeds:
// nothing is kept alive until a stale deadline would have expired.
type timerHeap []*conn

func (h *timerHeap) push(c *conn) {
	*h = append(*h, c)
	c.tidx = len(*h) - 1
	h.up(c.tidx)
}

// remove takes c out of the heap if it is in it.
func (h *timerHeap) remove(c *conn) {
	i := c.tidx
	if i < 0 {
		return
	}
	a := *h
	last := len(a) - 1
	h.swap(i, last)
	a[last] = nil
	*h = a[:last]
	c.tidx = -1
	if i < last {
		h.down(i)
		h.up(i)
	}
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].tidx, h[j].tidx = i, j
}

func (h timerHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent].when <= h[i].when {
			return
		}
		h.swap(parent, i)
		i = parent
	}
}

func (h timerHeap) down(i int) {
	for {
		small, l, r := i, 2*i+1, 2*i+2
		if l < len(h) && h[l].when < h[small].when {
			small = l
		}
		if r < len(h) && h[r].when < h[small].when {
			small = r
		}
		if small == i {
			return
		}
		h.swap(i, small)
		i = small
	}
}
