package proxy

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// Backend is one upstream server (a kube-apiserver) and its counters.
// Counters are atomic; a Backend is shared by every connection to it.
type Backend struct {
	// Addr is where the backend listens.
	Addr netip.AddrPort

	index   int
	healthy atomic.Bool
	// A suspect mark: since when and until when (unix nanoseconds; 0:
	// none; untilChecked: no time limit). Written under Pool.mu.
	suspectSince, suspectUntil atomic.Int64

	active   atomic.Int64  // connections dialling or established
	total    atomic.Uint64 // established connections, ever
	failures atomic.Uint64 // failed dials

	mu sync.Mutex
	// Established connections, oldest first: rebalancing sheds the oldest
	// and CloseOnDown walks them all. Intrusive, so adding and removing
	// costs no allocation.
	head, tail *conn
	// Bytes of connections already closed; live ones count in their conn.
	doneIn, doneOut uint64
}

// suspect marks b suspect from now until until, never shortening a
// mark already there. The caller holds Pool.mu.
func (b *Backend) suspect(now, until int64) {
	b.suspectSince.Store(now)
	if until > b.suspectUntil.Load() {
		b.suspectUntil.Store(until)
	}
}

// clearSuspect ends b's suspect mark. The caller holds Pool.mu.
func (b *Backend) clearSuspect() {
	b.suspectSince.Store(0)
	b.suspectUntil.Store(0)
}

// Active returns the number of connections to b, dials in progress
// included (so concurrent selections see each other).
func (b *Backend) Active() int64 { return b.active.Load() }

// Healthy reports whether the health checker last said b is up.
func (b *Backend) Healthy() bool { return b.healthy.Load() }

// BackendStats is a snapshot of one backend's state and counters.
type BackendStats struct {
	Addr    netip.AddrPort
	Healthy bool
	// Suspect: a recent dial failed, or the daemon reported evidence
	// that b's node died (Pool.Suspect); new connections avoid b until
	// the hold-down expires (a failed dial's) or a health check started
	// after the mark passes.
	Suspect bool
	Active  int64
	Total   uint64
	// BytesIn were received from clients and sent to this backend;
	// BytesOut were received from it and sent to clients (haproxy's
	// bin/bout).
	BytesIn, BytesOut uint64
	ConnectFailures   uint64
}

func (b *Backend) stats(nowNano int64) BackendStats {
	s := BackendStats{
		Addr:            b.Addr,
		Healthy:         b.healthy.Load(),
		Active:          b.active.Load(),
		Total:           b.total.Load(),
		ConnectFailures: b.failures.Load(),
	}
	if u := b.suspectUntil.Load(); u != 0 && nowNano < u {
		s.Suspect = true
	}
	b.mu.Lock()
	s.BytesIn, s.BytesOut = b.doneIn, b.doneOut
	for c := b.head; c != nil; c = c.next {
		s.BytesIn += uint64(c.in.Load())
		s.BytesOut += uint64(c.out.Load())
	}
	b.mu.Unlock()
	return s
}

// add links c at the tail (newest). It refuses when the proxy is
// closing hard, which is checked under b.mu so that closeAll, which
// takes the same lock, cannot miss a connection.
func (b *Backend) add(c *conn, closing *atomic.Bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if closing.Load() {
		return false
	}
	c.prev, c.next = b.tail, nil
	if b.tail != nil {
		b.tail.next = c
	} else {
		b.head = c
	}
	b.tail = c
	b.total.Add(1)
	return true
}

// remove unlinks c and folds its byte counts into the backend's totals.
func (b *Backend) remove(c *conn) {
	b.mu.Lock()
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		b.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		b.tail = c.prev
	}
	c.prev, c.next = nil, nil
	b.doneIn += uint64(c.in.Load())
	b.doneOut += uint64(c.out.Load())
	b.mu.Unlock()
}

// conns returns the established connections, oldest first.
func (b *Backend) conns() []*conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	var cs []*conn
	for c := b.head; c != nil; c = c.next {
		cs = append(cs, c)
	}
	return cs
}

// oldest returns the oldest established connection not already being
// closed, or nil.
func (b *Backend) oldest() *conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := b.head; c != nil; c = c.next {
		if !c.aborted.Load() {
			return c
		}
	}
	return nil
}

// closeAll aborts every established connection and returns how many it
// aborted: one already being closed (idle, rebalanced) is left to the
// reason that closes it, so no close counts twice.
func (b *Backend) closeAll() int {
	n := 0
	for _, c := range b.conns() {
		if c.aborted.Load() {
			continue
		}
		c.abort()
		n++
	}
	return n
}
