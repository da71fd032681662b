package vrrp

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	mAddrSelf  = netip.MustParseAddr("198.18.0.11")
	mAddrLow   = netip.MustParseAddr("198.18.0.10")
	mAddrHigh  = netip.MustParseAddr("198.18.0.12")
	mT0        = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	noDeadline = time.Duration(-1)
)

func TestTimerFormulas(t *testing.T) {
	tests := []struct {
		name       string
		v          Version
		prio       uint8
		interval   time.Duration
		skew, down time.Duration
	}{
		// The numbers of the brief: prio 100 at 100ms is 300ms + 60.9375ms.
		{"v3 prio 100 at 100ms", Version3, 100, 100 * time.Millisecond, 60937500 * time.Nanosecond, 360937500 * time.Nanosecond},
		{"v3 prio 254 at 1s", Version3, 254, time.Second, 7812500 * time.Nanosecond, 3007812500 * time.Nanosecond},
		{"v3 prio 1 at 1s", Version3, 1, time.Second, 996093750 * time.Nanosecond, 3996093750 * time.Nanosecond},
		// v2: the skew is a fraction of one second, whatever the interval.
		{"v2 prio 100 at 1s", Version2, 100, time.Second, 609375 * time.Microsecond, 3609375 * time.Microsecond},
		{"v2 prio 100 at 2s", Version2, 100, 2 * time.Second, 609375 * time.Microsecond, 6609375 * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SkewTime(tt.v, tt.prio, tt.interval); got != tt.skew {
				t.Errorf("SkewTime = %v, want %v", got, tt.skew)
			}
			if got := MasterDownInterval(tt.v, tt.prio, tt.interval); got != tt.down {
				t.Errorf("MasterDownInterval = %v, want %v", got, tt.down)
			}
		})
	}
}

// mstep is one line of a machine script: at offset `at` from mT0 feed `in`,
// expect exactly `want`, then the state and the next deadline (an offset
// from mT0, or noDeadline).
type mstep struct {
	at       time.Duration
	in       Input
	want     []Action
	state    State
	deadline time.Duration
}

func v3cfg() MachineConfig {
	return MachineConfig{VRID: 51, Priority: 100, Interval: 100 * time.Millisecond, Version: Version3, Primary: mAddrSelf}
}

func runScript(t *testing.T, m *Machine, steps []mstep) {
	t.Helper()
	for i, s := range steps {
		got := m.Step(mT0.Add(s.at), s.in)
		if len(got) == 0 {
			got = nil
		}
		for j, a := range got {
			if t, ok := a.(Transition); ok {
				got[j] = textTransition{From: t.From, To: t.To, Text: t.Text()}
			}
		}
		if !reflect.DeepEqual(got, s.want) {
			t.Fatalf("step %d (%T at %v): actions\n got  %#v\n want %#v", i, s.in, s.at, got, s.want)
		}
		if m.State() != s.state {
			t.Fatalf("step %d (%T at %v): state %v, want %v", i, s.in, s.at, m.State(), s.state)
		}
		wantDL := time.Time{}
		if s.deadline != noDeadline {
			wantDL = mT0.Add(s.deadline)
		}
		if dl := m.NextDeadline(); !dl.Equal(wantDL) {
			t.Fatalf("step %d (%T at %v): deadline %v, want %v", i, s.in, s.at, dl.Sub(mT0), s.deadline)
		}
	}
}

// Durations used by many scripts: v3, priority 100, 100ms interval.
const (
	ms      = time.Millisecond
	down100 = 360937500 * time.Nanosecond // 3*100ms + 60.9375ms
	skew100 = 60937500 * time.Nanosecond
)

// textTransition is a Transition as scripts spell it: its Text stands for
// the Reason and the peer fields (TestTransitionText ties the two).
type textTransition struct {
	From, To State
	Text     string
}

func (textTransition) isAction() {}

func tr(from, to State, text string) textTransition {
	return textTransition{From: from, To: to, Text: text}
}

func TestTransitionText(t *testing.T) {
	peer := netip.MustParseAddr("198.18.0.12")
	for _, tt := range []struct {
		tr          Transition
		label, text string
	}{
		{Transition{Reason: ReasonStartup}, "startup", "startup"},
		{Transition{Reason: ReasonShutdown}, "shutdown", "shutdown"},
		{Transition{Reason: ReasonLinkDown}, "link_down", "link down"},
		{Transition{Reason: ReasonLinkUp}, "link_up", "link up"},
		{Transition{Reason: ReasonMasterDown}, "master_down", "master down timer expired"},
		{Transition{Reason: ReasonPriorityZero, Peer: peer}, "priority_zero", "priority 0 advert from 198.18.0.12"},
		{Transition{Reason: ReasonPreempt, Peer: peer, Priority: 50, OwnPriority: 100}, "preempt", "preempting lower priority 198.18.0.12 (prio 50 < 100)"},
		{Transition{Reason: ReasonHigherPriority, Peer: peer, Priority: 150}, "higher_priority", "higher priority advert from 198.18.0.12 (prio 150)"},
		{Transition{Reason: ReasonHigherAddress, Peer: peer, Priority: 100}, "higher_address", "equal priority advert from higher address 198.18.0.12 (prio 100)"},
	} {
		if got := tt.tr.Reason.String(); got != tt.label {
			t.Errorf("%d.String() = %q, want %q", int(tt.tr.Reason), got, tt.label)
		}
		if got := tt.tr.Text(); got != tt.text {
			t.Errorf("%v Text() = %q, want %q", tt.tr.Reason, got, tt.text)
		}
	}
	if n := len(Reasons()); n != 9 {
		t.Errorf("%d reasons, the table above has 9: add the new one", n)
	}
	if got := ReasonInvalid.String(); got != "Reason(0)" {
		t.Errorf("zero Reason = %q", got)
	}
}

func TestStartupTakeoverAndAdverts(t *testing.T) {
	runScript(t, NewMachine(v3cfg()), []mstep{
		{0, Tick{}, nil, StateInit, noDeadline},
		{0, Startup{}, []Action{tr(StateInit, StateBackup, "startup")}, StateBackup, down100},
		{0, Startup{}, nil, StateBackup, down100},
		// One nanosecond early: nothing.
		{down100 - 1, Tick{}, nil, StateBackup, down100},
		{down100, Tick{}, []Action{tr(StateBackup, StateActive, "master down timer expired"), TakeVIP{}, SendAdvert{100}}, StateActive, down100 + 100*ms},
		{down100 + 100*ms, Tick{}, []Action{SendAdvert{100}}, StateActive, down100 + 200*ms},
		// A tick a little late keeps the original cadence.
		{down100 + 230*ms, Tick{}, []Action{SendAdvert{100}}, StateActive, down100 + 300*ms},
		// A driver a whole interval behind restarts from now, no burst.
		{down100 + 550*ms, Tick{}, []Action{SendAdvert{100}}, StateActive, down100 + 650*ms},
	})
}

func TestBackupAdverts(t *testing.T) {
	at := 50 * ms
	runScript(t, NewMachine(v3cfg()), []mstep{
		{0, Startup{}, []Action{tr(StateInit, StateBackup, "startup")}, StateBackup, down100},
		// An advert from a stronger active router re-arms the down timer.
		{at, Advert{From: mAddrHigh, Priority: 200, Interval: 100 * ms}, nil, StateBackup, at + down100},
		// Without preemption a weaker one does too (it is the active router).
		{2 * at, Advert{From: mAddrLow, Priority: 50, Interval: 100 * ms}, nil, StateBackup, 2*at + down100},
		// v3 learns the active router's interval: 3*1s + 156/256 s.
		{3 * at, Advert{From: mAddrHigh, Priority: 200, Interval: time.Second}, nil, StateBackup, 3*at + 3609375*time.Microsecond},
		// Priority 0: Skew_Time of the learned interval.
		{4 * at, Advert{From: mAddrHigh, Priority: 0, Interval: time.Second}, nil, StateBackup, 4*at + 609375*time.Microsecond},
		{4*at + 609375*time.Microsecond, Tick{}, []Action{tr(StateBackup, StateActive, "priority 0 advert from 198.18.0.12"), TakeVIP{}, SendAdvert{100}}, StateActive, 4*at + 609375*time.Microsecond + 100*ms},
	})
}

func TestBackupPriorityZeroAt100ms(t *testing.T) {
	m := NewMachine(v3cfg())
	runScript(t, m, []mstep{
		{0, Startup{}, []Action{tr(StateInit, StateBackup, "startup")}, StateBackup, down100},
		{10 * ms, Advert{From: mAddrHigh, Priority: 150, Interval: 100 * ms}, nil, StateBackup, 10*ms + down100},
		{20 * ms, Advert{From: mAddrHigh, Priority: 0, Interval: 100 * ms}, nil, StateBackup, 20*ms + skew100},
	})
	if m.ActiveRouter().IsValid() {
		t.Errorf("ActiveRouter after priority 0 = %v, want none", m.ActiveRouter())
	}
}

func TestV2UsesOwnInterval(t *testing.T) {
	cfg := v3cfg()
	cfg.Version = Version2
	cfg.Interval = time.Second
	down := 3609375 * time.Microsecond
	runScript(t, NewMachine(cfg), []mstep{
		{0, Startup{}, []Action{tr(StateInit, StateBackup, "startup")}, StateBackup, down},
		// The advertised interval is informational in v2: not learned.
		{time.Second, Advert{From: mAddrHigh, Priority: 200, Interval: 3 * time.Second}, nil, StateBackup, time.Second + down},
		{2 * time.Second, Advert{From: mAddrHigh, Priority: 0, Interval: 3 * time.Second}, nil, StateBackup, 2*time.Second + 609375*time.Microsecond},
	})
}

func TestPreemption(t *testing.T) {
	cfg := v3cfg()
	cfg.Preempt = true
	m := NewMachine(cfg)
	runScript(t, m, []mstep{
		{0, Startup{}, []Action{tr(StateInit, StateBackup, "startup")}, StateBackup, down100},
		// Equal priority is accepted even when preempting.
		{10 * ms, Advert{From: mAddrLow, Priority: 100, Interval: 100 * ms}, nil, StateBackup, 10*ms + down100},
		// A weaker active router is ignored: the timer keeps running.
		{110 * ms, Advert{From: mAddrLow, Priority: 99, Interval: 100 * ms}, nil, StateBackup, 10*ms + down100},
		{210 * ms, Advert{From: mAddrLow, Priority: 99, Interval: 100 * ms}, nil, StateBackup, 10*ms + down100},
		{10*ms + down100, Tick{}, []Action{tr(StateBackup, StateActive, "preempting lower priority 198.18.0.10 (prio 99 < 100)"), TakeVIP{}, SendAdvert{100}}, StateActive, 10*ms + down100 + 100*ms},
	})
	if m.ActiveRouter() != mAddrSelf {
		t.Errorf("ActiveRouter = %v, want self", m.ActiveRouter())
	}
}

// activeMachine returns a machine that became active at down100.
func activeMachine(t *testing.T, cfg MachineConfig) *Machine {
	t.Helper()
	m := NewMachine(cfg)
	m.Step(mT0, Startup{})
	m.Step(mT0.Add(down100), Tick{})
	if m.State() != StateActive {
		t.Fatalf("setup: state %v, want Active", m.State())
	}
	return m
}

func TestActiveReceivesAdverts(t *testing.T) {
	at := down100 + 30*ms
	next := down100 + 100*ms
	tests := []struct {
		name string
		adv  Advert
		want []Action
		st   State
		dl   time.Duration
	}{
		{"lower priority: reassert and re-announce at once", Advert{From: mAddrHigh, Priority: 99, Interval: 100 * ms},
			[]Action{SendAdvert{100}, AnnounceVIP{}}, StateActive, next},
		{"equal priority, lower address: reassert and re-announce", Advert{From: mAddrLow, Priority: 100, Interval: 100 * ms},
			[]Action{SendAdvert{100}, AnnounceVIP{}}, StateActive, next},
		{"priority 0: reassert, re-announce and restart the advert timer", Advert{From: mAddrHigh, Priority: 0, Interval: 100 * ms},
			[]Action{SendAdvert{100}, AnnounceVIP{}}, StateActive, at + 100*ms},
		// Stepping down sends a priority-0 advert between the transition
		// and the release, exactly these three actions. RFC 9568 section
		// 6.4.3 only says to become a backup; hapod adds the advert on
		// purpose: two active routers mean a split brain healing (or a
		// preemption), our gratuitous ARPs may have drawn clients here,
		// and a priority-0 advert makes the winner reassert and announce
		// the VIP again at once (see the StateActive priority-0 case). The
		// README's "Choices and their reasons" names this deviation.
		{"higher priority: step down", Advert{From: mAddrLow, Priority: 101, Interval: 100 * ms},
			[]Action{tr(StateActive, StateBackup, "higher priority advert from 198.18.0.10 (prio 101)"), SendAdvert{0}, ReleaseVIP{}}, StateBackup, at + down100},
		{"equal priority, higher address: step down", Advert{From: mAddrHigh, Priority: 100, Interval: 100 * ms},
			[]Action{tr(StateActive, StateBackup, "equal priority advert from higher address 198.18.0.12 (prio 100)"), SendAdvert{0}, ReleaseVIP{}}, StateBackup, at + down100},
		// Stepping down learns the winner's interval: 3*200ms + 156*200ms/256.
		{"higher priority with another interval", Advert{From: mAddrHigh, Priority: 200, Interval: 200 * ms},
			[]Action{tr(StateActive, StateBackup, "higher priority advert from 198.18.0.12 (prio 200)"), SendAdvert{0}, ReleaseVIP{}}, StateBackup, at + 721875*time.Microsecond},
		{"own looped-back advert is ignored", Advert{From: mAddrSelf, Priority: 200, Interval: 100 * ms},
			nil, StateActive, next},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := activeMachine(t, v3cfg())
			runScript(t, m, []mstep{{at, tt.adv, tt.want, tt.st, tt.dl}})
			wantActive := mAddrSelf
			if tt.st == StateBackup {
				wantActive = tt.adv.From
			}
			if m.ActiveRouter() != wantActive {
				t.Errorf("ActiveRouter = %v, want %v", m.ActiveRouter(), wantActive)
			}
		})
	}
}

// IPv6 tie-break compares the addresses as unsigned numbers.
func TestTieBreakIPv6(t *testing.T) {
	cfg := v3cfg()
	cfg.Primary = netip.MustParseAddr("fe80::9")
	m := activeMachine(t, cfg)
	runScript(t, m, []mstep{
		{down100 + ms, Advert{From: netip.MustParseAddr("fe80::8"), Priority: 100, Interval: 100 * ms}, []Action{SendAdvert{100}, AnnounceVIP{}}, StateActive, down100 + 100*ms},
		{down100 + 2*ms, Advert{From: netip.MustParseAddr("fe80::1:0"), Priority: 100, Interval: 100 * ms},
			[]Action{tr(StateActive, StateBackup, "equal priority advert from higher address fe80::1:0 (prio 100)"), SendAdvert{0}, ReleaseVIP{}}, StateBackup, down100 + 2*ms + down100},
	})
}

func TestShutdown(t *testing.T) {
	t.Run("active says goodbye with priority 0", func(t *testing.T) {
		runScript(t, activeMachine(t, v3cfg()), []mstep{
			{down100 + 10*ms, Shutdown{}, []Action{tr(StateActive, StateInit, "shutdown"), SendAdvert{0}, ReleaseVIP{}}, StateInit, noDeadline},
			{down100 + 20*ms, Shutdown{}, nil, StateInit, noDeadline},
			{down100 + 30*ms, Advert{From: mAddrHigh, Priority: 200, Interval: 100 * ms}, nil, StateInit, noDeadline},
			{down100 + 1000*ms, Tick{}, nil, StateInit, noDeadline},
		})
	})
	// With a HandoverTimeout the VIP stays until a successor advertises.
	handover := func() MachineConfig {
		c := v3cfg()
		c.HandoverTimeout = 300 * ms
		return c
	}
	stop := down100 + 10*ms
	t.Run("active keeps the VIP until the successor's advert", func(t *testing.T) {
		runScript(t, activeMachine(t, handover()), []mstep{
			{stop, Shutdown{}, []Action{tr(StateActive, StateInit, "shutdown"), SendAdvert{0}}, StateInit, stop + 300*ms},
			{stop + 10*ms, Advert{From: mAddrHigh, Priority: 0, Interval: 100 * ms}, nil, StateInit, stop + 300*ms},
			{stop + 20*ms, Advert{From: mAddrSelf, Priority: 100, Interval: 100 * ms}, nil, StateInit, stop + 300*ms},
			{stop + 70*ms, Advert{From: mAddrLow, Priority: 90, Interval: 100 * ms},
				[]Action{HandoverDone{To: mAddrLow, Priority: 90, After: 70 * ms}, ReleaseVIP{}}, StateInit, noDeadline},
			{stop + 80*ms, Advert{From: mAddrHigh, Priority: 200, Interval: 100 * ms}, nil, StateInit, noDeadline},
		})
	})
	t.Run("handover times out", func(t *testing.T) {
		m := activeMachine(t, handover())
		runScript(t, m, []mstep{
			{stop, Shutdown{}, []Action{tr(StateActive, StateInit, "shutdown"), SendAdvert{0}}, StateInit, stop + 300*ms},
			{stop + 299*ms, Tick{}, nil, StateInit, stop + 300*ms},
			{stop + 300*ms, Tick{}, []Action{HandoverDone{After: 300 * ms}, ReleaseVIP{}}, StateInit, noDeadline},
		})
		if m.HandingOver() {
			t.Error("still handing over")
		}
	})
	t.Run("link down ends the handover", func(t *testing.T) {
		runScript(t, activeMachine(t, handover()), []mstep{
			{stop, Shutdown{}, []Action{tr(StateActive, StateInit, "shutdown"), SendAdvert{0}}, StateInit, stop + 300*ms},
			{stop + 5*ms, LinkDown{}, []Action{HandoverDone{After: 5 * ms}, ReleaseVIP{}}, StateInit, noDeadline},
		})
	})
	t.Run("a backup does not hand over", func(t *testing.T) {
		runScript(t, NewMachine(handover()), []mstep{
			{0, Startup{}, []Action{tr(StateInit, StateBackup, "startup")}, StateBackup, down100},
			{ms, Shutdown{}, []Action{tr(StateBackup, StateInit, "shutdown")}, StateInit, noDeadline},
		})
	})
	t.Run("backup just stops", func(t *testing.T) {
		runScript(t, NewMachine(v3cfg()), []mstep{
			{0, Startup{}, []Action{tr(StateInit, StateBackup, "startup")}, StateBackup, down100},
			{10 * ms, Shutdown{}, []Action{tr(StateBackup, StateInit, "shutdown")}, StateInit, noDeadline},
			// A restart begins with the own interval again.
			{20 * ms, Startup{}, []Action{tr(StateInit, StateBackup, "startup")}, StateBackup, 20*ms + down100},
		})
	})
}

func TestLink(t *testing.T) {
	t.Run("active loses its link", func(t *testing.T) {
		m := activeMachine(t, v3cfg())
		runScript(t, m, []mstep{
			// No advert: it could not leave anyway.
			{down100 + 10*ms, LinkDown{}, []Action{tr(StateActive, StateInit, "link down"), ReleaseVIP{}}, StateInit, noDeadline},
			{down100 + 20*ms, Startup{}, nil, StateInit, noDeadline},
			{down100 + 30*ms, LinkUp{}, []Action{tr(StateInit, StateBackup, "link up")}, StateBackup, down100 + 30*ms + down100},
		})
	})
	t.Run("backup loses its link", func(t *testing.T) {
		runScript(t, NewMachine(v3cfg()), []mstep{
			{0, Startup{}, []Action{tr(StateInit, StateBackup, "startup")}, StateBackup, down100},
			{ms, LinkDown{}, []Action{tr(StateBackup, StateInit, "link down")}, StateInit, noDeadline},
			{2 * ms, LinkDown{}, nil, StateInit, noDeadline},
		})
	})
	t.Run("startup waits for the link", func(t *testing.T) {
		runScript(t, NewMachine(v3cfg()), []mstep{
			{0, LinkDown{}, nil, StateInit, noDeadline},
			{ms, Startup{}, nil, StateInit, noDeadline},
			{2 * ms, LinkUp{}, []Action{tr(StateInit, StateBackup, "link up")}, StateBackup, 2*ms + down100},
		})
	})
	t.Run("link up before startup does nothing", func(t *testing.T) {
		runScript(t, NewMachine(v3cfg()), []mstep{
			{0, LinkUp{}, nil, StateInit, noDeadline},
			{ms, Startup{}, []Action{tr(StateInit, StateBackup, "startup")}, StateBackup, ms + down100},
		})
	})
	t.Run("shutdown forgets startup", func(t *testing.T) {
		runScript(t, NewMachine(v3cfg()), []mstep{
			{0, Startup{}, []Action{tr(StateInit, StateBackup, "startup")}, StateBackup, down100},
			{ms, LinkDown{}, []Action{tr(StateBackup, StateInit, "link down")}, StateInit, noDeadline},
			{2 * ms, Shutdown{}, nil, StateInit, noDeadline},
			{3 * ms, LinkUp{}, nil, StateInit, noDeadline},
		})
	})
}

func TestSetPriority(t *testing.T) {
	t.Run("active announces the change at once", func(t *testing.T) {
		m := activeMachine(t, v3cfg())
		at := down100 + 40*ms
		runScript(t, m, []mstep{
			{at, SetPriority{50}, []Action{SendAdvert{50}}, StateActive, at + 100*ms},
			{at + ms, SetPriority{50}, nil, StateActive, at + 100*ms},
			{at + 100*ms, Tick{}, []Action{SendAdvert{50}}, StateActive, at + 200*ms},
			// Clamped: 0 would mean "stopping", 255 "address owner".
			{at + 150*ms, SetPriority{0}, []Action{SendAdvert{1}}, StateActive, at + 250*ms},
			{at + 160*ms, SetPriority{255}, []Action{SendAdvert{254}}, StateActive, at + 260*ms},
		})
		if m.Priority() != 254 {
			t.Errorf("Priority = %d, want 254", m.Priority())
		}
	})
	t.Run("backup uses the new priority from the next advert on", func(t *testing.T) {
		m := NewMachine(v3cfg())
		runScript(t, m, []mstep{
			{0, Startup{}, []Action{tr(StateInit, StateBackup, "startup")}, StateBackup, down100},
			{ms, SetPriority{200}, nil, StateBackup, down100},
			// 3*100ms + 56*100ms/256 = 321.875ms.
			{2 * ms, Advert{From: mAddrHigh, Priority: 220, Interval: 100 * ms}, nil, StateBackup, 2*ms + 321875*time.Microsecond},
		})
	})
	t.Run("a weaker active router is preempted once we are stronger", func(t *testing.T) {
		cfg := v3cfg()
		cfg.Preempt = true
		m := NewMachine(cfg)
		runScript(t, m, []mstep{
			{0, Startup{}, []Action{tr(StateInit, StateBackup, "startup")}, StateBackup, down100},
			{ms, Advert{From: mAddrHigh, Priority: 120, Interval: 100 * ms}, nil, StateBackup, ms + down100},
			{2 * ms, SetPriority{130}, nil, StateBackup, ms + down100},
			{101 * ms, Advert{From: mAddrHigh, Priority: 120, Interval: 100 * ms}, nil, StateBackup, ms + down100},
			{ms + down100, Tick{}, []Action{tr(StateBackup, StateActive, "preempting lower priority 198.18.0.12 (prio 120 < 130)"), TakeVIP{}, SendAdvert{130}}, StateActive, ms + down100 + 100*ms},
		})
	})
}

func TestInitIgnoresProtocolInput(t *testing.T) {
	runScript(t, NewMachine(v3cfg()), []mstep{
		{0, Advert{From: mAddrHigh, Priority: 0, Interval: 100 * ms}, nil, StateInit, noDeadline},
		{ms, Advert{From: mAddrHigh, Priority: 200, Interval: 100 * ms}, nil, StateInit, noDeadline},
		{2 * ms, Tick{}, nil, StateInit, noDeadline},
		{3 * ms, SetPriority{20}, nil, StateInit, noDeadline},
		{4 * ms, Shutdown{}, nil, StateInit, noDeadline},
	})
}

// Two machines wired back to back, each one's adverts fed to the other at
// the same instant: whatever the start, exactly one ends active.
func TestPairConverges(t *testing.T) {
	tests := []struct {
		name       string
		prioA      uint8
		prioB      uint8
		preempt    bool
		wantActive netip.Addr
	}{
		{"higher priority wins", 100, 150, false, mAddrHigh},
		{"equal priority: higher address wins", 100, 100, false, mAddrHigh},
		{"preempting", 150, 100, true, mAddrLow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca, cb := v3cfg(), v3cfg()
			ca.Primary, ca.Priority, ca.Preempt = mAddrLow, tt.prioA, tt.preempt
			cb.Primary, cb.Priority, cb.Preempt = mAddrHigh, tt.prioB, tt.preempt
			ms := []*Machine{NewMachine(ca), NewMachine(cb)}
			now := mT0
			var queue [][2]any // {to index, Advert}
			deliver := func(from int, acts []Action) {
				for _, a := range acts {
					if s, ok := a.(SendAdvert); ok {
						queue = append(queue, [2]any{1 - from, Advert{From: ms[from].cfg.Primary, Priority: s.Priority, Interval: 100 * time.Millisecond}})
					}
				}
			}
			for i, m := range ms {
				deliver(i, m.Step(now, Startup{}))
			}
			for range 200 {
				for len(queue) > 0 {
					q := queue[0]
					queue = queue[1:]
					to := q[0].(int)
					deliver(to, ms[to].Step(now, q[1].(Advert)))
				}
				next := time.Time{}
				for _, m := range ms {
					if dl := m.NextDeadline(); !dl.IsZero() && (next.IsZero() || dl.Before(next)) {
						next = dl
					}
				}
				now = next
				for i, m := range ms {
					deliver(i, m.Step(now, Tick{}))
				}
			}
			var active []netip.Addr
			for _, m := range ms {
				if m.State() == StateActive {
					active = append(active, m.cfg.Primary)
				}
			}
			if len(active) != 1 || active[0] != tt.wantActive {
				t.Fatalf("active routers %v, want exactly %v", active, tt.wantActive)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := v3cfg()
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid v3 config: %v", err)
	}
	v2 := ok
	v2.Version, v2.Interval = Version2, 2*time.Second
	if err := v2.Validate(); err != nil {
		t.Fatalf("valid v2 config: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*MachineConfig)
		substr string
	}{
		{"vrid 0", func(c *MachineConfig) { c.VRID = 0 }, "VRID"},
		{"priority 0", func(c *MachineConfig) { c.Priority = 0 }, "priority 0"},
		{"priority 255", func(c *MachineConfig) { c.Priority = 255 }, "priority 255"},
		{"version 4", func(c *MachineConfig) { c.Version = 4 }, "version 4"},
		{"no primary", func(c *MachineConfig) { c.Primary = netip.Addr{} }, "primary"},
		{"v3 sub-centisecond", func(c *MachineConfig) { c.Interval = 15 * time.Millisecond }, "centiseconds"},
		{"v3 too long", func(c *MachineConfig) { c.Interval = 41 * time.Second }, "centiseconds"},
		{"v3 zero", func(c *MachineConfig) { c.Interval = 0 }, "centiseconds"},
		{"v2 fraction", func(c *MachineConfig) { c.Version, c.Interval = Version2, 1500*time.Millisecond }, "whole seconds"},
		{"v2 too long", func(c *MachineConfig) { c.Version, c.Interval = Version2, 256*time.Second }, "whole seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalidMachineConfig) || !strings.Contains(err.Error(), tt.substr) {
				t.Fatalf("Validate = %v, want ErrInvalidMachineConfig mentioning %q", err, tt.substr)
			}
		})
	}
}

// NewMachine keeps running on a config Validate would reject.
func TestNewMachineNormalises(t *testing.T) {
	m := NewMachine(MachineConfig{VRID: 1, Priority: 0, Primary: mAddrSelf})
	if m.Priority() != 1 {
		t.Errorf("priority %d, want clamped to 1", m.Priority())
	}
	m.Step(mT0, Startup{})
	// Version 3 at 1s, priority 1.
	if want := mT0.Add(3996093750 * time.Nanosecond); !m.NextDeadline().Equal(want) {
		t.Errorf("deadline %v, want %v", m.NextDeadline().Sub(mT0), want.Sub(mT0))
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{StateInvalid: "Invalid(0)", StateInit: "Init", StateBackup: "Backup", StateActive: "Active", State(9): "Invalid(9)"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(s), s.String(), want)
		}
		b, _ := s.MarshalText()
		if string(b) != want {
			t.Errorf("%d.MarshalText() = %q, want %q", int(s), b, want)
		}
	}
}

// TestTieBreak: two equal-priority backups armed by the same priority-0
// advert expire one after the other, the higher address first.
func TestTieBreak(t *testing.T) {
	low, high := netip.MustParseAddr("198.18.0.11"), netip.MustParseAddr("198.18.0.12")
	if d := TieBreakDelay(high, 100*ms); d != 30*ms {
		t.Errorf("TieBreakDelay(.12) = %v, want 30ms", d)
	}
	if d := TieBreakDelay(low, 100*ms); d != 40*ms {
		t.Errorf("TieBreakDelay(.11) = %v, want 40ms", d)
	}
	if d := TieBreakDelay(netip.MustParseAddr("2001:db8::f"), 100*ms); d != 0 {
		t.Errorf("TieBreakDelay(::f) = %v, want 0", d)
	}
	// The step does not grow with the interval; it shrinks below 100ms.
	if d := TieBreakDelay(low, time.Second); d != 40*ms {
		t.Errorf("TieBreakDelay(.11, 1s) = %v, want 40ms", d)
	}
	if d := TieBreakDelay(low, 50*ms); d != 20*ms {
		t.Errorf("TieBreakDelay(.11, 50ms) = %v, want 20ms", d)
	}
	start := time.Unix(0, 0)
	deadline := func(primary netip.Addr) time.Time {
		m := NewMachine(MachineConfig{VRID: 1, Priority: 100, Interval: 100 * ms, Version: Version3, Primary: primary,
			TieBreak: TieBreakDelay(primary, 100*ms)})
		m.Step(start, Startup{})
		holder := netip.MustParseAddr("198.18.0.20")
		m.Step(start.Add(ms), Advert{From: holder, Priority: 100, Interval: 100 * ms})
		m.Step(start.Add(2*ms), Advert{From: holder, Priority: 0, Interval: 100 * ms})
		return m.NextDeadline()
	}
	if dl, dh := deadline(low), deadline(high); !dh.Before(dl) || dl.Sub(dh) != 10*ms || dh != start.Add(2*ms+skew100+30*ms) {
		t.Errorf("deadlines: low %v high %v, want high = skew + 30ms, low 10ms later", dl.Sub(start), dh.Sub(start))
	}
	// At startup too; but after a normal advert (a crash shows as adverts
	// stopping) the RFC's Master_Down_Interval is kept to the letter.
	m := NewMachine(MachineConfig{VRID: 1, Priority: 100, Interval: 100 * ms, Version: Version3, Primary: low,
		TieBreak: TieBreakDelay(low, 100*ms)})
	m.Step(start, Startup{})
	if got, want := m.NextDeadline(), start.Add(down100+40*ms); !got.Equal(want) {
		t.Errorf("startup deadline %v, want %v", got.Sub(start), want.Sub(start))
	}
	m.Step(start.Add(ms), Advert{From: netip.MustParseAddr("198.18.0.20"), Priority: 100, Interval: 100 * ms})
	if got, want := m.NextDeadline(), start.Add(ms+down100); !got.Equal(want) {
		t.Errorf("deadline after an advert %v, want %v", got.Sub(start), want.Sub(start))
	}
}

// TestMasterDownNamesTheSilentRouter: a takeover because the active
// router's adverts stopped names that router (the proxy treats its
// apiserver as suspect); one after startup, with no router heard, names
// none; one after stepping down names the router that won.
func TestMasterDownNamesTheSilentRouter(t *testing.T) {
	masterDown := func(acts []Action) Transition {
		t.Helper()
		for _, a := range acts {
			if tr, ok := a.(Transition); ok && tr.Reason == ReasonMasterDown {
				return tr
			}
		}
		t.Fatalf("no master-down transition in %v", acts)
		return Transition{}
	}
	base := time.Unix(1000, 0)

	m := NewMachine(v3cfg())
	m.Step(base, Startup{})
	if tr := masterDown(m.Step(base.Add(down100), Tick{})); tr.Peer.IsValid() {
		t.Errorf("takeover after startup names %v, want no peer", tr.Peer)
	}

	m = NewMachine(v3cfg())
	m.Step(base, Startup{})
	m.Step(base.Add(10*ms), Advert{From: mAddrHigh, Priority: 150, Interval: 100 * ms})
	tr := masterDown(m.Step(base.Add(10*ms+down100), Tick{}))
	if tr.Peer != mAddrHigh || tr.Priority != 150 {
		t.Errorf("takeover after %v went silent: peer %v prio %d", mAddrHigh, tr.Peer, tr.Priority)
	}

	// Active, then beaten by a higher priority that later goes silent.
	m = NewMachine(v3cfg())
	m.Step(base, Startup{})
	m.Step(base.Add(down100), Tick{})
	at := base.Add(down100 + 50*ms)
	m.Step(at, Advert{From: mAddrLow, Priority: 200, Interval: 100 * ms})
	if m.State() != StateBackup {
		t.Fatalf("state %v after a higher priority advert", m.State())
	}
	if tr := masterDown(m.Step(m.NextDeadline(), Tick{})); tr.Peer != mAddrLow {
		t.Errorf("takeover after the winner %v went silent names %v", mAddrLow, tr.Peer)
	}
}
