package vrrp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

// The decisions of a Speaker are its core's, tested in sim_test.go. The
// tests here run the real loop under a fake clock with a fake Conn and
// VIP, and observe only what it does from outside: the adverts it sends,
// the VIP calls it makes, its Status and Run's result. They prove the
// wiring: that timers, adverts, SetLink, AdjustPriority and the context
// reach the core, and that a failing Conn ends Run without the VIP.

var (
	loopT0    = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	loopAddr  = netip.MustParseAddr("198.18.0.11")
	loopPeer  = netip.MustParseAddr("198.18.0.12")
	errConn   = errors.New("injected conn failure")
	errVIP    = errors.New("injected VIP failure")
	loopLimit = 20 * time.Second // generous: the machine is shared
)

// fakeConn hands Run what the test puts in in and errs, and reports what
// it sends on sent.
type fakeConn struct {
	in     chan Received
	errs   chan error
	sent   chan Packet
	closed chan struct{}
	once   sync.Once
}

func newFakeConn() *fakeConn {
	return &fakeConn{in: make(chan Received), errs: make(chan error), sent: make(chan Packet, 1000), closed: make(chan struct{})}
}

func (c *fakeConn) Receive() (Received, error) {
	select {
	case r := <-c.in:
		return r, nil
	case err := <-c.errs:
		return Received{}, err
	case <-c.closed:
		return Received{}, net.ErrClosed
	}
}

func (c *fakeConn) Send(p *Packet) error {
	select {
	case <-c.closed:
		return net.ErrClosed
	default:
	}
	c.sent <- *p
	return nil
}

func (c *fakeConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// fakeVIP reports its calls on calls; Release fails while failRelease.
type fakeVIP struct {
	calls       chan string
	mu          sync.Mutex
	failRelease bool
}

func (v *fakeVIP) Acquire() error { v.calls <- "acquire"; return nil }
func (v *fakeVIP) Release() error {
	v.mu.Lock()
	fail := v.failRelease
	v.mu.Unlock()
	if fail {
		v.calls <- "release failed"
		return errVIP
	}
	v.calls <- "release"
	return nil
}

// loop is one Speaker running under a fake clock.
type loop struct {
	t      *testing.T
	clk    *testingclock.FakeClock
	conn   *fakeConn
	vip    *fakeVIP
	logs   *recHandler
	sp     *Speaker
	cancel context.CancelFunc
	result chan error
}

func startLoop(t *testing.T, mc MachineConfig, mod ...func(*SpeakerConfig)) *loop {
	l := &loop{t: t, clk: testingclock.NewFakeClock(loopT0), conn: newFakeConn(),
		vip: &fakeVIP{calls: make(chan string, 100)}, logs: &recHandler{}, result: make(chan error, 1)}
	sc := SpeakerConfig{Machine: mc, Clock: l.clk, Logger: slog.New(l.logs)}
	for _, m := range mod {
		m(&sc)
	}
	l.sp = NewSpeaker(sc, l.conn, l.vip)
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go func() { l.result <- l.sp.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		_ = l.conn.Close()
		select {
		case <-l.result:
		case <-time.After(loopLimit):
			t.Errorf("Run did not return")
		}
	})
	l.waitState(StateBackup)
	return l
}

func v3Config(prio uint8) MachineConfig {
	return MachineConfig{VRID: 7, Priority: prio, Interval: 100 * time.Millisecond, Version: Version3, Primary: loopAddr}
}

func (l *loop) waitState(want State) {
	l.t.Helper()
	for limit := time.Now().Add(loopLimit); l.sp.Status().State != want; time.Sleep(time.Millisecond) {
		if time.Now().After(limit) {
			l.t.Fatalf("state %v, want %v", l.sp.Status().State, want)
		}
	}
}

// sent waits for the next advert Run sends.
func (l *loop) sent() Packet {
	l.t.Helper()
	select {
	case p := <-l.conn.sent:
		return p
	case <-time.After(loopLimit):
		l.t.Fatalf("no advert sent")
		return Packet{}
	}
}

// vipCall waits for the next VIP call.
func (l *loop) vipCall(want string) {
	l.t.Helper()
	select {
	case got := <-l.vip.calls:
		if got != want {
			l.t.Fatalf("VIP call %q, want %q", got, want)
		}
	case <-time.After(loopLimit):
		l.t.Fatalf("no VIP call, want %q", want)
	}
}

// takeOver moves the fake clock past any down timer: the speaker, alone,
// becomes active and sends its first advert.
func (l *loop) takeOver() Packet {
	l.t.Helper()
	l.clk.Step(10 * time.Second)
	l.vipCall("acquire")
	p := l.sent()
	l.waitState(StateActive)
	return p
}

// afterTimer moves the fake clock by d once Run waits on a timer.
func (l *loop) afterTimer(d time.Duration) {
	l.t.Helper()
	for limit := time.Now().Add(loopLimit); !l.clk.HasWaiters(); time.Sleep(time.Millisecond) {
		if time.Now().After(limit) {
			l.t.Fatalf("Run arms no timer")
		}
	}
	l.clk.Step(d)
}

func (l *loop) runResult() error {
	l.t.Helper()
	select {
	case err := <-l.result:
		l.result <- err // for the cleanup
		return err
	case <-time.After(loopLimit):
		l.t.Fatalf("Run did not return")
		return nil
	}
}

// The loop feeds the core its timers, adverts, priority and link, and
// performs what it decides on the Conn and the VIP.
func TestSpeakerLoop(t *testing.T) {
	l := startLoop(t, v3Config(150))
	if !l.sp.Ready() {
		t.Fatalf("not ready as backup")
	}
	if p := l.takeOver(); p.Priority != 150 {
		t.Fatalf("first advert %+v", p)
	}
	l.sp.AdjustPriority("backends", -100)
	if p := l.sent(); p.Priority != 50 {
		t.Fatalf("advert after AdjustPriority %+v, want priority 50", p)
	}
	if st := l.sp.Status(); st.EffectivePriority != 50 || st.BasePriority != 150 {
		t.Fatalf("priorities %d/%d", st.EffectivePriority, st.BasePriority)
	}
	// A stronger router's advert makes it step down.
	l.conn.in <- Received{Src: loopPeer, Packet: &Packet{Version: Version3, VRID: 7, Priority: 120, Interval: 100 * time.Millisecond}}
	if p := l.sent(); p.Priority != 0 {
		t.Fatalf("advert on stepping down %+v, want priority 0", p)
	}
	l.vipCall("release")
	l.waitState(StateBackup)
	if st := l.sp.Status(); st.ActiveRouter != loopPeer || st.AdvertsReceived != 1 || len(st.Peers) != 1 || st.Peers[0].Addr != loopPeer {
		t.Fatalf("status after the peer's advert %+v", st)
	}
	l.sp.SetLink(false)
	l.waitState(StateInit)
	l.sp.SetLink(true)
	l.waitState(StateBackup)
	l.sp.AdjustPriority("backends", 0)
	l.takeOver()
	// Stopped as the active router: goodbye, then the VIP stays until the
	// successor's advert.
	l.cancel()
	if p := l.sent(); p.Priority != 0 {
		t.Fatalf("advert on stop %+v, want priority 0", p)
	}
	select {
	case c := <-l.vip.calls:
		t.Fatalf("VIP %s before the successor advertised", c)
	default:
	}
	l.conn.in <- Received{Src: loopPeer, Packet: &Packet{Version: Version3, VRID: 7, Priority: 120, Interval: 100 * time.Millisecond}}
	l.vipCall("release")
	if err := l.runResult(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if st := l.sp.Status(); st.State != StateInit || st.VIPHeld || l.sp.Ready() {
		t.Fatalf("status after Run %+v", st)
	}
}

// OnTransition hears a takeover before the VIP is added, naming the
// router whose adverts stopped.
func TestSpeakerOnTransition(t *testing.T) {
	type heard struct {
		tr        Transition
		vipCalled bool
	}
	got := make(chan heard, 10)
	var started atomic.Pointer[loop] // set once startLoop returns
	l := startLoop(t, v3Config(100), func(c *SpeakerConfig) {
		c.OnTransition = func(tr Transition) {
			h := heard{tr: tr}
			if l := started.Load(); l != nil {
				h.vipCalled = len(l.vip.calls) > 0
			}
			got <- h
		}
	})
	started.Store(l)
	<-got // Init to Backup
	l.conn.in <- Received{Src: loopPeer, Packet: &Packet{Version: Version3, VRID: 7, Priority: 120, Interval: 100 * time.Millisecond}}
	for limit := time.Now().Add(loopLimit); l.sp.Status().ActiveRouter != loopPeer; time.Sleep(time.Millisecond) {
		if time.Now().After(limit) {
			t.Fatal("the peer's advert was not heard")
		}
	}
	l.takeOver()
	select {
	case h := <-got:
		if h.tr.To != StateActive || h.tr.Reason != ReasonMasterDown || h.tr.Peer != loopPeer || h.tr.Priority != 120 {
			t.Errorf("OnTransition got %+v, want a master-down takeover naming %v (priority 120)", h.tr, loopPeer)
		}
		if h.vipCalled {
			t.Error("OnTransition called after the VIP was added")
		}
	default:
		t.Fatal("OnTransition not called on the takeover")
	}
}

// Nobody answers the goodbye: the VIP goes when the handover times out,
// and a release that fails then is Run's error. VRRPv2 adverts carry the
// version, VRID, priority and interval (the addresses and the
// authentication are the Conn's).
func TestSpeakerLoopHandoverTimeout(t *testing.T) {
	for _, failRelease := range []bool{false, true} {
		mc := MachineConfig{VRID: 7, Priority: 150, Interval: time.Second, Version: Version2, Primary: loopAddr}
		l := startLoop(t, mc)
		p := l.takeOver()
		if want := (Packet{Version: Version2, VRID: 7, Priority: 150, Interval: time.Second}); p.Version != want.Version ||
			p.VRID != want.VRID || p.Priority != want.Priority || p.Interval != want.Interval ||
			p.AuthType != AuthNone || p.Password != "" || len(p.Addrs) != 0 {
			t.Fatalf("advert %+v, want %+v", p, want)
		}
		l.vip.mu.Lock()
		l.vip.failRelease = failRelease
		l.vip.mu.Unlock()
		l.cancel()
		if p := l.sent(); p.Priority != 0 {
			t.Fatalf("advert on stop %+v", p)
		}
		l.afterTimer(maxHandover)
		err := l.runResult()
		if failRelease {
			l.vipCall("release failed")
			if !errors.Is(err, errVIP) {
				t.Fatalf("Run = %v, want the release error", err)
			}
			continue
		}
		l.vipCall("release")
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	}
}

// A backup stops at once and silently; Run runs once.
func TestSpeakerLoopStopBackup(t *testing.T) {
	l := startLoop(t, v3Config(150))
	if err := l.sp.Run(context.Background()); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Run = %v", err)
	}
	l.cancel()
	if err := l.runResult(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if len(l.conn.sent) != 0 || len(l.vip.calls) != 0 {
		t.Fatalf("a backup sent %d adverts and made %d VIP calls on stop", len(l.conn.sent), len(l.vip.calls))
	}
}

// A few failed reads in a row are survived, logged once and their end
// said; maxRecvFailures end Run, and the VIP goes with it: a router that
// cannot hear the others must not hold it. So does a closed Conn.
func TestSpeakerLoopConnFails(t *testing.T) {
	t.Run("receive errors", func(t *testing.T) {
		l := startLoop(t, v3Config(150))
		l.takeOver()
		for range maxRecvFailures - 1 {
			l.conn.errs <- errConn
		}
		l.conn.in <- Received{Src: loopPeer, Packet: &Packet{Version: Version3, VRID: 7, Priority: 100, Interval: 100 * time.Millisecond}}
		l.sent()             // the answer to a weaker router
		l.vipCall("acquire") // and the announcement that goes with it
		if got, want := l.logs.messages(slog.LevelWarn), []string{"WARN vrrp receive failed"}; !slices.Equal(got, want) {
			t.Fatalf("warnings %q, want %q", got, want)
		}
		if !slices.Contains(l.logs.messages(slog.LevelInfo), "INFO vrrp receive recovered") {
			t.Fatalf("recovery not logged: %q", l.logs.messages(slog.LevelInfo))
		}
		for range maxRecvFailures {
			l.conn.errs <- errConn
		}
		l.vipCall("release")
		if err := l.runResult(); !errors.Is(err, errConn) {
			t.Fatalf("Run = %v, want the receive error", err)
		}
		if l.sp.Status().VIPHeld {
			t.Fatalf("VIP still held")
		}
	})
	t.Run("closed", func(t *testing.T) {
		l := startLoop(t, v3Config(150))
		l.takeOver()
		_ = l.conn.Close()
		l.vipCall("release")
		if err := l.runResult(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Run = %v, want net.ErrClosed", err)
		}
	})
}

func TestHandoverTimeoutDefault(t *testing.T) {
	for _, tt := range []struct {
		interval, set, want time.Duration
	}{
		{100 * time.Millisecond, 0, 300 * time.Millisecond},
		{time.Second, 0, 800 * time.Millisecond},
		{time.Second, 2 * time.Second, 2 * time.Second},
	} {
		s := NewSpeaker(SpeakerConfig{Machine: MachineConfig{Priority: 100, Interval: tt.interval, HandoverTimeout: tt.set}}, nil, nil)
		if s.cfg.Machine.HandoverTimeout != tt.want {
			t.Errorf("interval %v, set %v: timeout %v, want %v", tt.interval, tt.set, s.cfg.Machine.HandoverTimeout, tt.want)
		}
	}
}

func TestAdjustPriorityArithmetic(t *testing.T) {
	s := NewSpeaker(SpeakerConfig{Machine: MachineConfig{Priority: 100, Interval: time.Second}}, nil, nil)
	steps := []struct {
		source string
		delta  int
		want   uint8
	}{
		{"backends", -30, 70},
		{"disk", -30, 40},
		{"backends", 0, 70},
		{"backends", 500, 254}, // clamped
		{"backends", -1000, 1}, // clamped: 0 would mean "stopping"
		{"backends", 0, 70},
		{"disk", 0, 100},
	}
	for _, st := range steps {
		s.AdjustPriority(st.source, st.delta)
		if got := s.Status(); got.EffectivePriority != st.want || got.BasePriority != 100 {
			t.Fatalf("after %s %+d: priorities %d/%d, want %d/100", st.source, st.delta, got.EffectivePriority, got.BasePriority, st.want)
		}
	}
}

// recHandler keeps every log record for assertions.
type recHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *recHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *recHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recHandler) WithGroup(string) slog.Handler      { return h }

// messages returns the messages logged at level or above.
func (h *recHandler) messages(level slog.Level) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.recs {
		if r.Level >= level {
			out = append(out, r.Level.String()+" "+r.Message)
		}
	}
	return out
}

// slowClock is a fake clock that moves on by step whenever it is read, as
// a loop that falls behind sees it.
type slowClock struct {
	*testingclock.FakeClock
	step time.Duration
}

func (c slowClock) Now() time.Time {
	c.Step(c.step)
	return c.FakeClock.Now()
}

// A loop that reads the time only after the handover deadline has passed
// still ends Run (it used to end the handover and then wait for an input
// that no longer came).
func TestSpeakerLoopLateHandover(t *testing.T) {
	clk := slowClock{testingclock.NewFakeClock(loopT0), 900 * time.Millisecond} // the default handover is 800ms
	conn, vip := newFakeConn(), &fakeVIP{calls: make(chan string, 100)}
	mc := MachineConfig{VRID: 7, Priority: 150, Interval: time.Second, Version: Version2, Primary: loopAddr}
	sp := NewSpeaker(SpeakerConfig{Machine: mc, Clock: clk, Logger: slog.New(&recHandler{})}, conn, vip)
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() { result <- sp.Run(ctx) }()
	l := &loop{t: t, conn: conn, vip: vip, sp: sp, result: result}
	t.Cleanup(func() { cancel(); _ = conn.Close() })
	l.waitState(StateBackup)
	clk.FakeClock.Step(10 * time.Second)
	l.vipCall("acquire")
	l.waitState(StateActive)
	cancel()
	l.vipCall("release")
	if err := l.runResult(); err != nil {
		t.Fatalf("Run = %v", err)
	}
}
