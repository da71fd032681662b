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
	// OnTransition, when set, is called with every state change before
	// its effects (a takeover's VIP is added after it returns), on the
	// speaker's goroutine: it must not block.
	OnTransition func(Transition)
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

// Speaker runs a virtual router: its loop waits for an advert from the
// Conn, a timer, a SetLink or AdjustPriority, or the end, and hands each to
// the core, which decides (see core.go) and performs through the Conn and
// the VIP. Run runs the protocol; the other methods are safe to call from
// any goroutine.
type Speaker struct {
	cfg   SpeakerConfig
	conn  Conn
	addrs VIP
	clock clock.Clock
	log   *slog.Logger

	wake chan struct{} // link or priority changed

	mu        sync.Mutex // guards the fields below
	adjust    map[string]int
	linkUp    bool
	effective uint8  // base priority plus adjust, clamped
	status    Status // the core's, as of the end of the loop's last turn
	running   bool

	c *core // owned by the Run goroutine
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
	s := &Speaker{
		conn:  conn,
		addrs: vip,
		clock: cfg.Clock,
		log:   cfg.Logger.With("vrid", cfg.Machine.VRID),
		wake:  make(chan struct{}, 1),
		// Not adjusted: no map entry until the first AdjustPriority.
		linkUp: true,
	}
	s.c = newCore(cfg.Clock.Now(), cfg.Machine, speakerEffects{s}, s.log)
	s.c.onTransition = cfg.OnTransition
	cfg.Machine = s.c.cfg
	s.cfg = cfg
	s.effective = s.c.m.Priority()
	s.status = s.c.snapshot()
	return s
}

// speakerEffects performs a core's calls on the Speaker's Conn and VIP.
type speakerEffects struct{ s *Speaker }

func (e speakerEffects) send(p *Packet) error { return e.s.conn.Send(p) }
func (e speakerEffects) acquire() error       { return e.s.addrs.Acquire() }
func (e speakerEffects) release() error       { return e.s.addrs.Release() }

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
	s.effective = clampPriority(sum)
	s.mu.Unlock()
	s.poke()
}

func (s *Speaker) poke() {
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is already pending; it will read the latest values
	}
}

// controls returns what SetLink and AdjustPriority last asked for.
func (s *Speaker) controls() (link bool, prio uint8) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.linkUp, s.effective
}

// publish makes the core's status what Status returns.
func (s *Speaker) publish() {
	st := s.c.snapshot()
	s.mu.Lock()
	s.status = st
	s.mu.Unlock()
}

// Status returns a snapshot of the speaker's state and counters.
func (s *Speaker) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.EffectivePriority = s.effective
	st.Peers = slices.Clone(st.Peers)
	st.TransitionsBy = maps.Clone(st.TransitionsBy)
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
	defer s.publish()

	link, prio := s.controls()
	s.c.start(s.clock.Now(), link, prio)
	s.publish()

	stop := ctx.Done()
	for {
		now := s.clock.Now()
		var w wakeup
		if at := s.c.wakeAt(); at.IsZero() || at.After(now) {
			var timerC <-chan time.Time
			var timer clock.Timer
			if !at.IsZero() {
				timer = s.clock.NewTimer(at.Sub(now))
				timerC = timer.C()
			}
			var err error
			select {
			case <-stop:
				stop, w.stop = nil, true
			case r := <-pkts:
				w.rcv = &r
			case err = <-recvErr:
			case <-timerC:
			case <-s.wake:
			}
			if timer != nil {
				timer.Stop()
			}
			now = s.clock.Now()
			if err != nil {
				return s.c.fail(now, err)
			}
		}
		w.link, w.prio = s.controls()
		done := s.c.wake(now, w)
		s.publish()
		if done {
			return s.c.exit(now)
		}
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
