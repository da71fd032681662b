package redirect

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// fakeKernel is an Applier holding at most hapod's one table.
type fakeKernel struct {
	table   string // "" when absent
	calls   []string
	failing error
}

func (k *fakeKernel) Present(name string) (bool, error) {
	k.calls = append(k.calls, "present")
	return k.table == name, nil
}

func (k *fakeKernel) Replace(rs Ruleset) error {
	k.calls = append(k.calls, "replace")
	if k.failing != nil {
		return k.failing
	}
	k.table = rs.Table
	return nil
}

func (k *fakeKernel) Delete(name string) error {
	k.calls = append(k.calls, "delete")
	if k.failing != nil {
		return k.failing
	}
	if k.table == name {
		k.table = ""
	}
	return nil
}

var testSpec = Spec{VIPs: []netip.Addr{netip.MustParseAddr("198.18.0.10")}, Port: 6443, ListenPort: 9445}

func newTestSwitch(t *testing.T, k *fakeKernel) (*Switch, *clocktesting.FakePassiveClock) {
	t.Helper()
	clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
	s, err := NewSwitch(testSpec, k, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

func TestDecide(t *testing.T) {
	for _, tt := range []struct {
		healthy int
		stopped bool
		install bool
		why     Reason
	}{
		{0, false, false, ReasonNoBackend},
		{1, false, true, ReasonServing},
		{3, false, true, ReasonServing},
		{3, true, false, ReasonStopped},
		{0, true, false, ReasonStopped},
	} {
		install, why := decide(tt.healthy, tt.stopped)
		if install != tt.install || why != tt.why {
			t.Errorf("decide(%d, %v) = %v, %v; want %v, %v", tt.healthy, tt.stopped, install, why, tt.install, tt.why)
		}
	}
}

func TestSwitchStartReplacesStale(t *testing.T) {
	for _, tt := range []struct {
		name      string
		stale     bool
		healthy   int
		wantCalls []string
		want      bool
		changes   uint64
	}{
		// A SIGKILLed predecessor's table is replaced in one step.
		{"stale, serving", true, 2, []string{"present", "replace"}, true, 0},
		{"stale, no backend", true, 0, []string{"present", "delete"}, false, 1},
		{"clean, serving", false, 2, []string{"present", "replace"}, true, 1},
		// Nothing to remove, but the delete is idempotent and cheap.
		{"clean, no backend", false, 0, []string{"present", "delete"}, false, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := &fakeKernel{}
			if tt.stale {
				k.table = TableName(testSpec.VIPs[0])
			}
			s, clk := newTestSwitch(t, k)
			stale, err := s.Start(tt.healthy)
			if err != nil || stale != tt.stale {
				t.Fatalf("Start = %v, %v; want %v, nil", stale, err, tt.stale)
			}
			if !slices.Equal(k.calls, tt.wantCalls) {
				t.Errorf("calls %v, want %v", k.calls, tt.wantCalls)
			}
			st := s.State()
			if st.Installed != tt.want || (k.table != "") != tt.want || st.Changes != tt.changes || !st.Since.Equal(clk.Now()) {
				t.Errorf("state %+v, kernel table %q; want installed %v, %d changes, since %v", st, k.table, tt.want, tt.changes, clk.Now())
			}
		})
	}
}

func TestSwitchFollowsHealth(t *testing.T) {
	k := &fakeKernel{}
	s, clk := newTestSwitch(t, k)
	// Before Start the kernel's table is unknown: nothing is applied.
	if err := s.SetHealthy(3); err != nil || len(k.calls) != 0 {
		t.Fatalf("SetHealthy before Start: %v, calls %v", err, k.calls)
	}
	if _, err := s.Start(3); err != nil {
		t.Fatal(err)
	}
	k.calls = nil
	steps := []struct {
		healthy int
		call    string // "" for none: only transitions touch the kernel
		want    bool
		why     Reason
	}{
		{2, "", true, ReasonServing},
		{0, "delete", false, ReasonNoBackend},
		{0, "", false, ReasonNoBackend},
		{1, "replace", true, ReasonServing},
		{3, "", true, ReasonServing},
	}
	for i, st := range steps {
		clk.SetTime(clk.Now().Add(time.Second))
		before := s.State()
		if err := s.SetHealthy(st.healthy); err != nil {
			t.Fatal(err)
		}
		var call string
		if len(k.calls) > 0 {
			call = k.calls[len(k.calls)-1]
		}
		k.calls = nil
		got := s.State()
		if call != st.call || got.Installed != st.want || got.Reason != st.why {
			t.Errorf("step %d (%d healthy): call %q, state %+v; want call %q, installed %v, %v", i, st.healthy, call, got, st.call, st.want, st.why)
		}
		if moved := !got.Since.Equal(before.Since); moved != (st.call != "") {
			t.Errorf("step %d: Since moved %v, want only on a change", i, moved)
		}
	}
	if got := s.State().Changes; got != 3 {
		t.Errorf("changes %d, want 3 (install, remove, install)", got)
	}
}

func TestSwitchRetriesAfterFailure(t *testing.T) {
	k := &fakeKernel{}
	s, _ := newTestSwitch(t, k)
	if _, err := s.Start(1); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("netlink: operation not permitted")
	k.failing = boom
	if err := s.SetHealthy(0); !errors.Is(err, boom) {
		t.Fatalf("SetHealthy(0) = %v, want %v", err, boom)
	}
	st := s.State()
	if !st.Installed || st.Failures != 1 || !errors.Is(st.Err, boom) || st.Reason != ReasonNoBackend {
		t.Fatalf("after a failed removal: %+v; want still installed, 1 failure, the error, wanting removal", st)
	}
	// The same verdict again retries: the kernel is not yet as wanted.
	k.failing = nil
	k.calls = nil
	if err := s.SetHealthy(0); err != nil {
		t.Fatal(err)
	}
	st = s.State()
	if st.Installed || st.Err != nil || k.table != "" || !slices.Equal(k.calls, []string{"delete"}) {
		t.Errorf("after the retry: %+v, kernel %q, calls %v; want removed, no error", st, k.table, k.calls)
	}
}

func TestSwitchStop(t *testing.T) {
	k := &fakeKernel{}
	s, _ := newTestSwitch(t, k)
	if _, err := s.Start(2); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if st := s.State(); st.Installed || st.Reason != ReasonStopped || k.table != "" {
		t.Fatalf("after Stop: %+v, kernel %q; want removed, stopped", st, k.table)
	}
	k.calls = nil
	// A health change racing shutdown must not bring it back.
	if err := s.SetHealthy(3); err != nil || len(k.calls) != 0 || k.table != "" {
		t.Errorf("SetHealthy after Stop: %v, calls %v, kernel %q; want nothing", err, k.calls, k.table)
	}
}

func TestSwitchStopBeforeStart(t *testing.T) {
	k := &fakeKernel{table: TableName(testSpec.VIPs[0])}
	s, _ := newTestSwitch(t, k)
	// Run failed between NewSwitch and Start: a predecessor's table still
	// goes, as the shutdown promises.
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if k.table != "" {
		t.Errorf("kernel still has %q after Stop", k.table)
	}
}

// Reconcile puts back what the kernel lost behind hapod's back and tries
// a failed change again; before Start and after Stop it does nothing.
func TestSwitchReconcile(t *testing.T) {
	k := &fakeKernel{}
	s, clk := newTestSwitch(t, k)
	if err := s.Reconcile(); err != nil || len(k.calls) != 0 {
		t.Fatalf("before Start: %v, calls %v", err, k.calls)
	}
	if _, err := s.Start(2); err != nil {
		t.Fatal(err)
	}
	// Nothing changed: one look, no change.
	k.calls = nil
	if err := s.Reconcile(); err != nil || !slices.Equal(k.calls, []string{"present"}) {
		t.Fatalf("in line: %v, calls %v", err, k.calls)
	}
	// `nft flush ruleset`: the table is installed again.
	k.table = ""
	clk.SetTime(clk.Now().Add(time.Minute))
	if err := s.Reconcile(); err != nil || k.table != TableName(testSpec.VIPs[0]) {
		t.Fatalf("after a flush: %v, table %q", err, k.table)
	}
	if st := s.State(); !st.Installed || st.Reason != ReasonServing || st.Changes != 2 || !st.Since.Equal(clk.Now()) {
		t.Errorf("after a flush: %+v", st)
	}
	// Removed for want of a backend, then added by someone: removed.
	if err := s.SetHealthy(0); err != nil {
		t.Fatal(err)
	}
	k.table = TableName(testSpec.VIPs[0])
	if err := s.Reconcile(); err != nil || k.table != "" {
		t.Fatalf("table back while unwanted: %v, table %q", err, k.table)
	}
	// A failed change is tried again until it works.
	k.failing = errors.New("netlink: operation not permitted")
	if err := s.SetHealthy(1); err == nil {
		t.Fatal("install with a failing kernel succeeded")
	}
	if err := s.Reconcile(); err == nil || s.State().Failures != 2 {
		t.Fatalf("retry while failing: %v, %+v", err, s.State())
	}
	k.failing = nil
	if err := s.Reconcile(); err != nil || k.table == "" || s.State().Err != nil || !s.State().Installed {
		t.Fatalf("retry once the kernel works: %v, %+v", err, s.State())
	}
	// Stopped: the table stays gone.
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	k.calls = nil
	if err := s.Reconcile(); err != nil || len(k.calls) != 0 || k.table != "" {
		t.Fatalf("after Stop: %v, calls %v, table %q", err, k.calls, k.table)
	}
}
