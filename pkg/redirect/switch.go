package redirect

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Applier changes the kernel's rule set. Switch is its only caller; tests
// fake it.
type Applier interface {
	// Present reports whether hapod's table named table exists.
	Present(table string) (bool, error)
	// Replace installs rs in one transaction, replacing a table of the
	// same name and everything in it.
	Replace(rs Ruleset) error
	// Delete removes hapod's table named table and everything in it; a
	// missing table is no error.
	Delete(table string) error
}

// Reason says why the redirect is installed or not.
type Reason int

// The reasons. The zero value is invalid.
const (
	ReasonStarting  Reason = iota + 1 // Start has not run yet
	ReasonServing                     // installed: the proxy listens and has a healthy backend
	ReasonNoBackend                   // removed: no healthy backend; VIP:Port reaches the local apiserver
	ReasonStopped                     // removed: hapod is stopping
)

func (r Reason) String() string {
	switch r {
	case ReasonStarting:
		return "starting"
	case ReasonServing:
		return "serving"
	case ReasonNoBackend:
		return "no healthy backend"
	case ReasonStopped:
		return "stopped"
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// decide is the whole policy: the redirect is wanted exactly while the
// proxy can serve (it listens from before Start until Stop, so that is:
// at least one healthy backend, and not stopping).
func decide(healthy int, stopped bool) (install bool, why Reason) {
	switch {
	case stopped:
		return false, ReasonStopped
	case healthy == 0:
		return false, ReasonNoBackend
	}
	return true, ReasonServing
}

// State is a snapshot of the redirect for status and metrics.
type State struct {
	// Installed says whether the table is in the kernel, as far as the
	// last successful change knows.
	Installed bool
	// Reason is why the redirect is wanted or not; when Err is set,
	// Installed may differ from what Reason wants.
	Reason Reason
	// Since is when Installed last changed (the zero time before Start).
	Since time.Time
	// Changes counts installs and removals.
	Changes uint64
	// Failures counts failed changes; Err is the last one, nil once a
	// change succeeds.
	Failures uint64
	Err      error
}

// Switch owns hapod's table: it installs the rule set while the proxy can
// serve and removes it otherwise, calling its Applier only on
// transitions (and again after a failed one).
type Switch struct {
	applier Applier
	rs      Ruleset
	spec    Spec
	clock   clock.PassiveClock
	log     *slog.Logger

	mu      sync.Mutex
	state   State
	stopped bool
}

// NewSwitch returns a switch for spec, not yet started. clk and log may be
// nil (the real clock, discard).
func NewSwitch(spec Spec, applier Applier, clk clock.PassiveClock, log *slog.Logger) (*Switch, error) {
	rs, err := spec.Ruleset()
	if err != nil {
		return nil, err
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Switch{applier: applier, rs: rs, spec: spec, clock: clk, log: log,
		state: State{Reason: ReasonStarting}}, nil
}

// Spec returns what the switch redirects.
func (s *Switch) Spec() Spec { return s.spec }

// Start takes over hapod's table, whatever a previous run (SIGKILLed, so
// it could not remove it) left: it installs the rule set when healthy
// backends are healthy (replacing the old table in one transaction), else
// removes the table. It reports whether a table was there before.
func (s *Switch) Start(healthy int) (stale bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stale, err = s.applier.Present(s.rs.Table); err != nil {
		return false, fmt.Errorf("nftables table %s: %w", s.rs.Table, err)
	}
	// The kernel's table is what a predecessor left: make it false or
	// true for real, replacing it atomically when it stays.
	s.state.Installed = stale
	install, why := decide(healthy, false)
	return stale, s.applyLocked(install, why, true)
}

// SetHealthy applies the rule for n healthy backends. Once stopped, it
// does nothing.
func (s *Switch) SetHealthy(n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.state.Reason == ReasonStarting {
		return nil
	}
	install, why := decide(n, false)
	return s.applyLocked(install, why, false)
}

// Stop removes the table for good: VIP:Port reaches the local apiserver
// again, and later SetHealthy calls change nothing.
func (s *Switch) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	install, why := decide(0, true)
	return s.applyLocked(install, why, s.state.Reason == ReasonStarting)
}

// Reconcile makes the kernel match what the switch wants now, for the
// changes nobody told it about: a failed change is tried again, and a
// table removed behind hapod's back (`nft flush ruleset`, an nftables
// service restart) is installed again, with a warning. Call it every
// ReconcileInterval; it does nothing before Start or after Stop. It logs
// its own failures.
func (s *Switch) Reconcile() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.state.Reason == ReasonStarting {
		return nil
	}
	install := s.state.Reason == ReasonServing
	if s.state.Err != nil {
		return s.applyLocked(install, s.state.Reason, true)
	}
	present, err := s.applier.Present(s.rs.Table)
	if err != nil {
		s.state.Failures++
		s.state.Err = err
		s.log.Error("could not read the redirect table", "table", s.rs.Table, "err", err)
		return fmt.Errorf("nftables table %s: %w", s.rs.Table, err)
	}
	if present == install {
		return nil
	}
	if install {
		s.log.Warn("the redirect table is gone from the kernel (flushed by someone else?): installing it again", "table", s.rs.Table)
	} else {
		s.log.Warn("a redirect table hapod had removed is in the kernel: removing it", "table", s.rs.Table)
	}
	// The kernel differs from what the state says: apply as at start.
	s.state.Installed = present
	return s.applyLocked(install, s.state.Reason, true)
}

// ReconcileInterval is how often hapod calls Reconcile: the kernel is
// asked whether one table exists, a cheap netlink dump.
const ReconcileInterval = 2 * time.Second

// State returns the current state.
func (s *Switch) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// applyLocked makes the kernel match install. force applies even when the
// recorded state already matches (at start, where the kernel's table may
// be a predecessor's, with rules of its own).
func (s *Switch) applyLocked(install bool, why Reason, force bool) error {
	s.state.Reason = why
	if !force && s.state.Err == nil && s.state.Installed == install {
		return nil
	}
	var err error
	if install {
		err = s.applier.Replace(s.rs)
	} else {
		err = s.applier.Delete(s.rs.Table)
	}
	if err != nil {
		s.state.Failures++
		s.state.Err = err
		verb := "remove"
		if install {
			verb = "install"
		}
		s.log.Error("could not "+verb+" the redirect", "table", s.rs.Table, "reason", why.String(), "err", err)
		return fmt.Errorf("%s nftables table %s: %w", verb, s.rs.Table, err)
	}
	s.state.Err = nil
	changed := s.state.Installed != install
	s.state.Installed = install
	if changed {
		s.state.Changes++
	}
	if !changed && !force {
		return nil
	}
	s.state.Since = s.clock.Now()
	if install {
		s.log.Info("redirect installed", "rules", s.rs.Chains[0].Rules, "table", s.rs.Table)
	} else {
		s.log.Info("redirect removed", "reason", why.String(), "table", s.rs.Table)
	}
	return nil
}
