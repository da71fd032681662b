package membership

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// TrackerConfig configures a Tracker.
type TrackerConfig struct {
	Config
	// Persisted is the set a previous run saved (see Load).
	Persisted []netip.AddrPort
	// StatePath is where the discovered members are saved after every
	// change (see Save); empty: not saved.
	StatePath string
	// Clock stamps inputs and times removals (default: real).
	Clock clock.Clock
	// Logger gets one line per change, with its cause (default: discard).
	Logger *slog.Logger
	// OnChange is called after every change with the changes and the
	// whole set after them, one call at a time, in order. It must not
	// call the Tracker.
	OnChange func(changes []Change, members []netip.AddrPort)
}

// Status is a Tracker's state, for status pages and metrics.
type Status struct {
	Members []Member
	// Reachable: the last read of the API succeeded.
	Reachable bool
	// LastRead is when the API was last read, successfully or not; zero
	// before the first read.
	LastRead time.Time
	// LastErr is the last failed read's error, cleared by a success.
	LastErr string
	// Reads counts the reads by result.
	Reads map[ReadResult]uint64
	// Added and Removed count the changes by reason, since start
	// (the static and persisted members of the start included).
	Added, Removed map[Reason]uint64
	// SaveErrors counts failed writes of the state file.
	SaveErrors uint64
}

// ReadResult is the outcome of one read of the API, for the counters.
type ReadResult string

// The read results.
const (
	ReadOK     ReadResult = "ok"
	ReadError  ReadResult = "error"  // no apiserver answered, or an error status
	ReadDenied ReadResult = "denied" // the node's identity may not read the list
)

// ErrDenied is wrapped by a source's error when the API refused the
// read (401 or 403): the Tracker counts it apart.
var ErrDenied = errors.New("access denied")

// Tracker is the Set's driver: it owns the Set behind one mutex, feeds it
// the source's reads with the clock's time, removes expired members on
// time, saves the discovered ones and reports every change.
type Tracker struct {
	cfg  TrackerConfig
	wake chan struct{} // a new deadline may be earlier

	mu  sync.Mutex // guards set and st; held across OnChange to keep order
	set *Set
	st  Status
}

// NewTracker returns a Tracker starting from the static and persisted
// members; OnChange is called with them before it returns.
func NewTracker(cfg TrackerConfig) *Tracker {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Tracker{
		cfg:  cfg,
		wake: make(chan struct{}, 1),
		st: Status{
			Reads: make(map[ReadResult]uint64),
			Added: make(map[Reason]uint64), Removed: make(map[Reason]uint64),
		},
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	set, changes := New(cfg.Config, cfg.Clock.Now(), cfg.Persisted)
	t.set = set
	t.applyLocked(changes, nil)
	return t
}

// Observe feeds a successful read: the members the API listed.
func (t *Tracker) Observe(members []netip.AddrPort) {
	t.step(Observed{Members: members}, ReadOK, nil)
}

// Unreachable feeds a failed read. An err wrapping ErrDenied counts as
// denied.
func (t *Tracker) Unreachable(err error) {
	r := ReadError
	if errors.Is(err, ErrDenied) {
		r = ReadDenied
	}
	t.step(Unreachable{Err: err}, r, err)
}

func (t *Tracker) step(in Input, r ReadResult, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Clock.Now()
	t.st.LastRead, t.st.LastErr = now, ""
	if err != nil {
		t.st.LastErr = err.Error()
	}
	t.st.Reads[r]++
	t.applyLocked(t.set.Step(now, in), in)
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// applyLocked counts, logs, saves and reports changes caused by in; a
// nil in is the start, whose members came from the flags and the saved
// file: one log line for them, and nothing new to save.
func (t *Tracker) applyLocked(changes []Change, in Input) {
	if len(changes) == 0 {
		return
	}
	members := t.set.Addrs()
	for _, c := range changes {
		if c.Added {
			t.st.Added[c.Reason]++
		} else {
			t.st.Removed[c.Reason]++
		}
	}
	if in == nil {
		var static, persisted []netip.AddrPort
		for _, c := range changes {
			if c.Reason == ReasonPersisted {
				persisted = append(persisted, c.Member)
			} else {
				static = append(static, c.Member)
			}
		}
		t.cfg.Logger.Info("members at start", "static", static, "persisted", persisted, "members", len(members))
	} else {
		for _, c := range changes {
			if c.Added {
				t.cfg.Logger.Info("member added", "member", c.Member, "cause", c.Reason, "members", len(members))
			} else {
				t.cfg.Logger.Info("member removed", "member", c.Member, "cause", c.Reason,
					"grace", t.set.grace, "members", len(members))
			}
		}
		if t.cfg.StatePath != "" {
			if err := Save(t.cfg.StatePath, t.set.Discovered()); err != nil {
				t.st.SaveErrors++
				t.cfg.Logger.Warn("could not save the members; a restart during an API outage starts from an older set", "err", err)
			}
		}
	}
	if t.cfg.OnChange != nil {
		t.cfg.OnChange(changes, members)
	}
}

// Members returns the current set, sorted.
func (t *Tracker) Members() []netip.AddrPort {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.set.Addrs()
}

// Status returns a snapshot of the Tracker's state.
func (t *Tracker) Status() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.st
	st.Members = t.set.Members()
	st.Reachable = t.set.Reachable()
	st.Reads, st.Added, st.Removed = clone(st.Reads), clone(st.Added), clone(st.Removed)
	return st
}

func clone[K comparable](m map[K]uint64) map[K]uint64 {
	out := make(map[K]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Run removes members when their grace period ends, until ctx ends.
func (t *Tracker) Run(ctx context.Context) {
	for {
		t.mu.Lock()
		next := t.set.NextDeadline()
		t.mu.Unlock()
		var timer clock.Timer
		var fire <-chan time.Time
		if !next.IsZero() {
			timer = t.cfg.Clock.NewTimer(next.Sub(t.cfg.Clock.Now()))
			fire = timer.C()
		}
		select {
		case <-ctx.Done():
		case <-t.wake:
		case <-fire:
			t.mu.Lock()
			t.applyLocked(t.set.Step(t.cfg.Clock.Now(), Tick{}), Tick{})
			t.mu.Unlock()
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}
