package health

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Defaults of Config, the same as hapod's --health-* flags and close to
// the haproxy settings of kubeadm's HA guide (inter 2s, fall 3, rise 2).
const (
	DefaultInterval = 2 * time.Second
	DefaultTimeout  = time.Second
	DefaultRise     = 2
	DefaultFall     = 3
)

// Config tunes a Prober. Zero fields take the defaults.
type Config struct {
	// Interval between the starts of two checks of one backend
	// (default DefaultInterval, 2s).
	Interval time.Duration
	// Timeout of one check (default DefaultTimeout, 1s). It is a real-time
	// deadline on the check's context, since the check does real I/O.
	Timeout time.Duration
	// Rise is how many successes in a row bring a backend up
	// (default DefaultRise, 2).
	Rise int
	// Fall is how many failures in a row take a backend down
	// (default DefaultFall, 3).
	Fall int
	// Clock schedules the checks and timestamps results
	// (default clock.RealClock).
	Clock clock.Clock
	// Logger gets a debug line per failed check (default: discard).
	// Transitions are the caller's to log, from onTransition.
	Logger *slog.Logger
	// Observe, when set, is called after every check with its latency
	// and result, e.g. to feed a Prometheus histogram. It runs on the
	// backend's checking goroutine and must not block.
	Observe func(backend netip.AddrPort, d time.Duration, err error)
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Rise <= 0 {
		c.Rise = DefaultRise
	}
	if c.Fall <= 0 {
		c.Fall = DefaultFall
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Transition reports that a backend changed state, or its first state.
type Transition struct {
	Backend netip.AddrPort
	Healthy bool
	// Err is the failing check's error when Healthy is false.
	Err error
	At  time.Time
}

// Result is a snapshot of one backend's checks, for status pages.
type Result struct {
	Backend netip.AddrPort
	// Healthy is the state after hysteresis; false until the first check.
	Healthy bool
	// LastErr is the last check's error, nil if it passed.
	LastErr error
	// LastCheck is when the last check ended; zero before the first.
	LastCheck   time.Time
	LastLatency time.Duration
	// Checks counts the checks done.
	Checks uint64
}

// Prober checks a set of backends periodically and reports state
// changes. It owns the per-backend state behind one mutex. Backends can
// be added and removed while it runs (Add, Remove).
type Prober struct {
	cfg          Config
	checker      Checker
	onTransition func(Transition)

	mu       sync.Mutex
	backends []netip.AddrPort // in the order given, then added
	state    map[netip.AddrPort]*backendState
	runCtx   context.Context // set by Run; nil before
	wg       sync.WaitGroup  // the checking goroutines

	// notifyMu serialises onTransition calls so the callback need not be
	// safe for concurrent use.
	notifyMu sync.Mutex
}

type backendState struct {
	hyst Hysteresis
	res  Result
	stop context.CancelFunc // ends this backend's checks; nil before Run
}

// NewProber returns a Prober for backends (duplicates are checked once).
// onTransition may be nil; it is called, one call at a time, for every
// backend's first result and then only when a backend's state changes.
func NewProber(cfg Config, checker Checker, backends []netip.AddrPort, onTransition func(Transition)) *Prober {
	cfg = cfg.withDefaults()
	p := &Prober{
		cfg:          cfg,
		checker:      checker,
		onTransition: onTransition,
		state:        make(map[netip.AddrPort]*backendState, len(backends)),
	}
	for _, b := range backends {
		p.addLocked(b)
	}
	return p
}

// addLocked adds b if new, and starts checking it if Run is running.
func (p *Prober) addLocked(b netip.AddrPort) bool {
	if _, dup := p.state[b]; dup {
		return false
	}
	st := &backendState{
		hyst: Hysteresis{Rise: p.cfg.Rise, Fall: p.cfg.Fall},
		res:  Result{Backend: b},
	}
	p.backends = append(p.backends, b)
	p.state[b] = st
	if p.runCtx != nil {
		p.startLocked(b, st)
	}
	return true
}

func (p *Prober) startLocked(b netip.AddrPort, st *backendState) {
	ctx, stop := context.WithCancel(p.runCtx)
	st.stop = stop
	p.wg.Go(func() { p.runBackend(ctx, b, st) })
}

// Add starts checking b, at once if Run is running, and reports whether
// it is new. Its first result is reported like those of the first
// backends.
func (p *Prober) Add(b netip.AddrPort) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addLocked(b)
}

// Remove stops checking b, forgets its state and reports whether it was
// checked. A check of b already running finishes unreported.
func (p *Prober) Remove(b netip.AddrPort) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.state[b]
	if st == nil {
		return false
	}
	if st.stop != nil {
		st.stop()
	}
	delete(p.state, b)
	p.backends = slices.DeleteFunc(p.backends, func(x netip.AddrPort) bool { return x == b })
	return true
}

// Run checks every backend, all at once on start and then every
// Interval, until ctx ends; it returns when all checks have stopped. The
// schedule is fixed (start + n*Interval): a check that overruns skips the
// slots it missed instead of drifting. Call Run once.
func (p *Prober) Run(ctx context.Context) {
	p.mu.Lock()
	p.runCtx = ctx
	for _, b := range p.backends {
		p.startLocked(b, p.state[b])
	}
	p.mu.Unlock()
	<-ctx.Done()
	p.mu.Lock()
	p.runCtx = nil // a backend added from now on is not checked
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Prober) runBackend(ctx context.Context, b netip.AddrPort, st *backendState) {
	clk, interval := p.cfg.Clock, p.cfg.Interval
	next := clk.Now()
	for {
		p.checkOnce(ctx, b, st)
		if ctx.Err() != nil {
			return
		}
		now := clk.Now()
		next = nextSlot(next, now, interval)
		t := clk.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// nextSlot returns the first slot of the fixed schedule (prev + n*interval,
// n >= 1) that is after now: a check that overran skips the slots it
// missed rather than firing a burst of late checks.
func nextSlot(prev, now time.Time, interval time.Duration) time.Time {
	next := prev.Add(interval)
	if next.After(now) {
		return next
	}
	return next.Add((now.Sub(next)/interval + 1) * interval)
}

// checkOnce runs one check of b and records it in st.
func (p *Prober) checkOnce(ctx context.Context, b netip.AddrPort, st *backendState) {
	clk := p.cfg.Clock
	cctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	start := clk.Now()
	err := p.checker.Check(cctx, b)
	cancel()
	end := clk.Now()
	if ctx.Err() != nil {
		// Stopping, or b removed: a check cut short says nothing about
		// the backend and must not be reported as a failure.
		return
	}
	latency := end.Sub(start)
	if p.cfg.Observe != nil {
		p.cfg.Observe(b, latency, err)
	}
	if err != nil {
		p.cfg.Logger.Debug("health check failed", "backend", b, "err", err, "latency", latency)
	}

	p.mu.Lock()
	if p.state[b] != st {
		p.mu.Unlock() // removed while checking
		return
	}
	changed, healthy := st.hyst.Record(err == nil)
	st.res.Healthy = healthy
	st.res.LastErr = err
	st.res.LastCheck = end
	st.res.LastLatency = latency
	st.res.Checks++
	p.mu.Unlock()

	if changed && p.onTransition != nil {
		p.notifyMu.Lock()
		// Not if b was removed meanwhile: its verdict would be stale.
		if ctx.Err() == nil {
			p.onTransition(Transition{Backend: b, Healthy: healthy, Err: err, At: end})
		}
		p.notifyMu.Unlock()
	}
}

// Results returns a snapshot of every backend, in the order given to
// NewProber, then in the order added.
func (p *Prober) Results() []Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Result, 0, len(p.backends))
	for _, b := range p.backends {
		out = append(out, p.state[b].res)
	}
	return out
}
