package membership

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// recorder collects OnChange calls.
type recorder struct {
	mu    sync.Mutex
	calls [][]Change
	last  []netip.AddrPort
}

func (r *recorder) onChange(cs []Change, members []netip.AddrPort) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, cs)
	r.last = members
}

func (r *recorder) members() []netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

func TestTrackerSavesAndRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "members.txt")
	clk := clocktesting.NewFakeClock(t0)
	var logs bytes.Buffer
	rec := &recorder{}
	tr := NewTracker(TrackerConfig{
		Config:    Config{Static: []netip.AddrPort{a1}, Grace: time.Minute},
		StatePath: path, Clock: clk, OnChange: rec.onChange,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if got := rec.members(); !slices.Equal(got, []netip.AddrPort{a1}) {
		t.Fatalf("start: OnChange members %v, want [%v]", got, a1)
	}
	tr.Observe([]netip.AddrPort{a1, a2, a3})
	if got := rec.members(); !slices.Equal(got, []netip.AddrPort{a1, a2, a3}) {
		t.Fatalf("after discovery: %v", got)
	}
	// Saved: the discovered members, not the static one.
	if saved, err := Load(path); err != nil || !slices.Equal(saved, []netip.AddrPort{a2, a3}) {
		t.Fatalf("saved %v, %v; want [%v %v]", saved, err, a2, a3)
	}
	if !strings.Contains(logs.String(), `msg="member added" member=198.18.0.12:6443 cause=discovered`) {
		t.Errorf("no log line for the discovered member:\n%s", logs.String())
	}
	// The start is one line, not a "member added" per flag.
	if !strings.Contains(logs.String(), `msg="members at start" static=[198.18.0.11:6443] persisted=[] members=1`) ||
		strings.Contains(logs.String(), "cause=static") {
		t.Errorf("start not logged as one line:\n%s", logs.String())
	}

	// A restart with the API down starts from the saved set and keeps it.
	saved, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rec2 := &recorder{}
	tr2 := NewTracker(TrackerConfig{
		Config:    Config{Static: []netip.AddrPort{a1}, Grace: time.Minute},
		Persisted: saved, StatePath: path, Clock: clk, OnChange: rec2.onChange,
	})
	tr2.Unreachable(fmt.Errorf("dial: %w", errDown))
	clk.Step(time.Hour)
	if got := tr2.Members(); !slices.Equal(got, []netip.AddrPort{a1, a2, a3}) {
		t.Fatalf("restarted with the API down: %v", got)
	}
	st := tr2.Status()
	if st.Reachable || st.Reads[ReadError] != 1 || st.Added[ReasonPersisted] != 2 || !strings.Contains(st.LastErr, "refused") {
		t.Fatalf("status %+v", st)
	}
}

func TestTrackerRemovesOnTime(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	rec := &recorder{}
	tr := NewTracker(TrackerConfig{
		Config: Config{Static: []netip.AddrPort{a1}, Grace: time.Minute},
		Clock:  clk, OnChange: rec.onChange,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	tr.Observe([]netip.AddrPort{a1, a2})
	tr.Observe([]netip.AddrPort{a1})
	waitTimer(t, clk)
	clk.Step(59 * time.Second)
	if got := tr.Members(); !slices.Equal(got, []netip.AddrPort{a1, a2}) {
		t.Fatalf("before the grace period ended: %v", got)
	}
	waitTimer(t, clk)
	clk.Step(time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(rec.members(), []netip.AddrPort{a1}) {
		if time.Now().After(deadline) {
			t.Fatalf("after the grace period: %v, want [%v]", rec.members(), a1)
		}
		time.Sleep(time.Millisecond)
	}
	st := tr.Status()
	if st.Removed[ReasonGone] != 1 || st.Added[ReasonDiscovered] != 1 || st.Reads[ReadOK] != 2 {
		t.Fatalf("status counters %+v", st)
	}
}

func TestTrackerCountsDenied(t *testing.T) {
	tr := NewTracker(TrackerConfig{Clock: clocktesting.NewFakeClock(t0)})
	tr.Unreachable(fmt.Errorf("get endpoints: %w", ErrDenied))
	if st := tr.Status(); st.Reads[ReadDenied] != 1 || st.Reads[ReadError] != 0 {
		t.Fatalf("reads %v, want one denied", st.Reads)
	}
}

// waitTimer waits until the Tracker's Run has a timer armed on clk.
func waitTimer(t *testing.T, clk *clocktesting.FakeClock) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !clk.HasWaiters() {
		if time.Now().After(deadline) {
			t.Fatal("Run armed no timer")
		}
		time.Sleep(time.Millisecond)
	}
}
