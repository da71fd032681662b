package membership

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"
)

var (
	t0 = time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	a1 = netip.MustParseAddrPort("198.18.0.11:6443")
	a2 = netip.MustParseAddrPort("198.18.0.12:6443")
	a3 = netip.MustParseAddrPort("198.18.0.13:6443")
	a4 = netip.MustParseAddrPort("198.18.0.14:6443")
)

func at(d time.Duration) time.Time { return t0.Add(d) }

func add(a netip.AddrPort, r Reason) Change    { return Change{Member: a, Added: true, Reason: r} }
func remove(a netip.AddrPort, r Reason) Change { return Change{Member: a, Reason: r} }

func observed(as ...netip.AddrPort) Observed { return Observed{Members: as} }

var errDown = errors.New("connection refused")

// step is one input of a scenario and what it must do.
type step struct {
	at      time.Duration
	in      Input
	want    []Change
	members []netip.AddrPort // the set after the step
	next    time.Duration    // NextDeadline after the step, from t0; -1: none
}

func TestSetRules(t *testing.T) {
	const grace = time.Minute
	for _, tc := range []struct {
		name      string
		static    []netip.AddrPort
		persisted []netip.AddrPort
		start     []Change
		steps     []step
	}{{
		name:   "a discovered member is added at once",
		static: []netip.AddrPort{a1},
		start:  []Change{add(a1, ReasonStatic)},
		steps: []step{
			{at: 0, in: observed(a1, a2, a3), want: []Change{add(a2, ReasonDiscovered), add(a3, ReasonDiscovered)},
				members: []netip.AddrPort{a1, a2, a3}, next: -1},
		},
	}, {
		name:   "a missing member is removed after the grace period, not before",
		static: []netip.AddrPort{a1},
		start:  []Change{add(a1, ReasonStatic)},
		steps: []step{
			{at: 0, in: observed(a1, a2, a3), want: []Change{add(a2, ReasonDiscovered), add(a3, ReasonDiscovered)},
				members: []netip.AddrPort{a1, a2, a3}, next: -1},
			{at: 10 * time.Second, in: observed(a1, a2), members: []netip.AddrPort{a1, a2, a3}, next: 70 * time.Second},
			{at: 69 * time.Second, in: Tick{}, members: []netip.AddrPort{a1, a2, a3}, next: 70 * time.Second},
			{at: 70 * time.Second, in: Tick{}, want: []Change{remove(a3, ReasonGone)}, members: []netip.AddrPort{a1, a2}, next: -1},
		},
	}, {
		name:   "a member listed again within the grace period stays",
		static: []netip.AddrPort{a1},
		start:  []Change{add(a1, ReasonStatic)},
		steps: []step{
			{at: 0, in: observed(a1, a2), want: []Change{add(a2, ReasonDiscovered)}, members: []netip.AddrPort{a1, a2}, next: -1},
			{at: time.Second, in: observed(a1), members: []netip.AddrPort{a1, a2}, next: 61 * time.Second},
			{at: 30 * time.Second, in: observed(a1, a2), members: []netip.AddrPort{a1, a2}, next: -1},
			{at: 2 * time.Minute, in: Tick{}, members: []netip.AddrPort{a1, a2}, next: -1},
		},
	}, {
		name:   "a static member is never removed",
		static: []netip.AddrPort{a1, a2},
		start:  []Change{add(a1, ReasonStatic), add(a2, ReasonStatic)},
		steps: []step{
			{at: 0, in: observed(a3), want: []Change{add(a3, ReasonDiscovered)}, members: []netip.AddrPort{a1, a2, a3}, next: -1},
			{at: time.Hour, in: observed(a3), members: []netip.AddrPort{a1, a2, a3}, next: -1},
		},
	}, {
		name:   "an unreachable API never shrinks the set, and stops the grace period",
		static: []netip.AddrPort{a1},
		start:  []Change{add(a1, ReasonStatic)},
		steps: []step{
			{at: 0, in: observed(a1, a2, a3), want: []Change{add(a2, ReasonDiscovered), add(a3, ReasonDiscovered)},
				members: []netip.AddrPort{a1, a2, a3}, next: -1},
			{at: time.Second, in: observed(a1, a2), members: []netip.AddrPort{a1, a2, a3}, next: 61 * time.Second},
			{at: 30 * time.Second, in: Unreachable{Err: errDown}, members: []netip.AddrPort{a1, a2, a3}, next: -1},
			{at: time.Hour, in: Tick{}, members: []netip.AddrPort{a1, a2, a3}, next: -1},
			{at: time.Hour, in: Unreachable{Err: errDown}, members: []netip.AddrPort{a1, a2, a3}, next: -1},
			// Back: the whole grace period starts again.
			{at: 2 * time.Hour, in: observed(a1, a2), members: []netip.AddrPort{a1, a2, a3}, next: 2*time.Hour + grace},
			{at: 2*time.Hour + grace, in: Tick{}, want: []Change{remove(a3, ReasonGone)}, members: []netip.AddrPort{a1, a2}, next: -1},
		},
	}, {
		name:      "an empty list says nothing",
		start:     []Change{add(a2, ReasonPersisted), add(a3, ReasonPersisted)},
		persisted: []netip.AddrPort{a2, a3},
		steps: []step{
			{at: 0, in: observed(a2), members: []netip.AddrPort{a2, a3}, next: grace},
			{at: time.Second, in: observed(), members: []netip.AddrPort{a2, a3}, next: grace},
			{at: grace, in: Tick{}, want: []Change{remove(a3, ReasonGone)}, members: []netip.AddrPort{a2}, next: -1},
			{at: 2 * grace, in: observed(), members: []netip.AddrPort{a2}, next: -1},
		},
	}, {
		name:      "a restart starts from the persisted set, and keeps it while the API is down",
		static:    []netip.AddrPort{a1},
		persisted: []netip.AddrPort{a1, a2, a3},
		start:     []Change{add(a1, ReasonStatic), add(a2, ReasonPersisted), add(a3, ReasonPersisted)},
		steps: []step{
			{at: 0, in: Unreachable{Err: errDown}, members: []netip.AddrPort{a1, a2, a3}, next: -1},
			{at: time.Hour, in: Tick{}, members: []netip.AddrPort{a1, a2, a3}, next: -1},
			// A persisted member the API no longer lists leaves like a
			// discovered one; a new one comes in at once.
			{at: 2 * time.Hour, in: observed(a1, a2, a4), want: []Change{add(a4, ReasonDiscovered)},
				members: []netip.AddrPort{a1, a2, a3, a4}, next: 2*time.Hour + grace},
			{at: 2*time.Hour + grace, in: Tick{}, want: []Change{remove(a3, ReasonGone)},
				members: []netip.AddrPort{a1, a2, a4}, next: -1},
		},
	}, {
		name:      "a replacement with a new address: the new one at once, the old one after the grace period",
		static:    nil,
		persisted: []netip.AddrPort{a1, a2, a3},
		start:     []Change{add(a1, ReasonPersisted), add(a2, ReasonPersisted), add(a3, ReasonPersisted)},
		steps: []step{
			{at: 0, in: observed(a1, a2, a4), want: []Change{add(a4, ReasonDiscovered)}, members: []netip.AddrPort{a1, a2, a3, a4}, next: grace},
			{at: grace, in: observed(a1, a2, a4), want: []Change{remove(a3, ReasonGone)}, members: []netip.AddrPort{a1, a2, a4}, next: -1},
		},
	}, {
		name:      "duplicates and invalid addresses are ignored",
		static:    []netip.AddrPort{a1, a1, {}},
		persisted: []netip.AddrPort{a1, a2, a2, {}},
		start:     []Change{add(a1, ReasonStatic), add(a2, ReasonPersisted)},
		steps: []step{
			{at: 0, in: observed(a2, a2, netip.AddrPort{}), members: []netip.AddrPort{a1, a2}, next: -1},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s, start := New(Config{Static: tc.static, Grace: grace}, t0, tc.persisted)
			if !slices.Equal(start, tc.start) {
				t.Fatalf("start changes = %v, want %v", start, tc.start)
			}
			for i, st := range tc.steps {
				got := s.Step(at(st.at), st.in)
				if !slices.Equal(got, st.want) {
					t.Errorf("step %d (%T at %v): changes %v, want %v", i, st.in, st.at, got, st.want)
				}
				if m := s.Addrs(); !slices.Equal(m, st.members) {
					t.Errorf("step %d: members %v, want %v", i, m, st.members)
				}
				var want time.Time
				if st.next >= 0 {
					want = at(st.next)
				}
				if n := s.NextDeadline(); !n.Equal(want) {
					t.Errorf("step %d: next deadline %v, want %v", i, n, want)
				}
			}
		})
	}
}

func TestSetMembersShowsPendingRemoval(t *testing.T) {
	s, _ := New(Config{Static: []netip.AddrPort{a1}, Grace: time.Minute}, t0, nil)
	s.Step(t0, observed(a1, a2))
	s.Step(at(time.Second), observed(a1))
	got := s.Members()
	want := []Member{
		{Addr: a1, Static: true, Reason: ReasonStatic, Since: t0},
		{Addr: a2, Reason: ReasonDiscovered, Since: t0, MissingSince: at(time.Second), RemoveAt: at(61 * time.Second)},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Members() = %+v\nwant %+v", got, want)
	}
	if d := s.Discovered(); !slices.Equal(d, []netip.AddrPort{a2}) {
		t.Errorf("Discovered() = %v, want [%v]", d, a2)
	}
	s.Step(at(2*time.Second), Unreachable{Err: errDown})
	if m := s.Members()[1]; !m.RemoveAt.IsZero() || !m.MissingSince.IsZero() {
		t.Errorf("with the API unreachable, %v still shows a pending removal: %+v", a2, m)
	}
}

func TestSetDefaultGrace(t *testing.T) {
	s, _ := New(Config{}, t0, []netip.AddrPort{a1})
	s.Step(t0, observed(a2))
	if n := s.NextDeadline(); !n.Equal(t0.Add(DefaultGrace)) {
		t.Fatalf("NextDeadline = %v, want %v", n, t0.Add(DefaultGrace))
	}
}

func TestPeers(t *testing.T) {
	self := netip.MustParseAddr("198.18.0.11")
	for _, tc := range []struct {
		name    string
		static  []netip.Addr
		members []netip.AddrPort
		want    []netip.Addr
	}{
		{"members become peers, self left out", nil,
			[]netip.AddrPort{a1, a2, a3},
			[]netip.Addr{a2.Addr(), a3.Addr()}},
		{"static peers first, no duplicates", []netip.Addr{a3.Addr()},
			[]netip.AddrPort{a1, a2, a3},
			[]netip.Addr{a3.Addr(), a2.Addr()}},
		{"other family and loopback left out", nil,
			[]netip.AddrPort{netip.MustParseAddrPort("[2001:db8::1]:6443"), netip.MustParseAddrPort("127.0.0.1:6443"), a2},
			[]netip.Addr{a2.Addr()}},
		{"4-in-6 mapped is the IPv4 address", nil,
			[]netip.AddrPort{netip.MustParseAddrPort("[::ffff:198.18.0.12]:6443"), a2},
			[]netip.Addr{a2.Addr()}},
		{"nothing", nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Peers(tc.static, tc.members, self); !slices.Equal(got, tc.want) {
				t.Fatalf("Peers = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReasonString(t *testing.T) {
	for r, want := range map[Reason]string{0: "invalid", ReasonStatic: "static", ReasonPersisted: "persisted",
		ReasonDiscovered: "discovered", ReasonGone: "gone", 99: "invalid"} {
		if got := r.String(); got != want {
			t.Errorf("Reason(%d).String() = %q, want %q", int(r), got, want)
		}
	}
}
