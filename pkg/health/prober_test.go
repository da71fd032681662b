package health

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// scriptedChecker hands every check to the test, which answers it.
type scriptedChecker struct{ calls chan scriptedCall }

type scriptedCall struct {
	backend netip.AddrPort
	reply   chan error
}

func (s *scriptedChecker) Check(ctx context.Context, b netip.AddrPort) error {
	reply := make(chan error, 1)
	select {
	case s.calls <- scriptedCall{b, reply}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

var errDown = errors.New("backend down")

// proberHarness runs a Prober on a fake clock, one lock-step round at a
// time: no sleeps, no timing assumptions.
type proberHarness struct {
	t        *testing.T
	clk      *clocktesting.FakeClock
	checker  *scriptedChecker
	prober   *Prober
	interval time.Duration
	n        int

	mu          sync.Mutex
	transitions []Transition
	observed    int
}

func newProberHarness(t *testing.T, cfg Config, backends ...netip.AddrPort) *proberHarness {
	h := &proberHarness{
		t:        t,
		clk:      clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		checker:  &scriptedChecker{calls: make(chan scriptedCall)},
		interval: cfg.Interval,
	}
	cfg.Clock = h.clk
	cfg.Observe = func(netip.AddrPort, time.Duration, error) {
		h.mu.Lock()
		h.observed++
		h.mu.Unlock()
	}
	h.prober = NewProber(cfg, h.checker, backends, func(tr Transition) {
		h.mu.Lock()
		h.transitions = append(h.transitions, tr)
		h.mu.Unlock()
	})
	h.n = len(h.prober.Results())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		h.prober.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return h
}

// round answers one check of every backend with results[backend] (nil
// when absent), waits until every checking goroutine has armed its next
// timer, and returns the transitions this round produced, by backend.
// The clock then moves one interval on, starting the next round.
func (h *proberHarness) round(results map[netip.AddrPort]error) []Transition {
	h.t.Helper()
	guard := time.After(10 * time.Second) // a hang guard, not a timing assertion
	for range h.n {
		select {
		case c := <-h.checker.calls:
			c.reply <- results[c.backend]
		case <-guard:
			h.t.Fatal("no check started")
		}
	}
	for h.clk.Waiters() < h.n {
		select {
		case <-guard:
			h.t.Fatalf("checking goroutines did not wait for their next slot (%d of %d)", h.clk.Waiters(), h.n)
		case <-time.After(time.Millisecond):
		}
	}
	h.mu.Lock()
	got := h.transitions
	h.transitions = nil
	h.mu.Unlock()
	slices.SortFunc(got, func(a, b Transition) int { return a.Backend.Compare(b.Backend) })
	h.clk.Step(h.interval)
	return got
}

func TestProberTransitionsOnlyOnChange(t *testing.T) {
	b := netip.MustParseAddrPort("198.18.0.1:6443")
	h := newProberHarness(t, Config{Interval: 2 * time.Second, Rise: 2, Fall: 3}, b)
	start := h.clk.Now()

	up := map[netip.AddrPort]error{}
	down := map[netip.AddrPort]error{b: errDown}
	steps := []struct {
		results map[netip.AddrPort]error
		want    []bool // healthy of the transitions expected this round
	}{
		{up, []bool{true}}, // first result: reported at once
		{up, nil},
		{down, nil},
		{down, nil},
		{down, []bool{false}}, // fall 3
		{down, nil},
		{up, nil},
		{down, nil}, // a failure resets the rise count
		{up, nil},
		{up, []bool{true}}, // rise 2
		{up, nil},
	}
	for i, st := range steps {
		got := h.round(st.results)
		if len(got) != len(st.want) {
			t.Fatalf("round %d: transitions %+v, want healthy=%v", i, got, st.want)
		}
		for j, tr := range got {
			if tr.Backend != b || tr.Healthy != st.want[j] {
				t.Fatalf("round %d: transition %+v, want backend %v healthy %v", i, tr, b, st.want[j])
			}
			if !tr.Healthy && !errors.Is(tr.Err, errDown) {
				t.Errorf("round %d: down transition carries err %v, want %v", i, tr.Err, errDown)
			}
			// Checks run on the fixed schedule start + i*interval.
			if want := start.Add(time.Duration(i) * 2 * time.Second); !tr.At.Equal(want) {
				t.Errorf("round %d: transition at %v, want %v", i, tr.At, want)
			}
		}
	}
	h.mu.Lock()
	observed := h.observed
	h.mu.Unlock()
	if observed != len(steps) {
		t.Errorf("Observe called %d times for %d checks", observed, len(steps))
	}
}

func TestProberFirstResultPerBackendAndResults(t *testing.T) {
	a := netip.MustParseAddrPort("198.18.0.1:6443")
	b := netip.MustParseAddrPort("198.18.0.2:6443")
	h := newProberHarness(t, Config{Interval: time.Second, Rise: 1, Fall: 2}, b, a, b)

	if got := h.prober.Results(); len(got) != 2 || got[0].Backend != b || got[1].Backend != a || got[0].Checks != 0 || got[0].Healthy {
		t.Fatalf("Results before any check = %+v, want b then a, unchecked and not healthy", got)
	}

	got := h.round(map[netip.AddrPort]error{b: errDown})
	want := []Transition{{Backend: a, Healthy: true}, {Backend: b, Healthy: false, Err: errDown}}
	if len(got) != 2 || got[0].Backend != want[0].Backend || got[0].Healthy != want[0].Healthy ||
		got[1].Backend != want[1].Backend || got[1].Healthy != want[1].Healthy {
		t.Fatalf("first round transitions %+v, want %+v", got, want)
	}

	// b recovers (rise 1), a fails once (fall 2: still up).
	got = h.round(map[netip.AddrPort]error{a: errDown})
	if len(got) != 1 || got[0].Backend != b || !got[0].Healthy {
		t.Fatalf("second round transitions %+v, want only b up", got)
	}

	res := h.prober.Results()
	if len(res) != 2 {
		t.Fatalf("Results = %+v, want 2 backends (duplicates dropped)", res)
	}
	rb, ra := res[0], res[1]
	if rb.Backend != b || !rb.Healthy || rb.LastErr != nil || rb.Checks != 2 {
		t.Errorf("Result of b = %+v, want healthy, no error, 2 checks", rb)
	}
	if ra.Backend != a || !ra.Healthy || !errors.Is(ra.LastErr, errDown) || ra.Checks != 2 {
		t.Errorf("Result of a = %+v, want still healthy with last error %v, 2 checks", ra, errDown)
	}
	// round stepped the clock after the checks: the last check ended one
	// interval ago.
	if want := h.clk.Now().Add(-time.Second); !ra.LastCheck.Equal(want) {
		t.Errorf("LastCheck = %v, want %v", ra.LastCheck, want)
	}
}

func TestProberStopsWithoutReportingCancelledCheck(t *testing.T) {
	b := netip.MustParseAddrPort("198.18.0.1:6443")
	var reported []Transition
	checker := &scriptedChecker{calls: make(chan scriptedCall)}
	p := NewProber(Config{Clock: clocktesting.NewFakeClock(time.Now())}, checker, []netip.AddrPort{b},
		func(tr Transition) { reported = append(reported, tr) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		p.Run(ctx)
		close(done)
	}()
	<-checker.calls // a check is in flight; never answered
	cancel()
	<-done
	if len(reported) != 0 {
		t.Errorf("a check cut short by shutdown was reported: %+v", reported)
	}
	if res := p.Results(); res[0].Checks != 0 {
		t.Errorf("a check cut short by shutdown was counted: %+v", res)
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.Interval != DefaultInterval || c.Timeout != DefaultTimeout || c.Rise != DefaultRise ||
		c.Fall != DefaultFall || c.Clock == nil || c.Logger == nil {
		t.Errorf("defaults = %+v", c)
	}
}

func TestNextSlot(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const i = 2 * time.Second
	tests := []struct {
		name string
		now  time.Duration // since t0, the previous slot
		want time.Duration
	}{
		{"instant check", 0, i},
		{"check within the interval", 1500 * time.Millisecond, i},
		{"check ending exactly on the next slot skips it", i, 2 * i},
		{"check overrunning two slots", 5 * time.Second, 3 * i},
		{"check ending exactly two slots late", 2 * i, 3 * i},
	}
	for _, tt := range tests {
		if got := nextSlot(t0, t0.Add(tt.now), i); !got.Equal(t0.Add(tt.want)) {
			t.Errorf("%s: nextSlot = t0+%v, want t0+%v", tt.name, got.Sub(t0), tt.want)
		}
	}
}

func TestProberAddRemove(t *testing.T) {
	b1 := netip.MustParseAddrPort("198.18.0.1:6443")
	b2 := netip.MustParseAddrPort("198.18.0.2:6443")
	h := newProberHarness(t, Config{Interval: 2 * time.Second, Rise: 2, Fall: 3}, b1)
	if got := h.round(nil); len(got) != 1 || got[0].Backend != b1 || !got[0].Healthy {
		t.Fatalf("first round: %+v", got)
	}
	// Added while running: checked at once, its first result reported.
	if !h.prober.Add(b2) || h.prober.Add(b2) || h.prober.Add(b1) {
		t.Fatal("Add: want true for a new backend only")
	}
	h.n = 2
	got := h.round(map[netip.AddrPort]error{b2: errDown})
	if len(got) != 1 || got[0].Backend != b2 || got[0].Healthy {
		t.Fatalf("round after Add: %+v, want b2 down", got)
	}
	// Removed: no more checks, no more transitions, gone from Results.
	if !h.prober.Remove(b1) || h.prober.Remove(b1) {
		t.Fatal("Remove: want true once")
	}
	h.n = 1
	for range 4 {
		if got := h.round(map[netip.AddrPort]error{b1: errDown, b2: errDown}); len(got) != 0 {
			t.Fatalf("transitions after Remove: %+v", got)
		}
	}
	res := h.prober.Results()
	if len(res) != 1 || res[0].Backend != b2 {
		t.Fatalf("Results() = %+v, want b2 only", res)
	}
}

func TestProberAddBeforeRun(t *testing.T) {
	b1 := netip.MustParseAddrPort("198.18.0.1:6443")
	b2 := netip.MustParseAddrPort("198.18.0.2:6443")
	p := NewProber(Config{}, &scriptedChecker{}, []netip.AddrPort{b1}, nil)
	p.Add(b2)
	p.Remove(b1)
	if res := p.Results(); len(res) != 1 || res[0].Backend != b2 {
		t.Fatalf("Results() = %+v, want b2 only", res)
	}
}
