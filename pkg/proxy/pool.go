package proxy

import (
	"errors"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/utils/clock"
)

// suspectHoldDown is how long a backend whose dial was refused is skipped
// for new connections unless a health check started after the failure
// passes sooner. Short: it only bridges the gap until the checker (2s
// interval) notices. A timed-out dial's mark lasts until a check passes
// (see holdDownEnds).
const suspectHoldDown = 5 * time.Second

// untilChecked is the hold-down end of a Suspect mark: none, only a
// passing health check ends it.
const untilChecked = math.MaxInt64

// Pool is the set of backends, their health and the selection policy.
// The health checker drives it with SetHealthy; the proxy picks from it.
// Backends start healthy, like haproxy's servers, so the proxy serves
// before the first check completes; failed dials are retried elsewhere.
type Pool struct {
	policy Policy
	// backends is replaced, never changed in place, by Add and Remove
	// (under transition), so readers need no lock.
	backends atomic.Pointer[[]*Backend]
	byAddr   map[netip.AddrPort]*Backend // guarded by transition
	nextIdx  int                         // guarded by transition

	// transition serialises SetHealthy, Add and Remove with their side
	// effects, so OnHealthy sees the counts in the order they happened.
	transition sync.Mutex
	mu         sync.Mutex // guards rebuilding snap
	snap       atomic.Pointer[snapshot]
	healthyN   atomic.Int64

	// Set once by New when a proxy takes the pool.
	attached    atomic.Bool
	clock       clock.PassiveClock
	log         *slog.Logger
	closeOnDown bool
	downClosed  *atomic.Uint64 // the proxy's count of CloseOnDown closes
	onHealthy   func(n int)
	onUp        func()
}

// snapshot is the immutable candidate list, rebuilt on every health or
// suspect change so that selecting costs no lock and no allocation.
type snapshot struct {
	ready   []*Backend // healthy and not suspect
	healthy []*Backend // healthy, suspect or not: the fallback
	expiry  int64      // earliest suspect hold-down end among healthy; 0: none
}

// NewPool returns a pool of addrs, all initially healthy, choosing with
// policy (LeastConn if nil). Duplicate addresses are merged.
func NewPool(addrs []netip.AddrPort, policy Policy) *Pool {
	if policy == nil {
		policy = LeastConn{}
	}
	p := &Pool{
		policy: policy,
		byAddr: make(map[netip.AddrPort]*Backend, len(addrs)),
		clock:  clock.RealClock{},
		log:    slog.New(slog.DiscardHandler),
	}
	var bs []*Backend
	for _, a := range addrs {
		if _, dup := p.byAddr[a]; dup {
			continue
		}
		b := p.newBackend(a)
		b.healthy.Store(true)
		bs = append(bs, b)
	}
	p.backends.Store(&bs)
	p.mu.Lock()
	p.rebuildLocked(0)
	p.mu.Unlock()
	return p
}

// errPoolTaken is returned by New for a pool another proxy already uses.
var errPoolTaken = errors.New("pool already belongs to a proxy")

func (p *Pool) attach(cfg *Config, onUp func(), downClosed *atomic.Uint64) error {
	if !p.attached.CompareAndSwap(false, true) {
		return errPoolTaken
	}
	p.transition.Lock()
	defer p.transition.Unlock()
	p.clock = cfg.Clock
	p.log = cfg.Logger
	p.closeOnDown = cfg.CloseOnDown
	p.onHealthy = cfg.OnHealthy
	p.onUp = onUp
	p.downClosed = downClosed
	return nil
}

func (p *Pool) newBackend(a netip.AddrPort) *Backend {
	b := &Backend{Addr: a, index: p.nextIdx}
	p.nextIdx++
	p.byAddr[a] = b
	return b
}

// list returns the current backends; the slice must not be changed.
func (p *Pool) list() []*Backend { return *p.backends.Load() }

// Backends returns the backends: those given to NewPool, then those
// added, in order, without the removed ones.
func (p *Pool) Backends() []*Backend { return slices.Clone(p.list()) }

// Add puts a backend into the pool at run time (membership discovered a
// new kube-apiserver) and reports whether it was new. Unlike those given
// to NewPool it starts down: the health checker's first verdict on it
// brings it up, so an address listed but not reachable from this node
// never gets a client.
func (p *Pool) Add(addr netip.AddrPort) bool {
	p.transition.Lock()
	defer p.transition.Unlock()
	if _, ok := p.byAddr[addr]; ok {
		return false
	}
	bs := append(slices.Clone(p.list()), p.newBackend(addr))
	p.backends.Store(&bs)
	p.rebuild()
	p.log.Info("backend added", "backend", addr, "backends", len(bs))
	return true
}

// Remove takes a backend out of the pool at run time (membership says
// its kube-apiserver is gone) and reports whether it was there. It gets
// no new connection from then on; established ones are left to end on
// their own (its health check failing closes them with CloseOnDown). A
// healthy backend removed changes the healthy count: OnHealthy is called.
func (p *Pool) Remove(addr netip.AddrPort) bool {
	p.transition.Lock()
	defer p.transition.Unlock()
	b := p.byAddr[addr]
	if b == nil {
		return false
	}
	delete(p.byAddr, addr)
	bs := slices.DeleteFunc(slices.Clone(p.list()), func(x *Backend) bool { return x == b })
	p.backends.Store(&bs)
	n := p.rebuild()
	p.log.Info("backend removed", "backend", addr, "backends", len(bs), "healthy", n, "established", b.Active())
	if b.healthy.Load() && p.onHealthy != nil {
		p.onHealthy(n)
	}
	return true
}

// Healthy returns how many backends the health checker reports up.
func (p *Pool) Healthy() int { return int(p.healthyN.Load()) }

// SetHealthy records the health checker's verdict on addr (unknown
// addresses are ignored). Only transitions have side effects: going down
// closes the backend's established connections when CloseOnDown is set
// (clients otherwise hang on a dead peer until TCP gives up, minutes
// later); any change logs once, recounts the healthy backends and calls
// OnHealthy(n). OnHealthy must not call SetHealthy. Reporting a healthy
// backend healthy again clears a suspect mark from a failed dial.
func (p *Pool) SetHealthy(addr netip.AddrPort, healthy bool) {
	p.transition.Lock()
	defer p.transition.Unlock()
	b := p.byAddr[addr]
	if b == nil {
		return
	}
	if b.healthy.Load() == healthy {
		if healthy && b.suspectUntil.Load() != 0 {
			p.mu.Lock()
			b.clearSuspect()
			p.rebuildLocked(p.clock.Now().UnixNano())
			p.mu.Unlock()
		}
		return
	}
	b.healthy.Store(healthy)
	if healthy {
		p.mu.Lock()
		b.clearSuspect()
		p.mu.Unlock()
	}
	n := p.rebuild()
	if healthy {
		p.log.Info("backend up", "backend", addr, "healthy", n)
		if p.onUp != nil {
			p.onUp()
		}
	} else {
		closed := 0
		if p.closeOnDown {
			closed = b.closeAll()
			p.downClosed.Add(uint64(closed))
		}
		p.log.Warn("backend down", "backend", addr, "healthy", n, "closed", closed)
	}
	if p.onHealthy != nil {
		p.onHealthy(n)
	}
}

// rebuild recomputes the snapshot and returns the healthy count.
func (p *Pool) rebuild() int {
	now := p.clock.Now().UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rebuildLocked(now)
}

func (p *Pool) rebuildLocked(nowNano int64) int {
	s := &snapshot{}
	for _, b := range p.list() {
		if !b.healthy.Load() {
			continue
		}
		s.healthy = append(s.healthy, b)
		u := b.suspectUntil.Load()
		if u != 0 && nowNano < u {
			if s.expiry == 0 || u < s.expiry {
				s.expiry = u
			}
			continue
		}
		s.ready = append(s.ready, b)
	}
	p.snap.Store(s)
	p.healthyN.Store(int64(len(s.healthy)))
	return len(s.healthy)
}

// current returns the snapshot, rebuilt first if a hold-down expired.
func (p *Pool) current() *snapshot {
	s := p.snap.Load()
	if s.expiry != 0 && p.clock.Now().UnixNano() >= s.expiry {
		p.rebuild()
		s = p.snap.Load()
	}
	return s
}

// pick selects a backend for client among the candidates not in tried
// and reserves a connection slot on it (Active counts it at once, so a
// burst of clients spreads). Suspect backends are used only when no
// other healthy one is left. It returns nil when nothing is left.
func (p *Pool) pick(client netip.AddrPort, tried []*Backend) *Backend {
	s := p.current()
	cands := s.ready
	if len(tried) > 0 {
		cands = without(cands, tried)
	}
	if len(cands) == 0 {
		cands = without(s.healthy, tried)
	}
	if len(cands) == 0 {
		return nil
	}
	b := p.policy.Select(cands, client)
	if b == nil {
		return nil
	}
	b.active.Add(1)
	return b
}

func without(bs, tried []*Backend) []*Backend {
	if len(tried) == 0 {
		return bs
	}
	out := make([]*Backend, 0, len(bs))
	for _, b := range bs {
		if !slices.Contains(tried, b) {
			out = append(out, b)
		}
	}
	return out
}

// markSuspect records a dial to b that failed with err: new connections
// avoid it until a check started after now passes, or, when err says
// only that the backend refused (holdDownEnds), suspectHoldDown at most.
func (p *Pool) markSuspect(b *Backend, err error) {
	b.failures.Add(1)
	now := p.clock.Now().UnixNano()
	until := int64(untilChecked)
	if holdDownEnds(err) {
		until = now + int64(suspectHoldDown)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b.suspect(now, until)
	p.rebuildLocked(now)
}

// holdDownEnds reports whether the suspect mark of a dial that failed
// with err ends after suspectHoldDown. A connect that timed out (SYNs
// unanswered: the proxy's own attempt deadline) or found no route to the
// host (its neighbour entry failed) says the host is gone, as a crash
// or a cut link leaves it: such a mark lasts until a health check
// passes, as the health checker needs fall x interval to say down and
// every client sent there meanwhile would wait out its connect share. A
// refusal (the host is up, the apiserver restarting) and anything else
// lift after the hold-down.
func holdDownEnds(err error) bool {
	return !errors.Is(err, syscall.ETIMEDOUT) && !errors.Is(err, syscall.EHOSTUNREACH) && !errors.Is(err, syscall.ENETUNREACH)
}

// Suspect marks the backend at addr suspect on evidence from outside the
// proxy (hapod's daemon: VRRP took over because the router on that
// backend's node went silent, so the node is likely dead). New
// connections avoid it, as after a failed dial, but with no time limit:
// until a health check that started after this call passes, or the
// checker reports it up after a down. A crashed host drops SYNs, and each
// client sent there would wait out its share of ConnectTimeout. With
// CloseOnDown its established connections are closed at once, as on a
// down. It returns how many it closed, and false for an unknown addr.
func (p *Pool) Suspect(addr netip.AddrPort) (closed int, ok bool) {
	p.transition.Lock()
	defer p.transition.Unlock()
	b := p.byAddr[addr]
	if b == nil {
		return 0, false
	}
	now := p.clock.Now().UnixNano()
	p.mu.Lock()
	b.suspect(now, untilChecked)
	p.rebuildLocked(now)
	p.mu.Unlock()
	if p.closeOnDown && b.healthy.Load() {
		closed = b.closeAll()
		p.downClosed.Add(uint64(closed))
	}
	p.log.Warn("backend suspect until a health check passes", "backend", addr, "closed", closed)
	return closed, true
}

// CheckPassed records a passing health check of addr that started at
// start. It ends a suspect mark made before start: the backend answered
// after the evidence against it. A check already under way when the mark
// was made proves nothing (it may have passed just before the crash).
func (p *Pool) CheckPassed(addr netip.AddrPort, start time.Time) {
	p.transition.Lock()
	defer p.transition.Unlock()
	b := p.byAddr[addr]
	if b == nil || b.suspectSince.Load() == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !clearsSuspect(b.suspectSince.Load(), start.UnixNano()) {
		return
	}
	b.clearSuspect()
	p.rebuildLocked(p.clock.Now().UnixNano())
	p.log.Info("backend no longer suspect: a health check passed", "backend", addr)
}

// clearsSuspect reports whether a passing check that started at
// checkStart ends a suspect mark made at markedAt (0: no mark).
func clearsSuspect(markedAt, checkStart int64) bool {
	return markedAt != 0 && checkStart >= markedAt
}
