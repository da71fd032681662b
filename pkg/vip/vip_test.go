package vip

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
)

// fakeTable is an addrTable over a map, with injectable errors: for the
// address failOnly when it is set, else for every address.
type fakeTable struct {
	addrs     map[netip.Addr]netip.Prefix
	adds      []netip.Prefix
	addErr    error
	removeErr error
	failOnly  netip.Addr
	closed    bool
}

func (f *fakeTable) fails(a netip.Addr) bool { return !f.failOnly.IsValid() || f.failOnly == a }

func newFakeTable() *fakeTable { return &fakeTable{addrs: map[netip.Addr]netip.Prefix{}} }

func (f *fakeTable) add(p netip.Prefix) error {
	f.adds = append(f.adds, p)
	if f.addErr != nil && f.fails(p.Addr()) {
		return f.addErr
	}
	f.addrs[p.Addr()] = p
	return nil
}

func (f *fakeTable) remove(a netip.Addr) (bool, error) {
	if f.removeErr != nil && f.fails(a) {
		return false, f.removeErr
	}
	_, ok := f.addrs[a]
	delete(f.addrs, a)
	return ok, nil
}

func (f *fakeTable) close() error { f.closed = true; return nil }

// fakeSender records frames. sent may be read from another goroutine (the
// afterFunc fallback), hence the mutex.
type fakeSender struct {
	mu     sync.Mutex
	frames [][]byte
	err    error
	closed bool
}

func (f *fakeSender) send(b []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.frames = append(f.frames, b)
	return nil
}

func (f *fakeSender) close() error { f.closed = true; return nil }

func (f *fakeSender) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.frames)
}

type harness struct {
	m      *Manager
	table  *fakeTable
	sender *fakeSender
	clock  *clocktesting.FakeClock
	log    *bytes.Buffer
}

var (
	vip4 = netip.MustParsePrefix("198.18.0.10/24")
	vip6 = netip.MustParsePrefix("2001:db8::10/64")
)

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{
		table:  newFakeTable(),
		sender: &fakeSender{},
		clock:  clocktesting.NewFakeClock(time.Unix(1_700_000_000, 0)),
		log:    &bytes.Buffer{},
	}
	if cfg.Interface == "" {
		cfg.Interface = "eth0"
	}
	if !cfg.Prefix.IsValid() {
		cfg.Prefix = vip4
	}
	cfg.Clock = h.clock
	cfg.Logger = slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	h.m = newManager(cfg, h.table, h.sender, announcement(testMAC, cfg.Prefix.Addr(), false))
	return h
}

func TestAcquireAddsAndAnnouncesTwice(t *testing.T) {
	h := newHarness(t, Config{})
	if err := h.m.Acquire(); err != nil {
		t.Fatal(err)
	}
	if got := h.table.addrs[vip4.Addr()]; got != vip4 {
		t.Fatalf("table holds %v, want %v", got, vip4)
	}
	// 3 rounds of ARP request + reply.
	if n := h.sender.count(); n != 6 {
		t.Fatalf("first burst sent %d frames, want 6", n)
	}
	for i, f := range h.sender.frames {
		want := arpFrame(arpRequest, testMAC, vip4.Addr())
		if i%2 == 1 {
			want = arpFrame(arpReply, testMAC, vip4.Addr())
		}
		if !bytes.Equal(f, want) {
			t.Errorf("frame %d = %x, want %x", i, f, want)
		}
	}
	h.clock.Step(DefaultRepeatAfter - time.Millisecond)
	if n := h.sender.count(); n != 6 {
		t.Fatalf("before RepeatAfter: %d frames, want still 6", n)
	}
	h.clock.Step(time.Millisecond)
	if n := h.sender.count(); n != 12 {
		t.Fatalf("at RepeatAfter: %d frames, want 12", n)
	}
	h.clock.Step(time.Hour)
	if n := h.sender.count(); n != 12 {
		t.Fatalf("later: %d frames, want 12 (two bursts only)", n)
	}
	if h.clock.HasWaiters() {
		t.Error("a timer is still pending after the second burst")
	}
}

func TestAcquireIPv6SendsNA(t *testing.T) {
	h := newHarness(t, Config{Prefix: vip6, BurstCount: 2})
	if err := h.m.Acquire(); err != nil {
		t.Fatal(err)
	}
	want := unsolicitedNA(testMAC, vip6.Addr(), false)
	if n := h.sender.count(); n != 2 {
		t.Fatalf("sent %d frames, want 2", n)
	}
	for i, f := range h.sender.frames {
		if !bytes.Equal(f, want) {
			t.Errorf("frame %d = %x, want %x", i, f, want)
		}
	}
}

func TestAcquireAgainReannouncesWithOneRepeat(t *testing.T) {
	h := newHarness(t, Config{})
	for range 2 {
		if err := h.m.Acquire(); err != nil {
			t.Fatal(err)
		}
		h.clock.Step(time.Second)
	}
	// t=2s: the first Acquire's repeat was replaced by the second's (due at 3s).
	if n := h.sender.count(); n != 12 {
		t.Fatalf("after two Acquires: %d frames, want 12", n)
	}
	h.clock.Step(time.Hour)
	if n := h.sender.count(); n != 18 {
		t.Fatalf("after the repeat: %d frames, want 18 (one repeat)", n)
	}
	if len(h.table.adds) != 2 {
		t.Errorf("add called %d times, want 2", len(h.table.adds))
	}
	if c := strings.Count(h.log.String(), "VIP acquired"); c != 1 {
		t.Errorf("logged 'VIP acquired' %d times, want once:\n%s", c, h.log)
	}
}

func TestReleaseCancelsRepeatAndRemoves(t *testing.T) {
	h := newHarness(t, Config{})
	if err := h.m.Acquire(); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Release(); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.table.addrs[vip4.Addr()]; ok {
		t.Fatal("address still in the table after Release")
	}
	h.clock.Step(time.Hour)
	if n := h.sender.count(); n != 6 {
		t.Fatalf("%d frames after Release and time passing, want 6 (no repeat)", n)
	}
	if err := h.m.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
}

func TestReleaseThenAcquireSchedulesFreshRepeat(t *testing.T) {
	h := newHarness(t, Config{})
	_ = h.m.Acquire()
	h.clock.Step(time.Second)
	_ = h.m.Release()
	_ = h.m.Acquire() // repeat due at t=3s
	h.clock.Step(time.Second)
	if n := h.sender.count(); n != 12 {
		t.Fatalf("t=2s: %d frames, want 12 (the released repeat must not fire)", n)
	}
	h.clock.Step(time.Second)
	if n := h.sender.count(); n != 18 {
		t.Fatalf("t=3s: %d frames, want 18", n)
	}
}

func TestAcquireAddError(t *testing.T) {
	h := newHarness(t, Config{})
	boom := errors.New("netlink says no")
	h.table.addErr = boom
	err := h.m.Acquire()
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "198.18.0.10/24") || !strings.Contains(err.Error(), "eth0") {
		t.Fatalf("Acquire error = %v, want it to wrap %v and name the VIP and interface", err, boom)
	}
	h.clock.Step(time.Hour)
	if n := h.sender.count(); n != 0 {
		t.Errorf("%d frames announced for an address that was not added", n)
	}
}

func TestAnnounceFailureIsLoggedNotReturned(t *testing.T) {
	h := newHarness(t, Config{})
	h.sender.err = errors.New("network is down")
	if err := h.m.Acquire(); err != nil {
		t.Fatalf("Acquire = %v, want nil: the address is held", err)
	}
	out := h.log.String()
	if !strings.Contains(out, "VIP announcement failed") || !strings.Contains(out, "failed=6") || !strings.Contains(out, "network is down") {
		t.Errorf("log lacks the failure summary:\n%s", out)
	}
	// The link comes back: the repeat burst goes out.
	h.sender.err = nil
	h.clock.Step(DefaultRepeatAfter)
	if n := h.sender.count(); n != 6 {
		t.Errorf("repeat after a failed burst sent %d frames, want 6", n)
	}
}

func TestRemoveStale(t *testing.T) {
	h := newHarness(t, Config{})
	h.table.addrs[vip4.Addr()] = netip.MustParsePrefix("198.18.0.10/32")
	if removed, err := h.m.RemoveStale(); err != nil || !removed {
		t.Fatalf("RemoveStale = %v, %v; want true, nil", removed, err)
	}
	if removed, err := h.m.RemoveStale(); err != nil || removed {
		t.Fatalf("second RemoveStale = %v, %v; want false, nil", removed, err)
	}
	if !strings.Contains(h.log.String(), "stale VIP removed") {
		t.Errorf("removal not logged:\n%s", h.log)
	}
}

func TestRemoveError(t *testing.T) {
	h := newHarness(t, Config{})
	boom := errors.New("EPERM")
	h.table.removeErr = boom
	if err := h.m.Release(); !errors.Is(err, boom) {
		t.Fatalf("Release = %v, want it to wrap %v", err, boom)
	}
	if _, err := h.m.RemoveStale(); !errors.Is(err, boom) {
		t.Fatalf("RemoveStale = %v, want it to wrap %v", err, boom)
	}
}

func TestClose(t *testing.T) {
	h := newHarness(t, Config{})
	_ = h.m.Acquire()
	if err := h.m.Close(); err != nil {
		t.Fatal(err)
	}
	if !h.sender.closed || !h.table.closed {
		t.Errorf("Close left sockets open: sender closed %v, table closed %v", h.sender.closed, h.table.closed)
	}
	h.clock.Step(time.Hour)
	if n := h.sender.count(); n != 6 {
		t.Errorf("%d frames after Close, want 6 (repeat cancelled)", n)
	}
	if _, ok := h.table.addrs[vip4.Addr()]; !ok {
		t.Error("Close removed the address; only Release should")
	}
	if err := h.m.Acquire(); !errors.Is(err, ErrClosed) {
		t.Errorf("Acquire after Close = %v, want ErrClosed", err)
	}
	if err := h.m.Release(); !errors.Is(err, ErrClosed) {
		t.Errorf("Release after Close = %v, want ErrClosed", err)
	}
	if err := h.m.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

func TestNoSenderNoAnnouncement(t *testing.T) {
	h := newHarness(t, Config{})
	h.m.sender = nil
	if err := h.m.Acquire(); err != nil {
		t.Fatal(err)
	}
	if h.clock.HasWaiters() {
		t.Error("a repeat was scheduled on a link that cannot announce")
	}
	if err := h.m.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRepeatDisabled(t *testing.T) {
	h := newHarness(t, Config{RepeatAfter: -1})
	if err := h.m.Acquire(); err != nil {
		t.Fatal(err)
	}
	if h.clock.HasWaiters() {
		t.Error("a repeat was scheduled with RepeatAfter < 0")
	}
	if n := h.sender.count(); n != 6 {
		t.Errorf("%d frames, want 6", n)
	}
}

// plainClock hides AfterFunc, to exercise afterFunc's timer fallback.
type plainClock struct{ clock.Clock }

func TestAfterFuncFallback(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Unix(0, 0))
	fired := make(chan struct{})
	afterFunc(plainClock{fc}, time.Second, func() { close(fired) })
	fc.Step(time.Second)
	select {
	case <-fired:
	case <-time.After(10 * time.Second): // failure guard, not a speed assertion
		t.Fatal("fallback timer never ran f")
	}

	stopped := afterFunc(plainClock{fc}, time.Second, func() { t.Error("stopped timer ran f") })
	if !stopped.Stop() {
		t.Error("Stop of a pending timer returned false")
	}
	fc.Step(time.Second)
	stopped.Stop() // a second Stop must not panic on the closed channel
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	cfg, err := Config{Interface: "eth0", Prefix: vip4}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BurstCount != 3 || cfg.RepeatAfter != 2*time.Second || cfg.Clock == nil || cfg.Logger == nil {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no interface", Config{Prefix: vip4}, "interface is empty"},
		{"long interface", Config{Interface: "a-very-long-name0", Prefix: vip4}, "longer than 15"},
		{"no prefix", Config{Interface: "eth0"}, "prefix is not set"},
		{"negative burst", Config{Interface: "eth0", Prefix: vip4, BurstCount: -1}, "burst count"},
		{"huge burst", Config{Interface: "eth0", Prefix: vip4, BurstCount: 1000}, "burst count"},
		{"mapped", Config{Interface: "eth0", Prefix: netip.MustParsePrefix("::ffff:198.18.0.10/120")}, "IPv4-mapped"},
		{"multicast", Config{Interface: "eth0", Prefix: netip.MustParsePrefix("ff02::1/128")}, "not a unicast"},
		{"unspecified", Config{Interface: "eth0", Prefix: netip.MustParsePrefix("0.0.0.0/0")}, "not a unicast"},
		{"loopback", Config{Interface: "eth0", Prefix: netip.MustParsePrefix("127.0.0.2/8")}, "not a unicast"},
		{"broadcast", Config{Interface: "eth0", Prefix: netip.MustParsePrefix("198.18.0.255/24")}, "broadcast address of 198.18.0.0/24"},
		{"label of another interface", Config{Interface: "eth0", Prefix: vip4, Label: "eth1:vip"}, "label"},
		{"label too long", Config{Interface: "eth0", Prefix: vip4, Label: "eth0:virtualip12"}, "label"},
	} {
		_, err := tc.cfg.withDefaults()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig mentioning %q", tc.name, err, tc.want)
		}
	}
	for _, ok := range []Config{
		{Interface: "eth0", Prefix: netip.MustParsePrefix("198.18.0.10/32")},
		{Interface: "eth0", Prefix: netip.MustParsePrefix("198.18.0.1/31")},
		{Interface: "eth0", Prefix: vip4, Label: "eth0:vip"},
		{Interface: "bond0.100", Prefix: vip6},
	} {
		if _, err := ok.withDefaults(); err != nil {
			t.Errorf("%+v: unexpected error %v", ok, err)
		}
	}
}
