package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// VIP holds and drops the virtual addresses on this node. Both methods
// must be idempotent: the Speaker retries them after an error and calls
// Release again on exit whenever the last outcome was unknown.
type VIP interface {
	// Acquire adds the addresses and announces them (gratuitous ARP or
	// unsolicited neighbour advertisement).
	Acquire() error
	// Release removes the addresses.
	Release() error
}

// maxHandover caps the default MachineConfig.HandoverTimeout so that `hapod run` exits
// within a second of SIGTERM, well inside kubelet's grace period.
const maxHandover = 800 * time.Millisecond

// SpeakerConfig configures a Speaker. The adverts it sends carry the
// version, VRID, priority and interval; the Conn adds the virtual
// addresses and the authentication (Config feeds both).
type SpeakerConfig struct {
	// Machine is the protocol configuration (Config.MachineConfig).
	Machine MachineConfig
	// Clock is the time source (default: the real clock).
	Clock clock.Clock
	// Logger receives state changes at Info and per-advert detail at
	// Debug (default: slog.Default()).
	Logger *slog.Logger
}

// Status is a snapshot of a Speaker for status pages and metrics.
type Status struct {
	// State is the protocol state.
	State State
	// Since is when State was entered (or the Speaker created).
	Since time.Time
	// LastReason is the reason of the last transition.
	LastReason string
	// BasePriority is the configured priority.
	BasePriority uint8
	// EffectivePriority is BasePriority plus all adjustments, in 1..254.
	EffectivePriority uint8
	// ActiveRouter is the router believed active: this node's primary
	// address when active, the sender of the last accepted advert when
	// backup, invalid when unknown.
	ActiveRouter netip.Addr
	// VIPHeld reports that the last Acquire succeeded and no Release
	// followed.
	VIPHeld bool
	// AdvertsSent counts adverts sent successfully.
	AdvertsSent uint64
	// AdvertsReceived counts adverts for this virtual router received from
	// other routers.
	AdvertsReceived uint64
	// Transitions counts state changes.
	Transitions uint64
	// TransitionsBy counts state changes by the state entered and why.
	TransitionsBy map[TransitionKey]uint64
	// Peers are the other routers heard advertising for this virtual
	// router, by address; at most MaxPeers, the longest silent forgotten
	// first.
	Peers []Peer
}

// TransitionKey is a class of state changes: the state entered and the
// reason, without the peer (a fixed, small set).
type TransitionKey struct {
	To     State
	Reason Reason
}

// MaxPeers is how many routers a Speaker remembers having heard. A VRRP
// group has a handful; the bound keeps a LAN full of (authenticated, or
// unauthenticated v3) senders from growing the table without end.
const MaxPeers = 32

// Peer is another router heard advertising for this virtual router: an
// advert that passed the Conn's checks and carried our VRID and version.
type Peer struct {
	// Addr is the advert's source address.
	Addr netip.Addr
	// Priority and Interval are those of its last advert; priority 0 means
	// it said it was leaving.
	Priority uint8
	Interval time.Duration
	// LastHeard is when its last advert arrived; Adverts counts them.
	LastHeard time.Time
	Adverts   uint64
}

// peerTable is the Speaker's record of the routers it heard, bounded by
// MaxPeers. Guarded by Speaker.mu.
type peerTable map[netip.Addr]*Peer

// heard records an advert from addr at now. A new router in a full table
// takes the place of the one heard least recently.
func (t peerTable) heard(now time.Time, addr netip.Addr, prio uint8, interval time.Duration) {
	p := t[addr]
	if p == nil {
		if len(t) >= MaxPeers {
			var oldest *Peer
			for _, q := range t {
				if oldest == nil || q.LastHeard.Before(oldest.LastHeard) ||
					(q.LastHeard.Equal(oldest.LastHeard) && q.Addr.Less(oldest.Addr)) {
					oldest = q
				}
			}
			delete(t, oldest.Addr)
		}
		p = &Peer{Addr: addr}
		t[addr] = p
	}
	p.Priority, p.Interval, p.LastHeard = prio, interval, now
	p.Adverts++
}

// list returns copies of the peers, by address.
func (t peerTable) list() []Peer {
	if len(t) == 0 {
		return nil
	}
	out := make([]Peer, 0, len(t))
	for _, p := range t {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return a.Addr.Compare(b.Addr) })
	return out
}

// Speaker drives a Machine: it feeds it adverts from a Conn, its timers,
// link changes and priority adjustments, and performs its actions on the
// Conn and a VIP. Run runs the protocol; the other methods are safe to
// call from any goroutine.
type Speaker struct {
	cfg   SpeakerConfig
	conn  Conn
	addrs VIP
	clock clock.Clock
	log   *slog.Logger

	wake chan struct{} // link or priority changed

	mu      sync.Mutex // guards the fields below
	adjust  map[string]int
	linkUp  bool
	status  Status // Peers left nil: Status() fills them from peers; TransitionsBy copied there
	peers   peerTable
	running bool

	// Owned by the Run goroutine.
	m           *Machine
	appliedLink bool
	vip         *vipPlan
	sendFailing bool

	// Counted by the loop for hook: inputs taken, and the stop.
	nPackets uint64
	nWakes   uint64
	stopping bool

	// hook, when set by tests, is called right before the loop blocks
	// and as soon as it wakes. It lets a fake-clock test know that every
	// speaker has finished reacting to every input before it moves time.
	hook func(loopState)
}

// loopState is what hook reports.
type loopState struct {
	idle     bool      // about to block
	deadline time.Time // when the loop wakes by itself; zero: never
	packets  uint64    // packets taken from the Conn so far
	wakes    uint64    // SetLink/AdjustPriority wake-ups taken so far
	stopping bool      // ctx is cancelled
}

// NewSpeaker returns a Speaker for one virtual router. cfg.Machine should
// have passed Validate; out-of-range values are normalised as NewMachine
// does. Run owns conn from then on and closes it when it returns.
func NewSpeaker(cfg SpeakerConfig, conn Conn, vip VIP) *Speaker {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := NewMachine(cfg.Machine)
	if m.cfg.HandoverTimeout <= 0 {
		m.cfg.HandoverTimeout = min(3*m.cfg.Interval, maxHandover)
	}
	cfg.Machine = m.cfg
	return &Speaker{
		cfg:   cfg,
		conn:  conn,
		addrs: vip,
		clock: cfg.Clock,
		log:   cfg.Logger.With("vrid", cfg.Machine.VRID),
		wake:  make(chan struct{}, 1),
		// Not adjusted: no map entry until the first AdjustPriority.
		linkUp: true,
		peers:  make(peerTable),
		status: Status{
			State:             StateInit,
			Since:             cfg.Clock.Now(),
			BasePriority:      m.Priority(),
			EffectivePriority: m.Priority(),
		},
		m:           m,
		appliedLink: true,
		vip:         newVIPPlan(cfg.Machine.Interval),
	}
}

// SetLink reports the carrier state of the interface. While the link is
// down the router sits in Init without the VIP; when it returns it starts
// over as backup.
func (s *Speaker) SetLink(up bool) {
	s.mu.Lock()
	s.linkUp = up
	s.mu.Unlock()
	s.poke()
}

// AdjustPriority sets the priority adjustment of one tracked source, e.g.
// AdjustPriority("backends", -50) while no backend is healthy and
// AdjustPriority("backends", 0) to clear it. The effective priority is the
// base priority plus the sum of all adjustments, clamped to 1..254.
func (s *Speaker) AdjustPriority(source string, delta int) {
	s.mu.Lock()
	if delta == 0 {
		delete(s.adjust, source)
	} else {
		if s.adjust == nil {
			s.adjust = make(map[string]int)
		}
		s.adjust[source] = delta
	}
	sum := int(s.status.BasePriority)
	for _, d := range s.adjust {
		sum += d
	}
	s.status.EffectivePriority = clampPriority(sum)
	s.mu.Unlock()
	s.poke()
}

func (s *Speaker) poke() {
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is already pending; it will read the latest values
	}
}

// Status returns a snapshot of the speaker's state and counters.
func (s *Speaker) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Peers = s.peers.list()
	st.TransitionsBy = maps.Clone(s.status.TransitionsBy)
	return st
}

// Ready reports that the speaker runs the protocol: it left Init, so it
// either holds the VIP or knows that another router does or will.
func (s *Speaker) Ready() bool {
	st := s.Status().State
	return st == StateBackup || st == StateActive
}

// ErrAlreadyRunning is returned by a second call of Run.
var ErrAlreadyRunning = errors.New("vrrp: speaker already running")

// Run speaks VRRP until ctx is cancelled, then hands over: an active router
// sends a priority-0 advert but keeps the VIP (and so the proxy behind it
// keeps serving) until the successor's advert arrives or HandoverTimeout
// passes, and only then releases it. Run returns nil after a clean stop, or
// an error when the Conn fails or the VIP could not be released. It closes
// the Conn before returning and may be called only once.
func (s *Speaker) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return ErrAlreadyRunning
	}
	s.running = true
	s.mu.Unlock()

	pkts := make(chan Received)
	recvErr := make(chan error, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.receive(pkts, recvErr, done)
	}()
	defer func() {
		close(done)
		_ = s.conn.Close() // unblocks Receive
		wg.Wait()
	}()

	now := s.clock.Now()
	s.applyControls(now)
	s.do(now, s.m.Step(now, Startup{}))

	stop := ctx.Done()
	for {
		now = s.clock.Now()
		wakeAt := s.wakeAt()
		if !wakeAt.IsZero() && !wakeAt.After(now) {
			s.timers(now)
			continue
		}
		var timerC <-chan time.Time
		var timer clock.Timer
		if !wakeAt.IsZero() {
			timer = s.clock.NewTimer(wakeAt.Sub(now))
			timerC = timer.C()
		}
		s.idle(true, wakeAt)
		var (
			err     error
			stopped bool
			rcv     *Received
		)
		select {
		case <-stop:
			stopped, stop = true, nil
			s.stopping = true
		case r := <-pkts:
			rcv = &r
			s.nPackets++
		case err = <-recvErr:
		case <-timerC:
		case <-s.wake:
			s.nWakes++
		}
		s.idle(false, time.Time{})
		if timer != nil {
			timer.Stop()
		}
		now = s.clock.Now()
		switch {
		case err != nil && s.stopping:
			return s.releaseForGood() // nobody can hear the successor now
		case err != nil:
			return s.fail(err)
		case stopped:
			s.do(now, s.m.Step(now, Shutdown{}))
		}
		if rcv != nil {
			s.packet(now, *rcv)
		}
		if !s.stopping {
			s.applyControls(now)
		}
		s.timers(now)
		if s.stopping && !s.m.HandingOver() {
			return s.releaseForGood()
		}
	}
}

func (s *Speaker) idle(idle bool, deadline time.Time) {
	if s.hook != nil {
		s.hook(loopState{idle: idle, deadline: deadline, packets: s.nPackets, wakes: s.nWakes, stopping: s.stopping})
	}
}

// maxRecvFailures is how many Receive errors in a row end Run. A router
// that cannot hear the others must not keep (or take) the VIP: stopping
// releases it, and the restarted process opens a fresh socket.
const maxRecvFailures = 10

// receive runs in its own goroutine: Conn.Receive blocks.
func (s *Speaker) receive(out chan<- Received, errc chan<- error, done <-chan struct{}) {
	failures := 0
	for {
		r, err := s.conn.Receive()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				errc <- err
				return
			}
			failures++
			if failures == 1 {
				s.log.Warn("vrrp receive failed", "err", err)
			}
			if failures >= maxRecvFailures {
				errc <- fmt.Errorf("%d errors in a row, the last: %w", failures, err)
				return
			}
			continue
		}
		if failures > 0 {
			s.log.Info("vrrp receive recovered", "failures", failures)
			failures = 0
		}
		select {
		case out <- r:
		case <-done:
			return
		}
	}
}

// wakeAt is when the loop must run without outside input: the machine's
// next timer or a pending VIP retry, whichever is first.
func (s *Speaker) wakeAt() time.Time {
	t := s.m.NextDeadline()
	if r := s.vip.deadline(); !r.IsZero() && !s.stopping && (t.IsZero() || r.Before(t)) {
		t = r
	}
	return t
}

func (s *Speaker) timers(now time.Time) {
	if dl := s.m.NextDeadline(); !dl.IsZero() && !now.Before(dl) {
		s.do(now, s.m.Step(now, Tick{}))
	}
	if r := s.vip.deadline(); !r.IsZero() && !s.stopping && !now.Before(r) {
		s.syncVIP(now)
	}
}

// applyControls feeds the machine the link state and priority that SetLink
// and AdjustPriority last asked for.
func (s *Speaker) applyControls(now time.Time) {
	s.mu.Lock()
	link, prio := s.linkUp, s.status.EffectivePriority
	s.mu.Unlock()
	if link != s.appliedLink {
		s.appliedLink = link
		in := Input(LinkDown{})
		if link {
			in = LinkUp{}
		}
		s.do(now, s.m.Step(now, in))
	}
	if prio != s.m.Priority() {
		s.log.Info("vrrp priority changed", "from", s.m.Priority(), "to", prio)
		s.do(now, s.m.Step(now, SetPriority{Priority: prio}))
	}
}

func (s *Speaker) packet(now time.Time, r Received) {
	p := r.Packet
	// The Conn filters these already; a mismatch here would be a wiring
	// mistake, and feeding it to the machine could move the VIP.
	if p == nil || p.VRID != s.cfg.Machine.VRID || p.Version != s.cfg.Machine.Version {
		return
	}
	s.received(now, r)
	s.log.Debug("vrrp advert received", "from", r.Src, "priority", p.Priority, "interval", p.Interval)
	s.do(now, s.m.Step(now, Advert{From: r.Src, Priority: p.Priority, Interval: p.Interval}))
}

// received counts an advert for this virtual router and, unless it is
// our own looped back, records its sender as a peer.
func (s *Speaker) received(now time.Time, r Received) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status.AdvertsReceived++
	if r.Src != s.cfg.Machine.Primary {
		s.peers.heard(now, r.Src, r.Packet.Priority, r.Packet.Interval)
	}
}

// do performs the machine's actions in order. While stopping, a ReleaseVIP
// only records the wish: releaseForGood releases on the way out.
func (s *Speaker) do(now time.Time, acts []Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case Transition:
			s.log.Info("vrrp state change", "from", a.From.String(), "to", a.To.String(), "reason", a.Text())
			s.mu.Lock()
			s.status.State = a.To
			s.status.Since = now
			s.status.LastReason = a.Text()
			s.status.Transitions++
			if s.status.TransitionsBy == nil {
				s.status.TransitionsBy = make(map[TransitionKey]uint64)
			}
			s.status.TransitionsBy[TransitionKey{To: a.To, Reason: a.Reason}]++
			s.mu.Unlock()
		case TakeVIP:
			s.vip.set(true)
			s.syncVIP(now)
		case ReleaseVIP:
			s.vip.set(false)
			if !s.stopping {
				s.syncVIP(now)
			}
		case HandoverDone:
			if a.To.IsValid() {
				s.log.Info("vrrp handover done", "to", a.To, "priority", a.Priority, "after", a.After.String())
			} else {
				s.log.Warn("vrrp handover timed out, releasing the VIP anyway", "timeout", s.cfg.Machine.HandoverTimeout.String())
			}
		case AnnounceVIP:
			if s.vip.reannounce(now) {
				s.reannounce()
			}
		case SendAdvert:
			s.send(a.Priority)
			// Failed VIP operations are retried with the advert rhythm.
			if s.vip.acquiring() {
				s.syncVIP(now)
			}
		}
	}
	s.mu.Lock()
	s.status.ActiveRouter = s.m.ActiveRouter()
	s.mu.Unlock()
}

func (s *Speaker) send(prio uint8) {
	c := s.cfg.Machine
	err := s.conn.Send(&Packet{
		Version:  c.Version,
		VRID:     c.VRID,
		Priority: prio,
		Interval: c.Interval,
	})
	switch {
	case err != nil && !s.sendFailing:
		// Once per failure streak: at 10 adverts a second, more is noise.
		s.sendFailing = true
		s.log.Warn("vrrp advert send failed", "priority", prio, "err", err)
	case err != nil:
		s.log.Debug("vrrp advert send failed", "priority", prio, "err", err)
	default:
		if s.sendFailing {
			s.sendFailing = false
			s.log.Info("vrrp advert send recovered")
		}
		s.log.Debug("vrrp advert sent", "priority", prio)
		s.mu.Lock()
		s.status.AdvertsSent++
		s.mu.Unlock()
	}
}

// reannounce announces the held VIP again (Acquire is idempotent: the
// address stays, the gratuitous ARP or NA burst goes out).
func (s *Speaker) reannounce() {
	if err := s.addrs.Acquire(); err != nil {
		s.log.Warn("vrrp VIP re-announce failed", "err", err)
		return
	}
	s.log.Info("VIP re-announced: another router was active too")
}

// syncVIP makes the VIP call the plan says is due, if any, and logs its
// outcome (at Warn once per failure streak).
func (s *Speaker) syncVIP(now time.Time) {
	op := s.vip.next(now)
	if op == vipNone {
		return
	}
	name, f := "acquire", s.addrs.Acquire
	if op == vipRelease {
		name, f = "release", s.addrs.Release
	}
	err := f()
	switch s.vip.done(now, op, err) {
	case vipFirstError:
		s.log.Warn("vrrp VIP "+name+" failed, will retry", "err", err)
	case vipError:
		s.log.Debug("vrrp VIP "+name+" failed", "err", err)
	case vipRecovered:
		s.log.Info("vrrp VIP " + name + " succeeded after failures")
	}
	s.mu.Lock()
	s.status.VIPHeld = s.vip.held()
	s.mu.Unlock()
}

// releaseForGood releases the VIP once more if it may still be held.
func (s *Speaker) releaseForGood() error {
	now := s.clock.Now()
	s.vip.set(false)
	if s.vip.next(now) == vipNone {
		return nil
	}
	err := s.addrs.Release()
	s.vip.done(now, vipRelease, err)
	if err != nil {
		return fmt.Errorf("vrrp: release VIP on exit: %w", err)
	}
	s.mu.Lock()
	s.status.VIPHeld = false
	s.mu.Unlock()
	return nil
}

// fail stops after the Conn broke: nobody can hear us, so drop the VIP now.
func (s *Speaker) fail(err error) error {
	now := s.clock.Now()
	s.stopping = true // release below, without a handover
	s.do(now, s.m.Step(now, Shutdown{}))
	if rerr := s.releaseForGood(); rerr != nil {
		return errors.Join(fmt.Errorf("vrrp: receive: %w", err), rerr)
	}
	return fmt.Errorf("vrrp: receive: %w", err)
}
