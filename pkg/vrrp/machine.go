package vrrp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// State is the protocol state of one virtual router. The zero value is
// StateInvalid so that a forgotten initialisation shows up in logs.
type State int

// The states of RFC 9568 section 6.4. RFC 9568 calls them Initialize,
// Backup and Active (RFC 3768 and keepalived say Master).
const (
	StateInvalid State = iota
	StateInit
	StateBackup
	StateActive
)

// String returns the state's name as it appears in logs and status output.
func (s State) String() string {
	switch s {
	case StateInit:
		return "Init"
	case StateBackup:
		return "Backup"
	case StateActive:
		return "Active"
	default:
		return fmt.Sprintf("Invalid(%d)", int(s))
	}
}

// MarshalText makes a State read as its name in JSON status output.
func (s State) MarshalText() ([]byte, error) {
	return []byte(s.String()), nil
}

// Priority bounds for a router that does not own the virtual address
// (RFC 9568 section 5.2.4). hapod never owns the VIP: it is an address no
// node has configured, so 255 is never used, and 0 on the wire means "the
// active router is stopping".
const (
	MinPriority uint8 = 1
	MaxPriority uint8 = 254
)

// ErrInvalidMachineConfig is wrapped by MachineConfig.Validate.
var ErrInvalidMachineConfig = errors.New("vrrp: invalid machine config")

// MachineConfig is the static configuration of one virtual router.
type MachineConfig struct {
	// VRID is the virtual router identifier, 1..255.
	VRID uint8
	// Priority is the base priority, 1..254 (no default: the caller picks it).
	Priority uint8
	// Interval is the advertisement interval. VRRPv3 carries it in
	// centiseconds (10ms..40.95s); VRRPv2 in whole seconds (1s..255s).
	Interval time.Duration
	// Version selects the protocol timing: Version3 learns the active
	// router's interval from its adverts, Version2 uses its own.
	Version Version
	// Preempt lets a backup with a higher priority take over from a working
	// active router. hapod's config defaults to true with equal priorities:
	// a backup then preempts only a holder whose priority fell (degraded).
	Preempt bool
	// Primary is this router's own primary address: the source of its
	// adverts, compared against the sender's to break priority ties.
	Primary netip.Addr
	// TieBreak is added to the down timers that every backup arms from
	// the same event, where equal-priority backups would all expire at
	// the same instant and all take over: at startup, and on a priority-0
	// advert (a graceful handover, where the stepping-down router keeps
	// serving, so the delay costs clients nothing). A delay ranked by
	// address (see TieBreakDelay) lets one take over first and its advert
	// stop the rest. After a crash (adverts simply stop) the RFC timing
	// is kept: there every millisecond is outage, and should two backups
	// both take over, the loser's priority-0 advert as it steps down makes
	// the winner announce the VIP again. Default 0: RFC timing throughout.
	TieBreak time.Duration
	// HandoverTimeout is how long an active router that shuts down keeps
	// the VIP (and so the service behind it) after its priority-0 advert,
	// waiting for the advert of its successor, before it releases the VIP
	// anyway. 0 releases at once; NewSpeaker sets a default.
	HandoverTimeout time.Duration
}

// TieBreakDelay is a TieBreak for a router with this primary address: 0 to
// 7 steps, shorter for a higher last address byte, so the router that
// would win the RFC's tie-break on equal priority also takes over first.
// A step is 10ms (a tenth of the interval below 100ms): enough for the
// first router's advert to cross a LAN and be read by the next on a busy
// host, where waking a process can lag a few milliseconds (2ms steps let
// two of three backups take over together in 8-9 of 30 graceful
// handovers on saturated CPUs, 10ms in 1 of 30: `make bench-failover`),
// and independent of the interval, since a slower advert rhythm does not
// make the LAN slower. The delay costs nothing on a hapod handover (the
// stopping holder serves until its successor's advert) and at most 70ms
// when a keepalived peer stops. Addresses whose last bytes agree modulo 8
// still tie; the split brain then resolves as the RFC says.
func TieBreakDelay(primary netip.Addr, interval time.Duration) time.Duration {
	last := primary.As16()[15]
	return time.Duration(7-int(last%8)) * min(tieBreakStep, interval/10)
}

// tieBreakStep is the TieBreakDelay step (see there).
const tieBreakStep = 10 * time.Millisecond

// Validate reports the first field out of range, wrapping ErrInvalidMachineConfig.
func (c MachineConfig) Validate() error {
	switch {
	case c.VRID == 0:
		return fmt.Errorf("%w: VRID must be 1..255", ErrInvalidMachineConfig)
	case c.Priority < MinPriority || c.Priority > MaxPriority:
		return fmt.Errorf("%w: priority %d not in %d..%d", ErrInvalidMachineConfig, c.Priority, MinPriority, MaxPriority)
	case c.Version != Version2 && c.Version != Version3:
		return fmt.Errorf("%w: version %d is neither 2 nor 3", ErrInvalidMachineConfig, c.Version)
	case !c.Primary.IsValid():
		return fmt.Errorf("%w: primary address missing", ErrInvalidMachineConfig)
	}
	if c.Version == Version2 {
		if c.Interval < MinIntervalV2 || c.Interval > MaxIntervalV2 || c.Interval%IntervalUnitV2 != 0 {
			return fmt.Errorf("%w: VRRPv2 interval %v must be whole seconds in %v..%v", ErrInvalidMachineConfig, c.Interval, MinIntervalV2, MaxIntervalV2)
		}
		return nil
	}
	if c.Interval < MinIntervalV3 || c.Interval > MaxIntervalV3 || c.Interval%IntervalUnitV3 != 0 {
		return fmt.Errorf("%w: VRRPv3 interval %v must be whole centiseconds in %v..%v", ErrInvalidMachineConfig, c.Interval, MinIntervalV3, MaxIntervalV3)
	}
	return nil
}

// SkewTime is how much longer a backup of the given priority waits than
// three advert intervals before it declares the active router dead, so that
// the backup with the highest priority wins the race (RFC 9568 section 6.1,
// RFC 3768 section 6.1). interval is the active router's advertised interval
// for v3 and ignored for v2, whose skew is a fraction of one second.
func SkewTime(v Version, priority uint8, interval time.Duration) time.Duration {
	if v == Version2 {
		interval = time.Second
	}
	return time.Duration(256-int64(priority)) * interval / 256
}

// MasterDownInterval is how long a backup waits without hearing the active
// router before taking over: 3 intervals plus SkewTime. For v2 interval is
// the backup's own configured one, for v3 the one learned from adverts.
func MasterDownInterval(v Version, priority uint8, interval time.Duration) time.Duration {
	return 3*interval + SkewTime(v, priority, interval)
}

// Input is an event fed to Machine.Step.
type Input interface{ isInput() }

// Startup starts the protocol (RFC 9568 Startup event).
type Startup struct{}

// Shutdown stops the protocol (RFC 9568 Shutdown event).
type Shutdown struct{}

// Advert is a valid advertisement for this virtual router from another
// router. The driver filters by VRID, version and authentication first.
type Advert struct {
	// From is the sender's primary address (the IP source).
	From netip.Addr
	// Priority is the sender's priority; 0 means it is stopping.
	Priority uint8
	// Interval is the sender's advertisement interval (learned only by v3).
	Interval time.Duration
}

// Tick tells the machine that NextDeadline has been reached.
type Tick struct{}

// SetPriority changes the effective priority (base priority adjusted by
// tracked checks). Values outside 1..254 are clamped.
type SetPriority struct{ Priority uint8 }

// LinkDown reports that the interface lost its carrier.
type LinkDown struct{}

// LinkUp reports that the interface has its carrier again.
type LinkUp struct{}

func (Startup) isInput()     {}
func (Shutdown) isInput()    {}
func (Advert) isInput()      {}
func (Tick) isInput()        {}
func (SetPriority) isInput() {}
func (LinkDown) isInput()    {}
func (LinkUp) isInput()      {}

// Action is a side effect Machine.Step asks the driver to perform, in order.
type Action interface{ isAction() }

// SendAdvert asks the driver to send an advertisement with this priority.
type SendAdvert struct{ Priority uint8 }

// TakeVIP asks the driver to add the virtual addresses and announce them.
type TakeVIP struct{}

// ReleaseVIP asks the driver to remove the virtual addresses.
type ReleaseVIP struct{}

// AnnounceVIP asks the driver to announce the addresses it holds again
// (gratuitous ARP or unsolicited NA). Another router believed itself
// active, and its announcements may have drawn the clients' neighbour
// caches to it: without a fresh announcement they keep sending to a node
// that has just stepped down, until their cache entries expire.
type AnnounceVIP struct{}

// Transition reports a state change: why (Reason) and, for reasons
// caused by another router's advert, whose (Peer, Priority).
type Transition struct {
	From, To State
	Reason   Reason
	// Peer and Priority are the sender and priority of the advert behind
	// ReasonPriorityZero, ReasonPreempt, ReasonHigherPriority and
	// ReasonHigherAddress. For ReasonMasterDown they are the active
	// router whose adverts stopped, the last one heard from (zero when
	// none was heard since startup): a router that went silent is likely
	// a dead host, and its other services (its kube-apiserver) with it.
	// Zero otherwise.
	Peer     netip.Addr
	Priority uint8
	// OwnPriority is this router's priority that a ReasonPreempt advert
	// fell short of; zero otherwise.
	OwnPriority uint8
}

// Text is the transition's reason as a sentence for logs and the status
// page, naming the peer where there is one.
func (t Transition) Text() string {
	switch t.Reason {
	case ReasonPriorityZero:
		return fmt.Sprintf("priority 0 advert from %s", t.Peer)
	case ReasonPreempt:
		return fmt.Sprintf("preempting lower priority %s (prio %d < %d)", t.Peer, t.Priority, t.OwnPriority)
	case ReasonHigherPriority:
		return fmt.Sprintf("higher priority advert from %s (prio %d)", t.Peer, t.Priority)
	case ReasonHigherAddress:
		return fmt.Sprintf("equal priority advert from higher address %s (prio %d)", t.Peer, t.Priority)
	default:
		return reasonTexts[t.Reason]
	}
}

// Reason is why a Transition happened. The zero value is invalid.
type Reason int

// The reasons of transitions. Their String values are the reason label
// of hapod_vrrp_transitions_total: a fixed set, with no peer addresses.
const (
	ReasonInvalid Reason = iota
	// ReasonStartup: the protocol started (Init to Backup).
	ReasonStartup
	// ReasonShutdown: the protocol stopped (to Init).
	ReasonShutdown
	// ReasonLinkDown: the interface lost its carrier (to Init).
	ReasonLinkDown
	// ReasonLinkUp: the carrier came back (Init to Backup).
	ReasonLinkUp
	// ReasonMasterDown: no advert from the active router for an
	// Active_Down_Interval (Backup to Active).
	ReasonMasterDown
	// ReasonPriorityZero: the active router said it was stopping, and the
	// shortened down timer ran out (Backup to Active).
	ReasonPriorityZero
	// ReasonPreempt: the active router's priority was lower than ours and
	// preemption is on (Backup to Active).
	ReasonPreempt
	// ReasonHigherPriority: another active router has a higher priority
	// (Active to Backup).
	ReasonHigherPriority
	// ReasonHigherAddress: another active router has our priority and a
	// higher address (Active to Backup).
	ReasonHigherAddress
	reasonEnd
)

var reasonNames = [...]string{
	ReasonStartup:        "startup",
	ReasonShutdown:       "shutdown",
	ReasonLinkDown:       "link_down",
	ReasonLinkUp:         "link_up",
	ReasonMasterDown:     "master_down",
	ReasonPriorityZero:   "priority_zero",
	ReasonPreempt:        "preempt",
	ReasonHigherPriority: "higher_priority",
	ReasonHigherAddress:  "higher_address",
}

// reasonTexts are the sentences of the reasons that name no peer.
var reasonTexts = map[Reason]string{
	ReasonStartup:    "startup",
	ReasonShutdown:   "shutdown",
	ReasonLinkDown:   "link down",
	ReasonLinkUp:     "link up",
	ReasonMasterDown: "master down timer expired",
}

// String returns the reason's metric label, such as "master_down".
func (r Reason) String() string {
	if r > ReasonInvalid && r < reasonEnd {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// Reasons returns every valid Reason, in order.
func Reasons() []Reason {
	out := make([]Reason, 0, reasonEnd-1)
	for r := ReasonInvalid + 1; r < reasonEnd; r++ {
		out = append(out, r)
	}
	return out
}

// HandoverDone ends the handover of an active router that shut down: To
// advertised with Priority after the goodbye, so it holds the VIP now; or,
// when To is invalid, HandoverTimeout passed without a successor. After is
// how long the handover took. A ReleaseVIP follows.
type HandoverDone struct {
	To       netip.Addr
	Priority uint8
	After    time.Duration
}

func (SendAdvert) isAction()   {}
func (HandoverDone) isAction() {}
func (TakeVIP) isAction()      {}
func (ReleaseVIP) isAction()   {}
func (AnnounceVIP) isAction()  {}
func (Transition) isAction()   {}

// Machine is the VRRP state machine of RFC 9568 section 6 (and RFC 3768 for
// v2 timing) for one virtual router. It is pure: it never reads the clock or
// touches the network; the driver passes the current time with every input
// and performs the returned actions. It is not safe for concurrent use.
type Machine struct {
	cfg      MachineConfig
	priority uint8 // effective priority
	state    State

	started bool // between Startup and Shutdown
	linkUp  bool

	// activeInterval is Active_Adver_Interval: v3 learns it from the active
	// router's adverts; it restarts from the own interval on every startup.
	activeInterval time.Duration
	downAt         time.Time  // Active_Down_Timer, Backup only
	adverAt        time.Time  // Adver_Timer, Active only
	downWhy        Transition // what the down timer expiring will mean
	activeRouter   netip.Addr
	// handoverFrom and handoverAt are when the handover after Shutdown
	// began and when it times out; zero when none runs.
	handoverFrom, handoverAt time.Time
}

// NewMachine returns a machine in StateInit. Out-of-range values are
// normalised (priority clamped to 1..254, a missing interval becomes 1s,
// an unknown version becomes 3) so the machine always runs;
// callers reject bad input earlier with MachineConfig.Validate.
func NewMachine(cfg MachineConfig) *Machine {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Version != Version2 && cfg.Version != Version3 {
		cfg.Version = Version3
	}
	cfg.Priority = clampPriority(int(cfg.Priority))
	return &Machine{
		cfg:            cfg,
		priority:       cfg.Priority,
		state:          StateInit,
		linkUp:         true,
		activeInterval: cfg.Interval,
	}
}

func clampPriority(p int) uint8 {
	return uint8(min(max(p, int(MinPriority)), int(MaxPriority)))
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Priority returns the effective priority.
func (m *Machine) Priority() uint8 { return m.priority }

// ActiveRouter returns the address of the router this one believes is
// active: its own Primary when active, the sender of the last accepted
// advert when backup, and the zero Addr when unknown (in Init, or after the
// active router announced it is stopping).
func (m *Machine) ActiveRouter() netip.Addr { return m.activeRouter }

// HandingOver reports that the machine shut down as the active router and
// still keeps the VIP, waiting for a successor (see HandoverTimeout). The
// driver keeps feeding it adverts and ticks until this turns false.
func (m *Machine) HandingOver() bool { return !m.handoverAt.IsZero() }

// NextDeadline returns when the driver must call Step with Tick, or the
// zero time when no timer runs (Init, unless handing over).
func (m *Machine) NextDeadline() time.Time {
	switch m.state {
	case StateInit:
		return m.handoverAt
	case StateBackup:
		return m.downAt
	case StateActive:
		return m.adverAt
	default:
		return time.Time{}
	}
}

// masterDown is the current Active_Down_Interval for this router.
func (m *Machine) masterDown() time.Duration {
	return MasterDownInterval(m.cfg.Version, m.priority, m.activeInterval)
}

// Step feeds one input at time now and returns the actions to perform, in
// order. A Transition comes first so logs precede its effects.
func (m *Machine) Step(now time.Time, in Input) []Action {
	switch in := in.(type) {
	case Startup:
		m.started = true
		if m.state != StateInit || !m.linkUp {
			return nil
		}
		return append(m.endHandover(now, netip.Addr{}, 0), m.startBackup(now, ReasonStartup)...)
	case LinkUp:
		m.linkUp = true
		if m.state != StateInit || !m.started {
			return nil
		}
		return m.startBackup(now, ReasonLinkUp)
	case Shutdown:
		m.started = false
		return m.toInit(now, ReasonShutdown)
	case LinkDown:
		m.linkUp = false
		// No successor's advert can arrive on a link that is gone.
		return append(m.endHandover(now, netip.Addr{}, 0), m.toInit(now, ReasonLinkDown)...)
	case Tick:
		return m.tick(now)
	case Advert:
		return m.advert(now, in)
	case SetPriority:
		return m.setPriority(now, clampPriority(int(in.Priority)))
	default:
		return nil
	}
}

// startBackup is the Startup event of RFC 9568 section 6.4.1 for a router
// that does not own the address: wait one Active_Down_Interval as backup.
func (m *Machine) startBackup(now time.Time, reason Reason) []Action {
	m.activeInterval = m.cfg.Interval
	m.state = StateBackup
	m.activeRouter = netip.Addr{}
	m.armDown(now, m.masterDown()+m.cfg.TieBreak, Transition{Reason: ReasonMasterDown})
	return []Action{Transition{From: StateInit, To: StateBackup, Reason: reason}}
}

// armDown sets the down timer; why is the Transition its expiry makes
// (From and To are filled in then).
func (m *Machine) armDown(now time.Time, d time.Duration, why Transition) {
	m.downAt = now.Add(d)
	m.downWhy = why
}

// toInit stops the protocol. An active router that shuts down says
// goodbye and, with a HandoverTimeout, keeps the VIP until its successor
// advertises: a new active router adds the VIP before it sends that
// advert, so between the two there is no moment without an owner.
func (m *Machine) toInit(now time.Time, reason Reason) []Action {
	from := m.state
	m.downAt, m.adverAt = time.Time{}, time.Time{}
	m.activeRouter = netip.Addr{}
	switch from {
	case StateActive:
		m.state = StateInit
		acts := []Action{Transition{From: from, To: StateInit, Reason: reason}}
		if reason == ReasonShutdown {
			// Priority 0 lets the backups take over after Skew_Time
			// instead of a whole Active_Down_Interval. (Not on link
			// down: the link that would carry it is gone.)
			acts = append(acts, SendAdvert{Priority: 0})
			if m.cfg.HandoverTimeout > 0 {
				m.handoverFrom, m.handoverAt = now, now.Add(m.cfg.HandoverTimeout)
				return acts
			}
		}
		return append(acts, ReleaseVIP{})
	case StateBackup:
		m.state = StateInit
		return []Action{Transition{From: from, To: StateInit, Reason: reason}}
	default:
		return nil
	}
}

// endHandover ends a running handover: to is the successor, invalid when
// there is none. Without a handover it does nothing.
func (m *Machine) endHandover(now time.Time, to netip.Addr, prio uint8) []Action {
	if !m.HandingOver() {
		return nil
	}
	done := HandoverDone{To: to, Priority: prio, After: now.Sub(m.handoverFrom)}
	m.handoverFrom, m.handoverAt = time.Time{}, time.Time{}
	return []Action{done, ReleaseVIP{}}
}

func (m *Machine) tick(now time.Time) []Action {
	switch m.state {
	case StateInit:
		if !m.HandingOver() || now.Before(m.handoverAt) {
			return nil
		}
		return m.endHandover(now, netip.Addr{}, 0)
	case StateBackup:
		if now.Before(m.downAt) {
			return nil
		}
		m.state = StateActive
		m.activeRouter = m.cfg.Primary
		m.downAt = time.Time{}
		m.adverAt = now.Add(m.cfg.Interval)
		// TakeVIP before the advert: a stopping active router waits for
		// this advert before it drops the address, so when the advert
		// leaves, the address is already up here and clients see no gap.
		why := m.downWhy
		why.From, why.To = StateBackup, StateActive
		return []Action{
			why,
			TakeVIP{},
			SendAdvert{Priority: m.priority},
		}
	case StateActive:
		if now.Before(m.adverAt) {
			return nil
		}
		// Keep the cadence of the original schedule unless the driver
		// fell a whole interval behind (suspend, overload): then restart
		// from now rather than send a burst.
		m.adverAt = m.adverAt.Add(m.cfg.Interval)
		if !m.adverAt.After(now) {
			m.adverAt = now.Add(m.cfg.Interval)
		}
		return []Action{SendAdvert{Priority: m.priority}}
	default:
		return nil
	}
}

func (m *Machine) learnInterval(a Advert) {
	if m.cfg.Version == Version3 && a.Interval > 0 {
		m.activeInterval = a.Interval
	}
}

func (m *Machine) advert(now time.Time, a Advert) []Action {
	// Our own advert looped back by multicast is not another router.
	if a.From == m.cfg.Primary {
		return nil
	}
	switch m.state {
	case StateInit:
		// Any router but a leaving one has taken over from us.
		if a.Priority == 0 {
			return nil
		}
		return m.endHandover(now, a.From, a.Priority)
	case StateBackup:
		switch {
		case a.Priority == 0:
			m.activeRouter = netip.Addr{}
			m.armDown(now, SkewTime(m.cfg.Version, m.priority, m.activeInterval)+m.cfg.TieBreak,
				Transition{Reason: ReasonPriorityZero, Peer: a.From})
		case !m.cfg.Preempt || a.Priority >= m.priority:
			m.learnInterval(a)
			m.activeRouter = a.From
			m.armDown(now, m.masterDown(), Transition{Reason: ReasonMasterDown, Peer: a.From, Priority: a.Priority})
		default:
			// Preempting: ignore the weaker active router and let the down
			// timer run out; say why when it does.
			m.downWhy = Transition{Reason: ReasonPreempt, Peer: a.From, Priority: a.Priority, OwnPriority: m.priority}
		}
		return nil
	case StateActive:
		switch {
		case a.Priority == 0:
			// Another active router is leaving (a split brain healing, or
			// its shutdown crossing our takeover): reassert at once so the
			// backups re-arm on us instead of racing to take over.
			m.adverAt = now.Add(m.cfg.Interval)
			return []Action{SendAdvert{Priority: m.priority}, AnnounceVIP{}}
		case a.Priority > m.priority || (a.Priority == m.priority && a.From.Compare(m.cfg.Primary) > 0):
			reason := ReasonHigherPriority
			if a.Priority == m.priority {
				reason = ReasonHigherAddress
			}
			m.learnInterval(a)
			m.state = StateBackup
			m.activeRouter = a.From
			m.adverAt = time.Time{}
			m.armDown(now, m.masterDown(), Transition{Reason: ReasonMasterDown, Peer: a.From, Priority: a.Priority})
			// Two active routers: a split brain healing (or a preemption).
			// Our announcements may have drawn clients here; a priority-0
			// advert as we leave makes the winner reassert and announce
			// the VIP again at once (the winner may never hear a normal
			// advert from us if its own reached us first).
			return []Action{Transition{From: StateActive, To: StateBackup, Reason: reason, Peer: a.From, Priority: a.Priority}, SendAdvert{Priority: 0}, ReleaseVIP{}}
		default:
			// RFC 9568 section 6.4.3: answer a weaker active router at once
			// so it steps down within one round trip, not one interval,
			// and win back the clients its announcements drew away.
			return []Action{SendAdvert{Priority: m.priority}, AnnounceVIP{}}
		}
	default:
		return nil
	}
}

func (m *Machine) setPriority(now time.Time, p uint8) []Action {
	if p == m.priority {
		return nil
	}
	m.priority = p
	if m.state != StateActive {
		// A backup's down timer keeps running; the new priority shapes
		// Skew_Time from the next advert on (RFC 9568 recomputes there).
		return nil
	}
	// Tell the backups now rather than at the next tick: with preemption a
	// stronger backup starts ignoring us one interval earlier.
	m.adverAt = now.Add(m.cfg.Interval)
	return []Action{SendAdvert{Priority: p}}
}
