package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

// The speaker tests run several Speakers on a fake LAN (lab) under one fake
// clock. The lab is a discrete-event simulator: it waits until every
// speaker has reacted to every input (the speakers' hook reports when their
// loop blocks, and with how many packets and wake-ups taken), then moves
// the clock to the earliest timer of any speaker. Times asserted below are
// exact fake times, never wall time.

var labVIP = netip.MustParseAddr("198.18.0.100")

type lab struct {
	t   *testing.T
	clk *testingclock.FakeClock
	t0  time.Time

	activity atomic.Uint64 // bumped by every hook call and every delivery

	mu     sync.Mutex
	nodes  []*lnode
	events []levent
	cut    map[[2]int]bool // partitioned pairs, lower index first
}

// levent is one thing that happened on the lab, at a fake time since t0.
type levent struct {
	at   time.Duration
	node string
	what string // "advert", "acquire", "acquire-failed", "release", "release-failed"
	prio uint8
}

func (e levent) String() string {
	if e.what == "advert" {
		return fmt.Sprintf("%v %s advert %d", e.at, e.node, e.prio)
	}
	return fmt.Sprintf("%v %s %s", e.at, e.node, e.what)
}

type lnode struct {
	lab  *lab
	idx  int
	name string
	addr netip.Addr
	sp   *Speaker
	conn *lconn
	vip  *lvip
	logs *recHandler

	cancel context.CancelFunc
	result chan struct{} // closed when Run returned
	err    error         // Run's result

	hmu       sync.Mutex // guards the fields below
	st        loopState
	seen      bool // the loop blocked at least once
	pokes     uint64
	cancelled bool
	dead      bool // crashed: nothing it sends arrives, nothing reaches it
}

func newLab(t *testing.T) *lab {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	l := &lab{t: t, clk: testingclock.NewFakeClock(t0), t0: t0, cut: map[[2]int]bool{}}
	t.Cleanup(l.shutdown)
	return l
}

func (l *lab) now() time.Duration { return l.clk.Now().Sub(l.t0) }

func (l *lab) record(node, what string, prio uint8) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, levent{at: l.now(), node: node, what: what, prio: prio})
}

func (l *lab) eventsOf(node, what string) []levent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []levent
	for _, e := range l.events {
		if (node == "" || e.node == node) && e.what == what {
			out = append(out, e)
		}
	}
	return out
}

func (l *lab) dump() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, e := range l.events {
		fmt.Fprintln(&b, e)
	}
	return b.String()
}

// v3 at 100ms unless mutate says otherwise.
func (l *lab) add(name string, last byte, prio uint8, mutate func(*SpeakerConfig)) *lnode {
	addr := netip.AddrFrom4([4]byte{198, 18, 0, last})
	n := &lnode{lab: l, name: name, addr: addr, logs: &recHandler{}}
	n.conn = &lconn{n: n}
	n.conn.cond = sync.NewCond(&n.conn.mu)
	n.vip = &lvip{n: n}
	cfg := SpeakerConfig{
		Machine: MachineConfig{VRID: 7, Priority: prio, Interval: 100 * time.Millisecond, Version: Version3, Primary: addr},
		Clock:   l.clk,
		Logger:  slog.New(n.logs),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	n.sp = NewSpeaker(cfg, n.conn, n.vip)
	n.sp.hook = func(st loopState) {
		n.hmu.Lock()
		n.st, n.seen = st, true
		n.hmu.Unlock()
		l.activity.Add(1)
	}
	l.mu.Lock()
	n.idx = len(l.nodes)
	l.nodes = append(l.nodes, n)
	l.mu.Unlock()
	return n
}

func (n *lnode) start() {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.result = make(chan struct{})
	go func() {
		n.err = n.sp.Run(ctx)
		close(n.result)
		n.lab.activity.Add(1)
	}()
}

// finished reports that Run returned.
func (n *lnode) finished() bool {
	select {
	case <-n.result:
		return true
	default:
		return false
	}
}

// wait returns Run's result; the lab must have let it finish.
func (n *lnode) wait() error {
	n.lab.t.Helper()
	select {
	case <-n.result:
		return n.err
	default:
		n.lab.t.Fatalf("%s: Run has not returned at %v", n.name, n.lab.now())
		return nil
	}
}

// shutdown stops every speaker still running, moving fake time on so that
// handovers time out, and checks that each Run returns.
func (l *lab) shutdown() {
	l.mu.Lock()
	nodes := slices.Clone(l.nodes)
	l.mu.Unlock()
	for _, n := range nodes {
		if n.result == nil {
			continue
		}
		n.hmu.Lock()
		n.cancelled = true
		n.hmu.Unlock()
		n.cancel()
	}
	for range 10 {
		l.settle()
		all := true
		for _, n := range nodes {
			if n.result == nil {
				continue
			}
			select {
			case <-n.result:
			default:
				all = false
			}
		}
		if all {
			return
		}
		l.clk.Step(time.Second)
	}
	var b strings.Builder
	for _, n := range nodes {
		n.hmu.Lock()
		fmt.Fprintf(&b, "%s: %+v seen=%v pokes=%d cancelled=%v\n", n.name, n.st, n.seen, n.pokes, n.cancelled)
		n.hmu.Unlock()
	}
	l.t.Errorf("speakers still running after shutdown at %v:\n%s%s", l.now(), b.String(), l.dump())
}

// stop cancels Run (graceful shutdown); the lab treats the node as busy
// until its loop has seen the cancellation.
func (n *lnode) stop() {
	n.hmu.Lock()
	n.cancelled = true
	n.hmu.Unlock()
	n.cancel()
	n.lab.settle()
}

// kill crashes the node: from now on nothing it sends arrives anywhere and
// nothing reaches it. Its Run keeps going in isolation until stopped.
func (n *lnode) kill() {
	n.hmu.Lock()
	n.dead = true
	n.hmu.Unlock()
}

func (n *lnode) adjust(source string, delta int) {
	n.hmu.Lock()
	n.pokes++
	n.hmu.Unlock()
	n.sp.AdjustPriority(source, delta)
	n.lab.settle()
}

func (n *lnode) setLink(up bool) {
	n.hmu.Lock()
	n.pokes++
	n.hmu.Unlock()
	n.sp.SetLink(up)
	n.lab.settle()
}

func (n *lnode) isDead() bool {
	n.hmu.Lock()
	defer n.hmu.Unlock()
	return n.dead
}

// idle reports that the node has reacted to every input it was given and
// waits for time to pass.
func (n *lnode) idle(now time.Time) bool {
	if n.finished() {
		return true
	}
	n.hmu.Lock()
	st, seen, pokes, cancelled := n.st, n.seen, n.pokes, n.cancelled
	n.hmu.Unlock()
	if !seen || !st.idle || st.wakes != pokes || (cancelled && !st.stopping) {
		return false
	}
	if !st.deadline.IsZero() && !st.deadline.After(now) {
		return false // its timer fired or is about to
	}
	n.conn.mu.Lock()
	delivered := n.conn.delivered
	n.conn.mu.Unlock()
	return st.packets == delivered
}

func (l *lab) allIdle() bool {
	before := l.activity.Load()
	now := l.clk.Now()
	l.mu.Lock()
	nodes := slices.Clone(l.nodes)
	l.mu.Unlock()
	for _, n := range nodes {
		if n.result != nil && !n.idle(now) {
			return false
		}
	}
	// Nothing moved while we looked: the snapshot is consistent.
	return l.activity.Load() == before
}

// settle waits (bounded) until every running speaker is idle.
func (l *lab) settle() {
	l.t.Helper()
	limit := time.Now().Add(20 * time.Second)
	for i := 0; !l.allIdle(); i++ {
		if time.Now().After(limit) {
			l.t.Fatalf("speakers did not settle at %v; events:\n%s", l.now(), l.dump())
		}
		runtime.Gosched()
		if i > 100 {
			time.Sleep(50 * time.Microsecond) // be kind to the 2 shared cores
		}
	}
}

func (l *lab) nextDeadline() time.Time {
	l.mu.Lock()
	nodes := slices.Clone(l.nodes)
	l.mu.Unlock()
	var next time.Time
	for _, n := range nodes {
		n.hmu.Lock()
		dl := n.st.deadline
		n.hmu.Unlock()
		if n.result == nil || n.finished() || dl.IsZero() {
			continue
		}
		if next.IsZero() || dl.Before(next) {
			next = dl
		}
	}
	return next
}

// runUntil advances fake time to t0+end, stopping at every timer on the way.
func (l *lab) runUntil(end time.Duration) {
	l.t.Helper()
	until := l.t0.Add(end)
	for {
		l.settle()
		next := l.nextDeadline()
		if next.IsZero() || next.After(until) {
			break
		}
		l.clk.SetTime(next)
	}
	if l.clk.Now().Before(until) {
		l.clk.SetTime(until)
	}
	l.settle()
}

func (l *lab) partition(a, b *lnode, cut bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut[[2]int{min(a.idx, b.idx), max(a.idx, b.idx)}] = cut
}

// deliver carries an advert from one node to every node it can reach.
func (l *lab) deliver(from *lnode, p *Packet) {
	if from.isDead() {
		return
	}
	l.record(from.name, "advert", p.Priority)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, to := range l.nodes {
		if to == from || to.isDead() || l.cut[[2]int{min(from.idx, to.idx), max(from.idx, to.idx)}] {
			continue
		}
		q := *p
		q.Addrs = slices.Clone(p.Addrs)
		to.conn.enqueue(Received{Packet: &q, Src: from.addr})
	}
}

// lconn is one node's attachment to the lab.
type lconn struct {
	n         *lnode
	mu        sync.Mutex
	cond      *sync.Cond
	queue     []Received
	delivered uint64
	closed    bool
	sent      []Packet
	failSend  bool // Send fails (and sends nothing)
	recvErrs  int  // Receive fails this many more times
}

var errConnTest = errors.New("injected conn failure")

func (c *lconn) Send(p *Packet) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	if c.failSend {
		c.mu.Unlock()
		return errConnTest
	}
	c.sent = append(c.sent, *p)
	c.mu.Unlock()
	c.n.lab.deliver(c.n, p)
	return nil
}

func (c *lconn) enqueue(r Received) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.queue = append(c.queue, r)
	c.delivered++
	c.n.lab.activity.Add(1)
	c.cond.Signal()
}

func (c *lconn) Receive() (Received, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) == 0 && !c.closed && c.recvErrs == 0 {
		c.cond.Wait()
	}
	switch {
	case c.closed:
		return Received{}, net.ErrClosed
	case c.recvErrs > 0:
		c.recvErrs--
		return Received{}, errConnTest
	}
	r := c.queue[0]
	c.queue = c.queue[1:]
	return r, nil
}

func (c *lconn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.cond.Broadcast()
	return nil
}

// lvip records Acquire and Release on the lab's event list and can be told
// to fail a number of times.
type lvip struct {
	n                          *lnode
	mu                         sync.Mutex
	held                       bool
	failAcquire, failRelease   int
	acquireCalls, releaseCalls int
}

var errVIPTest = errors.New("injected VIP failure")

func (v *lvip) Acquire() error {
	v.mu.Lock()
	v.acquireCalls++
	fail := v.failAcquire > 0
	if fail {
		v.failAcquire--
	} else {
		v.held = true
	}
	v.mu.Unlock()
	if fail {
		v.n.lab.record(v.n.name, "acquire-failed", 0)
		return errVIPTest
	}
	v.n.lab.record(v.n.name, "acquire", 0)
	return nil
}

func (v *lvip) Release() error {
	v.mu.Lock()
	v.releaseCalls++
	fail := v.failRelease > 0
	if fail {
		v.failRelease--
	} else {
		v.held = false
	}
	v.mu.Unlock()
	if fail {
		v.n.lab.record(v.n.name, "release-failed", 0)
		return errVIPTest
	}
	v.n.lab.record(v.n.name, "release", 0)
	return nil
}

func (v *lvip) isHeld() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.held
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

// Fake times used below: v3, 100ms adverts.
const (
	down150 = 341406250 * time.Nanosecond // 300ms + 106/256*100ms
	down120 = 353125 * time.Microsecond   // 300ms + 136/256*100ms
	skew120 = 53125 * time.Microsecond
)

func (l *lab) requireOneActive(want *lnode) {
	l.t.Helper()
	l.mu.Lock()
	nodes := slices.Clone(l.nodes)
	l.mu.Unlock()
	var active, holders []string
	for _, n := range nodes {
		if n.isDead() {
			continue
		}
		if n.sp.Status().State == StateActive {
			active = append(active, n.name)
		}
		if n.vip.isHeld() {
			holders = append(holders, n.name)
		}
	}
	if len(active) != 1 || active[0] != want.name || len(holders) != 1 || holders[0] != want.name {
		l.t.Fatalf("at %v: active %v, VIP holders %v; want exactly %s\nevents:\n%s", l.now(), active, holders, want.name, l.dump())
	}
}

func threeNodes(t *testing.T, mutate func(*SpeakerConfig)) (*lab, *lnode, *lnode, *lnode) {
	l := newLab(t)
	a := l.add("a", 11, 150, mutate)
	b := l.add("b", 12, 120, mutate)
	c := l.add("c", 13, 100, mutate)
	a.start()
	b.start()
	c.start()
	return l, a, b, c
}

func TestSpeakerElectsExactlyOne(t *testing.T) {
	l, a, b, c := threeNodes(t, nil)
	l.runUntil(2 * time.Second)
	l.requireOneActive(a)
	acq := l.eventsOf("", "acquire")
	if len(acq) != 1 || acq[0].node != "a" || acq[0].at != down150 {
		t.Fatalf("acquires %v, want only a at %v", acq, down150)
	}
	sent := l.eventsOf("a", "advert")
	// At takeover, then every 100ms up to 2s.
	if len(sent) != 17 || sent[0].at != down150 || sent[16].at != down150+1600*time.Millisecond {
		t.Fatalf("a's adverts %v", sent)
	}
	for _, n := range []*lnode{a, b, c} {
		if !n.sp.Ready() {
			t.Errorf("%s not ready", n.name)
		}
	}
	for _, n := range []*lnode{b, c} {
		st := n.sp.Status()
		if st.State != StateBackup || st.ActiveRouter != a.addr || st.AdvertsReceived != 17 || st.AdvertsSent != 0 {
			t.Errorf("%s status %+v", n.name, st)
		}
	}
	st := a.sp.Status()
	if st.AdvertsSent != 17 || st.Transitions != 2 || !st.VIPHeld || st.Since != l.t0.Add(down150) ||
		st.LastReason != "master down timer expired" || st.ActiveRouter != a.addr {
		t.Errorf("a status %+v", st)
	}
	// Adverts are not logged at Info: only the two transitions are.
	if msgs := a.logs.messages(slog.LevelInfo); len(msgs) != 2 {
		t.Errorf("a logged at Info and above: %q", msgs)
	}
}

func TestSpeakerFailoverAfterCrash(t *testing.T) {
	tests := []struct {
		name         string
		mutate       func(*SpeakerConfig)
		run          time.Duration
		lastAdvert   time.Duration // a's last advert before the crash
		masterDownB  time.Duration
		handoverWait time.Duration
	}{
		{"v3 100ms", nil, time.Second, down150 + 600*time.Millisecond, down120, 300 * time.Millisecond},
		{"v2 1s", func(c *SpeakerConfig) {
			c.Machine.Version, c.Machine.Interval = Version2, time.Second
		}, 6 * time.Second, 3414062500*time.Nanosecond + 2*time.Second, 3531250 * time.Microsecond, 800 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, a, b, c := threeNodes(t, tt.mutate)
			l.runUntil(tt.run)
			l.requireOneActive(a)
			if got := l.eventsOf("a", "advert"); got[len(got)-1].at != tt.lastAdvert {
				t.Fatalf("a's last advert at %v, want %v", got[len(got)-1].at, tt.lastAdvert)
			}
			a.kill()
			l.runUntil(tt.run + 5*time.Second)
			acq := l.eventsOf("b", "acquire")
			if want := tt.lastAdvert + tt.masterDownB; len(acq) != 1 || acq[0].at != want {
				t.Fatalf("b acquired %v, want once at %v\n%s", acq, want, l.dump())
			}
			l.requireOneActive(b)
			if st := c.sp.Status(); st.State != StateBackup || st.ActiveRouter != b.addr {
				t.Errorf("c status %+v", st)
			}
			if reason := b.sp.Status().LastReason; reason != "master down timer expired" {
				t.Errorf("b's reason %q", reason)
			}
			// The isolated a still believes it is active; stopped, it
			// waits for a successor it cannot hear, then lets go.
			stopAt := l.now()
			a.stop()
			l.runUntil(stopAt + time.Second)
			if err := a.wait(); err != nil {
				t.Fatalf("a: Run = %v", err)
			}
			rel := l.eventsOf("a", "release")
			if len(rel) != 1 || rel[0].at != stopAt+tt.handoverWait {
				t.Fatalf("a released %v, want at %v", rel, stopAt+tt.handoverWait)
			}
		})
	}
}

// alwaysHeld checks, from the first acquire on, that at every event some
// node holds the VIP.
func (l *lab) alwaysHeld() {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	held := map[string]bool{}
	started := false
	for _, e := range l.events {
		switch e.what {
		case "acquire":
			held[e.node], started = true, true
		case "release":
			delete(held, e.node)
		}
		if started && len(held) == 0 {
			l.t.Fatalf("nobody holds the VIP after %v", e)
		}
	}
}

func TestSpeakerGracefulHandover(t *testing.T) {
	l, a, b, c := threeNodes(t, nil)
	l.runUntil(time.Second)
	l.requireOneActive(a)
	a.stop()
	l.runUntil(2 * time.Second)
	if err := a.wait(); err != nil {
		t.Fatalf("a: Run = %v", err)
	}
	l.requireOneActive(b)
	// a said goodbye at 1s, b took over one Skew_Time later, and a let go
	// only after b's advert: the VIP was never without an owner.
	bye := l.eventsOf("a", "advert")
	if last := bye[len(bye)-1]; last.prio != 0 || last.at != time.Second {
		t.Fatalf("a's last advert %v, want priority 0 at 1s", last)
	}
	take := time.Second + skew120
	if acq := l.eventsOf("b", "acquire"); len(acq) != 1 || acq[0].at != take {
		t.Fatalf("b acquired %v, want at %v", acq, take)
	}
	if rel := l.eventsOf("a", "release"); len(rel) != 1 || rel[0].at != take {
		t.Fatalf("a released %v, want at %v", rel, take)
	}
	l.mu.Lock()
	var order []string
	for _, e := range l.events {
		if e.at == take {
			order = append(order, e.String())
		}
	}
	l.mu.Unlock()
	want := []string{
		fmt.Sprintf("%v b acquire", take),
		fmt.Sprintf("%v b advert 120", take),
		fmt.Sprintf("%v a release", take),
	}
	if !slices.Equal(order, want) {
		t.Fatalf("events at takeover %q, want %q", order, want)
	}
	l.alwaysHeld()
	if len(l.eventsOf("c", "acquire")) != 0 {
		t.Errorf("c acquired the VIP")
	}
	if st := a.sp.Status(); st.State != StateInit || st.LastReason != "shutdown" || st.VIPHeld || a.sp.Ready() {
		t.Errorf("a status %+v", st)
	}
	if st := b.sp.Status(); st.LastReason != "priority 0 advert from 198.18.0.11" {
		t.Errorf("b reason %q", st.LastReason)
	}
	if st := c.sp.Status(); st.State != StateBackup || st.ActiveRouter != b.addr {
		t.Errorf("c status %+v", st)
	}
}

func TestSpeakerHandoverTimeout(t *testing.T) {
	l := newLab(t)
	a := l.add("a", 11, 150, nil)
	a.start()
	l.runUntil(time.Second)
	a.stop()
	l.runUntil(2 * time.Second)
	if err := a.wait(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	// Nobody answered: released after 3 intervals.
	if rel := l.eventsOf("a", "release"); len(rel) != 1 || rel[0].at != 1300*time.Millisecond {
		t.Fatalf("released %v, want at 1.3s", rel)
	}
	if msgs := a.logs.messages(slog.LevelWarn); len(msgs) != 1 || !strings.Contains(msgs[0], "handover timed out") {
		t.Errorf("warnings %q", msgs)
	}
}

func TestSpeakerStopWhileBackup(t *testing.T) {
	l, a, b, _ := threeNodes(t, nil)
	l.runUntil(time.Second)
	stopAt := l.now()
	b.stop()
	if err := b.wait(); err != nil {
		t.Fatalf("b: Run = %v", err)
	}
	if l.now() != stopAt || len(l.eventsOf("b", "advert")) != 0 || len(l.eventsOf("b", "release")) != 0 {
		t.Fatalf("a backup's stop must be silent and immediate\n%s", l.dump())
	}
	l.runUntil(2 * time.Second)
	l.requireOneActive(a)
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

func TestSpeakerPartitionHeals(t *testing.T) {
	l, a, b, c := threeNodes(t, nil)
	l.runUntil(time.Second)
	l.partition(a, b, true)
	l.partition(a, c, true)
	l.runUntil(2 * time.Second)
	// Split brain while cut: both sides have an active router.
	if a.sp.Status().State != StateActive || b.sp.Status().State != StateActive || !a.vip.isHeld() || !b.vip.isHeld() {
		t.Fatalf("during the partition want a and b active\n%s", l.dump())
	}
	heal := l.now()
	l.partition(a, b, false)
	l.partition(a, c, false)
	l.runUntil(heal + 3*100*time.Millisecond)
	l.requireOneActive(a)
	rel := l.eventsOf("b", "release")
	if len(rel) != 1 || rel[0].at > heal+300*time.Millisecond {
		t.Fatalf("b released %v, want once within 3 intervals of %v", rel, heal)
	}
	if len(l.eventsOf("a", "release")) != 0 {
		t.Errorf("a released the VIP")
	}
	// b's announcements drew clients to it during the split: a, the
	// winner, announces again (once) when it hears b after the heal.
	var after []levent
	for _, e := range l.eventsOf("a", "acquire") {
		if e.at >= heal {
			after = append(after, e)
		}
	}
	if len(after) != 1 || after[0].at > heal+300*time.Millisecond {
		t.Errorf("a re-announced %v after the heal at %v, want once within 3 intervals", after, heal)
	}
	if r := b.sp.Status().LastReason; r != "higher priority advert from 198.18.0.11 (prio 150)" {
		t.Errorf("b reason %q", r)
	}
	l.runUntil(heal + 2*time.Second)
	l.requireOneActive(a)
}

func TestSpeakerAdjustPriority(t *testing.T) {
	t.Run("preempt moves the VIP", func(t *testing.T) {
		l, a, b, c := threeNodes(t, func(c *SpeakerConfig) { c.Machine.Preempt = true })
		l.runUntil(time.Second)
		l.requireOneActive(a)
		a.adjust("backends", -100)
		if st := a.sp.Status(); st.BasePriority != 150 || st.EffectivePriority != 50 {
			t.Fatalf("a priorities %+v", st)
		}
		// a announces 50 at once; b ignores it and its down timer, armed
		// by a's last advert at 150, runs out.
		if last := l.eventsOf("a", "advert"); last[len(last)-1].prio != 50 || last[len(last)-1].at != time.Second {
			t.Fatalf("a's adverts %v", last)
		}
		l.runUntil(2 * time.Second)
		l.requireOneActive(b)
		takeover := down150 + 600*time.Millisecond + down120
		// b acquires, then re-announces once when a steps down with a
		// priority-0 advert (it cannot tell a preemption from a split brain).
		if acq := l.eventsOf("b", "acquire"); len(acq) != 2 || acq[0].at != takeover || acq[1].at != takeover {
			t.Fatalf("b acquired %v, want the takeover and one re-announce at %v", acq, takeover)
		}
		if rel := l.eventsOf("a", "release"); len(rel) != 1 || rel[0].at != takeover {
			t.Fatalf("a released %v, want at %v", rel, takeover)
		}
		if r := b.sp.Status().LastReason; r != "preempting lower priority 198.18.0.11 (prio 50 < 120)" {
			t.Errorf("b reason %q", r)
		}
		if st := c.sp.Status(); st.State != StateBackup || st.ActiveRouter != b.addr {
			t.Errorf("c status %+v", st)
		}
		// Cleared: a is the strongest again and preempts b.
		a.adjust("backends", 0)
		l.runUntil(3 * time.Second)
		l.requireOneActive(a)
		if len(l.eventsOf("b", "release")) != 1 {
			t.Errorf("b releases %v", l.eventsOf("b", "release"))
		}
	})
	t.Run("no preempt keeps the VIP", func(t *testing.T) {
		l, a, b, _ := threeNodes(t, nil)
		l.runUntil(time.Second)
		a.adjust("backends", -100)
		l.runUntil(4 * time.Second)
		l.requireOneActive(a)
		if len(l.eventsOf("", "release")) != 0 || len(l.eventsOf("", "acquire")) != 1 {
			t.Fatalf("the VIP moved\n%s", l.dump())
		}
		if st := b.sp.Status(); st.ActiveRouter != a.addr {
			t.Errorf("b status %+v", st)
		}
	})
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

func TestSpeakerLink(t *testing.T) {
	l := newLab(t)
	a := l.add("a", 11, 150, nil)
	b := l.add("b", 12, 120, nil)
	a.start()
	b.start()
	l.runUntil(time.Second)
	l.requireOneActive(a)
	a.setLink(false)
	// Dropped at once, no goodbye advert: b waits out its down timer.
	if rel := l.eventsOf("a", "release"); len(rel) != 1 || rel[0].at != time.Second {
		t.Fatalf("a released %v", rel)
	}
	if a.sp.Ready() || a.sp.Status().LastReason != "link down" {
		t.Fatalf("a status %+v", a.sp.Status())
	}
	l.runUntil(2 * time.Second)
	for _, e := range l.eventsOf("a", "advert") {
		if e.prio == 0 {
			t.Fatalf("a sent a priority 0 advert on link down")
		}
	}
	if acq := l.eventsOf("b", "acquire"); len(acq) != 1 || acq[0].at != down150+600*time.Millisecond+down120 {
		t.Fatalf("b acquired %v", acq)
	}
	a.setLink(true)
	if !a.sp.Ready() || a.sp.Status().State != StateBackup || a.sp.Status().LastReason != "link up" {
		t.Fatalf("a status %+v", a.sp.Status())
	}
	l.runUntil(3 * time.Second)
	l.requireOneActive(b) // no preemption by default
}

func TestSpeakerRetriesVIP(t *testing.T) {
	l := newLab(t)
	a := l.add("a", 11, 150, nil)
	a.vip.failAcquire = 2
	a.start()
	l.runUntil(time.Second)
	var got []string
	for _, e := range l.eventsOf("a", "acquire-failed") {
		got = append(got, e.String())
	}
	for _, e := range l.eventsOf("a", "acquire") {
		got = append(got, e.String())
	}
	want := []string{
		fmt.Sprintf("%v a acquire-failed", down150),
		fmt.Sprintf("%v a acquire-failed", down150+100*time.Millisecond),
		fmt.Sprintf("%v a acquire", down150+200*time.Millisecond),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("acquire attempts %q, want %q", got, want)
	}
	if !a.sp.Status().VIPHeld {
		t.Fatalf("VIP not held")
	}
	// One warning per failure streak, not per attempt.
	if w := a.logs.messages(slog.LevelWarn); len(w) != 1 {
		t.Errorf("warnings %q", w)
	}

	// A failed release is retried by itself one interval later, even in
	// Init where no adverts tick.
	a.vip.mu.Lock()
	a.vip.failRelease = 1
	a.vip.mu.Unlock()
	a.setLink(false)
	l.runUntil(2 * time.Second)
	if rf, r := l.eventsOf("a", "release-failed"), l.eventsOf("a", "release"); len(rf) != 1 || rf[0].at != time.Second ||
		len(r) != 1 || r[0].at != 1100*time.Millisecond {
		t.Fatalf("release attempts %v then %v", rf, r)
	}
	if a.sp.Status().VIPHeld {
		t.Errorf("VIPHeld after release")
	}
}

func TestSpeakerExitReleaseFailure(t *testing.T) {
	l := newLab(t)
	a := l.add("a", 11, 150, nil)
	a.start()
	l.runUntil(time.Second)
	a.vip.mu.Lock()
	a.vip.failRelease = 1
	a.vip.mu.Unlock()
	a.stop()
	l.runUntil(2 * time.Second)
	if err := a.wait(); !errors.Is(err, errVIPTest) {
		t.Fatalf("Run = %v, want the release error", err)
	}
}

func TestSpeakerConnClosed(t *testing.T) {
	l := newLab(t)
	a := l.add("a", 11, 150, nil)
	a.start()
	l.runUntil(time.Second)
	_ = a.conn.Close()
	// The lab does not see the reader's error in flight: wait for Run.
	select {
	case <-a.result:
	case <-time.After(20 * time.Second):
		t.Fatalf("Run did not return after the Conn closed")
	}
	if err := a.wait(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Run = %v, want net.ErrClosed", err)
	}
	if a.vip.isHeld() || l.now() != time.Second {
		t.Fatalf("VIP still held or release delayed\n%s", l.dump())
	}
}

func TestSpeakerAdvertContent(t *testing.T) {
	l := newLab(t)
	a := l.add("a", 11, 150, func(c *SpeakerConfig) {
		c.Machine.Version, c.Machine.Interval = Version2, time.Second
	})
	a.start()
	l.runUntil(4 * time.Second)
	a.conn.mu.Lock()
	sent := slices.Clone(a.conn.sent)
	a.conn.mu.Unlock()
	if len(sent) == 0 {
		t.Fatalf("nothing sent")
	}
	// The addresses and the authentication are the Conn's (TestSend).
	want := Packet{Version: Version2, VRID: 7, Priority: 150, Interval: time.Second}
	if p := sent[0]; p.Version != want.Version || p.VRID != want.VRID || p.Priority != want.Priority || p.Interval != want.Interval ||
		p.AuthType != AuthNone || p.Password != "" || len(p.Addrs) != 0 {
		t.Fatalf("sent %+v, want %+v", p, want)
	}
}

// Adverts for another VRID or version reaching the speaker (a Conn that
// does not filter) must not move the VIP.
func TestSpeakerIgnoresForeignAdverts(t *testing.T) {
	l := newLab(t)
	a := l.add("a", 11, 100, nil)
	a.start()
	l.runUntil(time.Second)
	l.requireOneActive(a)
	for _, p := range []*Packet{
		{Version: Version3, VRID: 8, Priority: 200, Interval: 100 * time.Millisecond, Addrs: []netip.Addr{labVIP}},
		{Version: Version2, VRID: 7, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{labVIP}},
		nil,
	} {
		a.conn.enqueue(Received{Packet: p, Src: netip.MustParseAddr("198.18.0.99")})
	}
	l.runUntil(2 * time.Second)
	l.requireOneActive(a)
	if n := a.sp.Status().AdvertsReceived; n != 0 {
		t.Errorf("AdvertsReceived = %d", n)
	}
}

func TestSpeakerRunTwice(t *testing.T) {
	l := newLab(t)
	a := l.add("a", 11, 100, nil)
	a.start()
	l.settle()
	if err := a.sp.Run(context.Background()); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Run = %v", err)
	}
}

func TestSpeakerConnErrors(t *testing.T) {
	l := newLab(t)
	a := l.add("a", 11, 150, nil)
	b := l.add("b", 12, 100, nil)
	// A few failed reads in a row are survived.
	a.conn.recvErrs = maxRecvFailures - 1
	a.start()
	b.start()
	// The reader is not tracked by the lab: wait until it has seen them all
	// so the log order below is fixed.
	for limit := time.Now().Add(20 * time.Second); ; runtime.Gosched() {
		a.conn.mu.Lock()
		left := a.conn.recvErrs
		a.conn.mu.Unlock()
		if left == 0 {
			break
		}
		if time.Now().After(limit) {
			t.Fatalf("reader stuck with %d errors left", left)
		}
	}
	l.runUntil(time.Second)
	l.requireOneActive(a)
	a.conn.mu.Lock()
	a.conn.failSend = true
	a.conn.mu.Unlock()
	// b hears nothing from a any more and takes over; a hears b but,
	// stronger, stays: a split brain until a's adverts get out again.
	l.runUntil(2 * time.Second)
	if a.sp.Status().State != StateActive || b.sp.Status().State != StateActive {
		t.Fatalf("want both active while a cannot send\n%s", l.dump())
	}
	a.conn.mu.Lock()
	a.conn.failSend = false
	a.conn.mu.Unlock()
	l.runUntil(3 * time.Second)
	l.requireOneActive(a)
	want := []string{
		"WARN vrrp receive failed",
		"WARN vrrp advert send failed",
		"INFO vrrp receive recovered", // at b's first advert
		"INFO vrrp advert send recovered",
	}
	var got []string
	for _, m := range a.logs.messages(slog.LevelInfo) {
		if strings.Contains(m, "receive") || strings.Contains(m, "send") {
			got = append(got, m)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("a logged %q, want %q", got, want)
	}
	if st := b.sp.Status(); st.State != StateBackup || st.ActiveRouter != a.addr {
		t.Fatalf("b status %+v", st)
	}
}

// A Conn that keeps failing ends Run, and the VIP goes with it: a router
// that cannot hear the others must not hold it.
func TestSpeakerGivesUpOnBrokenConn(t *testing.T) {
	l := newLab(t)
	a := l.add("a", 11, 150, nil)
	a.start()
	l.runUntil(time.Second)
	l.requireOneActive(a)
	a.conn.mu.Lock()
	a.conn.recvErrs = maxRecvFailures
	a.conn.cond.Broadcast() // wake the blocked Receive
	a.conn.mu.Unlock()
	select {
	case <-a.result:
	case <-time.After(20 * time.Second):
		t.Fatalf("Run did not return")
	}
	if err := a.wait(); !errors.Is(err, errConnTest) {
		t.Fatalf("Run = %v, want the receive error", err)
	}
	if a.vip.isHeld() {
		t.Fatalf("VIP still held")
	}
}

// TestSpeakerReannounceBudget: when another router was active too, the
// holder announces the VIP on its advert and again on its priority-0 advert
// (the loser's own announcement may have landed between the two), then at
// most once per second whatever a peer keeps sending.
func TestSpeakerReannounceBudget(t *testing.T) {
	l := newLab(t)
	w := l.add("w", 12, 100, nil)
	w.start()
	l.runUntil(time.Second)
	l.requireOneActive(w)
	other := netip.AddrFrom4([4]byte{198, 18, 0, 11})
	inject := func(at time.Duration, prio uint8) {
		l.runUntil(at)
		w.conn.enqueue(Received{Src: other, Packet: &Packet{Version: Version3, VRID: 7, Priority: prio,
			Interval: 100 * time.Millisecond, Addrs: []netip.Addr{labVIP}}})
		l.settle()
	}
	inject(time.Second, 100)                   // equal priority, lower address: we stay, announce
	inject(time.Second+10*time.Millisecond, 0) // it let go: announce again
	inject(time.Second+20*time.Millisecond, 99)
	inject(time.Second+30*time.Millisecond, 0)
	inject(2*time.Second+20*time.Millisecond, 99) // a token is back
	var at []time.Duration
	for _, e := range l.eventsOf("w", "acquire") {
		at = append(at, e.at)
	}
	want := []time.Duration{down100, time.Second, time.Second + 10*time.Millisecond, 2*time.Second + 20*time.Millisecond}
	if !slices.Equal(at, want) {
		t.Fatalf("w acquired at %v, want %v\n%s", at, want, l.dump())
	}
	if st := w.sp.Status(); st.State != StateActive {
		t.Errorf("w state %v", st.State)
	}
}

// Each speaker keeps the routers it heard for its VRID: their last
// priority and interval, when and how often. Backups are silent (v3), so
// only the active router is heard until it hands over.
func TestSpeakerPeersHeard(t *testing.T) {
	l, a, b, c := threeNodes(t, nil)
	l.runUntil(time.Second)
	l.requireOneActive(a)
	fromA := l.eventsOf("a", "advert")
	wantA := Peer{Addr: a.addr, Priority: 150, Interval: 100 * time.Millisecond,
		LastHeard: l.t0.Add(fromA[len(fromA)-1].at), Adverts: uint64(len(fromA))}
	for _, n := range []*lnode{b, c} {
		if got := n.sp.Status().Peers; !slices.Equal(got, []Peer{wantA}) {
			t.Errorf("%s heard %+v, want %+v", n.name, got, wantA)
		}
	}
	if got := a.sp.Status().Peers; len(got) != 0 {
		t.Errorf("a heard %+v from silent backups", got)
	}

	// a leaves with a priority-0 advert at 1s; b takes over and a, which
	// waits for b's advert before it lets go, hears b once.
	a.stop()
	l.runUntil(2 * time.Second)
	if err := a.wait(); err != nil {
		t.Fatal(err)
	}
	l.requireOneActive(b)
	bye := Peer{Addr: a.addr, Priority: 0, Interval: 100 * time.Millisecond,
		LastHeard: l.t0.Add(time.Second), Adverts: wantA.Adverts + 1}
	fromB := l.eventsOf("b", "advert")
	wantB := Peer{Addr: b.addr, Priority: 120, Interval: 100 * time.Millisecond,
		LastHeard: l.t0.Add(fromB[len(fromB)-1].at), Adverts: uint64(len(fromB))}
	if got := b.sp.Status().Peers; !slices.Equal(got, []Peer{bye}) {
		t.Errorf("b heard %+v, want %+v", got, bye)
	}
	if got := c.sp.Status().Peers; !slices.Equal(got, []Peer{bye, wantB}) {
		t.Errorf("c heard %+v, want %+v", got, []Peer{bye, wantB})
	}
	take := l.t0.Add(time.Second + skew120)
	if got := a.sp.Status().Peers; len(got) != 1 || got[0].Addr != b.addr || got[0].Adverts != 1 || !got[0].LastHeard.Equal(take) {
		t.Errorf("a heard %+v, want b once at %v", got, take)
	}
	// Nothing about peers is logged at Info.
	for _, n := range []*lnode{a, b, c} {
		for _, m := range n.logs.messages(slog.LevelInfo) {
			if strings.Contains(m, "advert received") {
				t.Errorf("%s logged %q at Info", n.name, m)
			}
		}
	}
}

// The table holds at most MaxPeers routers; a new one replaces the one
// heard least recently, and a router heard again is fresh.
func TestPeerTableBounded(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 1, byte(i)}) }
	tab := make(peerTable)
	for i := range MaxPeers {
		tab.heard(t0.Add(time.Duration(i)*time.Second), addr(i), 100, time.Second)
	}
	tab.heard(t0.Add(100*time.Second), addr(0), 0, time.Second) // 0 is now the freshest
	for i := MaxPeers; i < MaxPeers+8; i++ {
		tab.heard(t0.Add(time.Duration(100+i)*time.Second), addr(i), 50, 2*time.Second)
	}
	got := tab.list()
	if len(got) != MaxPeers {
		t.Fatalf("%d peers, want %d", len(got), MaxPeers)
	}
	var want []netip.Addr
	want = append(want, addr(0))
	for i := 9; i < MaxPeers+8; i++ {
		want = append(want, addr(i))
	}
	var addrs []netip.Addr
	for _, p := range got {
		addrs = append(addrs, p.Addr)
	}
	if !slices.Equal(addrs, want) {
		t.Errorf("kept %v, want %v (1..8 evicted)", addrs, want)
	}
	if p := got[0]; p.Adverts != 2 || p.Priority != 0 || !p.LastHeard.Equal(t0.Add(100*time.Second)) {
		t.Errorf("peer heard twice: %+v", p)
	}
	if p := got[len(got)-1]; p.Adverts != 1 || p.Priority != 50 || p.Interval != 2*time.Second {
		t.Errorf("newest peer: %+v", p)
	}
}
