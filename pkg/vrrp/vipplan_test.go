package vrrp

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// TestVIPPlan walks the plan through a takeover whose Acquire fails twice,
// a release, and re-announcements against their budget.
func TestVIPPlan(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	fail := errors.New("netlink: busy")
	p := newVIPPlan(100 * time.Millisecond)

	if op := p.next(at(0)); op != vipNone {
		t.Fatalf("nothing wanted yet: %v", op)
	}
	p.set(true)
	if op := p.next(at(0)); op != vipAcquire || !p.acquiring() {
		t.Fatalf("TakeVIP: %v", op)
	}
	if o := p.done(at(0), vipAcquire, fail); o != vipFirstError || !p.deadline().Equal(at(100*time.Millisecond)) {
		t.Fatalf("first failure: %v, retry at %v", o, p.deadline())
	}
	if op := p.next(at(50 * time.Millisecond)); op != vipNone {
		t.Fatalf("retry before its time: %v", op)
	}
	if op := p.next(at(100 * time.Millisecond)); op != vipAcquire {
		t.Fatalf("retry due: %v", op)
	}
	if o := p.done(at(100*time.Millisecond), vipAcquire, fail); o != vipError {
		t.Fatalf("second failure: %v", o)
	}
	if p.reannounce(at(150 * time.Millisecond)) {
		t.Fatal("re-announced a VIP not held")
	}
	if o := p.done(at(200*time.Millisecond), vipAcquire, nil); o != vipRecovered || !p.held() || !p.deadline().IsZero() || p.acquiring() {
		t.Fatalf("recovery: %v held=%v retry=%v", o, p.held(), p.deadline())
	}
	if op := p.next(at(300 * time.Millisecond)); op != vipNone {
		t.Fatalf("held and wanted: %v", op)
	}

	// Two re-announcements at once, then one a second.
	got := []bool{p.reannounce(at(time.Second)), p.reannounce(at(time.Second)), p.reannounce(at(1500 * time.Millisecond)), p.reannounce(at(2 * time.Second))}
	if want := []bool{true, true, false, true}; !slices.Equal(got, want) {
		t.Fatalf("re-announcements %v, want %v", got, want)
	}

	// The contest is over two intervals after the last re-announcement
	// asked for: once more, outside the budget (spent at 2s), once.
	if p.settled(at(2100*time.Millisecond), 200*time.Millisecond) {
		t.Fatal("settled while the contest goes on")
	}
	if !p.settled(at(2200*time.Millisecond), 200*time.Millisecond) {
		t.Fatal("no announcement once the contest is over")
	}
	if p.settled(at(3*time.Second), 200*time.Millisecond) {
		t.Fatal("a second announcement for one contest")
	}
	p.reannounce(at(2500 * time.Millisecond))

	// A wish overrides a pending retry; releasing ends the contest.
	p.set(false)
	if op := p.next(at(3 * time.Second)); op != vipRelease {
		t.Fatalf("ReleaseVIP: %v", op)
	}
	p.done(at(3*time.Second), vipRelease, fail)
	p.set(false)
	if op := p.next(at(3 * time.Second)); op != vipRelease {
		t.Fatalf("a new wish waits for no retry: %v", op)
	}
	if o := p.done(at(3*time.Second), vipRelease, nil); o != vipRecovered || p.held() {
		t.Fatalf("release: %v held=%v", o, p.held())
	}
	if op := p.next(at(4 * time.Second)); op != vipNone {
		t.Fatalf("released and not wanted: %v", op)
	}
	if p.settled(at(5*time.Second), 200*time.Millisecond) {
		t.Fatal("a released VIP announced")
	}
}
