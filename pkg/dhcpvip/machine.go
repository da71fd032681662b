package dhcpvip

import (
	"fmt"
	"math"
	"net/netip"
	"time"
)

// State is the client state of RFC 2131 section 4.4 (Figure 5) that the
// lease is in. The zero value is StateInvalid so that a forgotten
// initialisation shows up in logs.
type State int

// The states. INIT-REBOOT and REBOOTING of RFC 2131 are folded into
// Requesting (a Request for a known address without an offer).
const (
	StateInvalid State = iota
	// StateInit: nothing sent yet, or a backup that never held the lease.
	StateInit
	// StateSelecting: Discover sent, waiting for an offer.
	StateSelecting
	// StateRequesting: Request sent for an offered (or known) address,
	// waiting for the ACK.
	StateRequesting
	// StateBound: the lease is valid; nothing to send until T1.
	StateBound
	// StateRenewing: past T1 (or just activated), asking the server that
	// granted the lease to extend it.
	StateRenewing
	// StateRebinding: past T2, asking any server to extend the lease.
	StateRebinding
	// StateExpired: the lease ran out; still asking for the same address.
	StateExpired
)

// String returns the state's name as it appears in logs and status output.
func (s State) String() string {
	switch s {
	case StateInit:
		return "Init"
	case StateSelecting:
		return "Selecting"
	case StateRequesting:
		return "Requesting"
	case StateBound:
		return "Bound"
	case StateRenewing:
		return "Renewing"
	case StateRebinding:
		return "Rebinding"
	case StateExpired:
		return "Expired"
	default:
		return fmt.Sprintf("Invalid(%d)", int(s))
	}
}

// MarshalText makes a State read as its name in JSON status output.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// InfiniteLease is the lease time of option 51 = 0xffffffff (RFC 2132
// section 9.2): the lease never expires. It is the largest Duration, so
// deadlines computed from it lie centuries ahead and need no special case.
const InfiniteLease time.Duration = math.MaxInt64

// Lease is a lease the server acknowledged.
type Lease struct {
	// Prefix is the leased address with the length of the server's subnet
	// mask (option 1), or /32 when the server sent none.
	Prefix netip.Prefix
	// Server is the server identifier (option 54) of the acknowledging server.
	Server netip.Addr
	// Duration is the lease time (option 51); InfiniteLease for ever.
	Duration time.Duration
	// T1 and T2 are the renewal and rebinding times after Obtained: the
	// server's options 58 and 59, or 1/2 and 7/8 of Duration when absent or
	// inconsistent (RFC 2131 section 4.4.5).
	T1, T2 time.Duration
	// Obtained is when the ACK arrived; the times above count from here.
	Obtained time.Time
}

// Addr is the leased address.
func (l Lease) Addr() netip.Addr { return l.Prefix.Addr() }

// Valid reports whether l holds a lease (the zero Lease does not).
func (l Lease) Valid() bool { return l.Prefix.IsValid() }

// Infinite reports whether the lease never expires.
func (l Lease) Infinite() bool { return l.Duration == InfiniteLease }

// RenewAt is T1 as a point in time.
func (l Lease) RenewAt() time.Time { return l.Obtained.Add(l.T1) }

// RebindAt is T2 as a point in time.
func (l Lease) RebindAt() time.Time { return l.Obtained.Add(l.T2) }

// ExpiresAt is when the lease ends.
func (l Lease) ExpiresAt() time.Time { return l.Obtained.Add(l.Duration) }

// leaseTimes applies RFC 2131 section 4.4.5's defaults (T1 = 0.5, T2 =
// 0.875 of the lease) where the server sent nothing usable: a T2 beyond the
// lease, or a T1 beyond T2, would schedule renewal after it is too late.
func leaseTimes(lease, t1, t2 time.Duration) (time.Duration, time.Duration) {
	if t2 <= 0 || t2 > lease {
		t2 = lease / 8 * 7
	}
	if t1 <= 0 || t1 > t2 {
		t1 = min(lease/2, t2)
	}
	return t1, t2
}

// Defaults for the zero values of MachineConfig.
const (
	// DefaultMinLease is the shortest lease accepted without a warning: a
	// lease this short is lost by a DHCP server outage of half a minute.
	DefaultMinLease = 60 * time.Second
	// DefaultRetryMin and DefaultRetryMax bound the retransmission backoff
	// (RFC 2131 section 4.1: 4 s doubling to 64 s).
	DefaultRetryMin = 4 * time.Second
	DefaultRetryMax = 64 * time.Second
)

// Retransmissions before a state gives up its request and starts over
// (RFC 2131 leaves the number to the client).
const (
	requestTries = 4 // Requests for an offered address, then Discover again
	rebootTries  = 2 // Requests for a known address without offer, then Discover
)

// MachineConfig is the static configuration of a Machine.
type MachineConfig struct {
	// Want is the address the lease must be for: the VIP written in the
	// manifest. Zero (hapod init) accepts the first address offered and
	// then sticks to it. Offers and ACKs for another address are errors.
	Want netip.Addr
	// MinLease: a shorter lease is taken with an ErrShortLease warning
	// (default DefaultMinLease).
	MinLease time.Duration
	// RetryMin and RetryMax bound the retransmission backoff, which doubles
	// from RetryMin up to RetryMax and never passes T2 or the expiry
	// (defaults DefaultRetryMin, DefaultRetryMax).
	RetryMin, RetryMax time.Duration
}

func (c MachineConfig) withDefaults() MachineConfig {
	if c.MinLease <= 0 {
		c.MinLease = DefaultMinLease
	}
	if c.RetryMin <= 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax <= 0 {
		c.RetryMax = DefaultRetryMax
	}
	c.RetryMax = max(c.RetryMax, c.RetryMin)
	return c
}

// Input is an event fed to Machine.Step.
type Input interface{ isInput() }

// Activate: this node holds the VIP (VRRP active, or `hapod init`). Renew
// at once with the same identity, expecting the same address.
type Activate struct{}

// Deactivate: another node holds the VIP. Stay silent; the lease record is
// kept for the next Activate.
type Deactivate struct{}

// Tick tells the machine that NextDeadline has been reached.
type Tick struct{}

// OfferReceived is a DHCPOFFER for this client.
type OfferReceived struct {
	Addr   netip.Addr
	Server netip.Addr
}

// AckReceived is a DHCPACK for this client.
type AckReceived struct {
	Addr netip.Addr
	// PrefixLen is the subnet mask's length (option 1), -1 when absent.
	PrefixLen int
	Server    netip.Addr
	// Lease is option 51 (InfiniteLease for 0xffffffff); T1 and T2 are
	// options 58 and 59, 0 when absent.
	Lease, T1, T2 time.Duration
}

// NakReceived is a DHCPNAK for this client.
type NakReceived struct {
	Server netip.Addr
	// Message is option 56, the server's reason, if any.
	Message string
}

func (Activate) isInput()      {}
func (Deactivate) isInput()    {}
func (Tick) isInput()          {}
func (OfferReceived) isInput() {}
func (AckReceived) isInput()   {}
func (NakReceived) isInput()   {}

// Action is a side effect Machine.Step asks the driver to perform, in order.
type Action interface{ isAction() }

// MessageType is the kind of message a Send action asks for.
type MessageType int

// The messages a client sends. It never sends DHCPRELEASE (the lease
// outlives every node) nor DHCPDECLINE (the address is the VIP: "in use"
// means held by a node of this cluster).
const (
	MessageInvalid MessageType = iota
	MessageDiscover
	MessageRequest
)

// String names the message type as RFC 2131 does.
func (t MessageType) String() string {
	switch t {
	case MessageDiscover:
		return "DHCPDISCOVER"
	case MessageRequest:
		return "DHCPREQUEST"
	default:
		return fmt.Sprintf("MessageType(%d)", int(t))
	}
}

// Message is what to send, without the identity and transaction ID, which
// the driver adds.
type Message struct {
	Type MessageType
	// Requested is option 50 (the requested address); zero for none.
	Requested netip.Addr
	// Server is option 54 (server identifier); zero for none.
	Server netip.Addr
}

// String describes the message for logs.
func (m Message) String() string {
	s := m.Type.String()
	if m.Requested.IsValid() {
		s += " for " + m.Requested.String()
	}
	if m.Server.IsValid() {
		s += " to server " + m.Server.String()
	}
	return s
}

// Send asks the driver to broadcast a message.
type Send struct{ Message Message }

// Transition reports a state change with a reason written for humans.
type Transition struct {
	From, To State
	Reason   string
}

// Leased reports a lease granted or extended.
type Leased struct{ Lease Lease }

// Severity grades an Alert.
type Severity int

// Alert severities.
const (
	// Warning: the lease is fine for now, but not for long if this goes on.
	Warning Severity = iota + 1
	// Error: the VIP is at risk or its lease is gone; Machine.Problem
	// returns it until the next good ACK.
	Error
)

// String returns "warning" or "error".
func (s Severity) String() string {
	switch s {
	case Warning:
		return "warning"
	case Error:
		return "error"
	default:
		return fmt.Sprintf("Severity(%d)", int(s))
	}
}

// Alert reports something an operator must hear about. Err wraps one of
// ErrNak, ErrDifferentAddress, ErrLeaseExpired (errors), ErrShortLease or
// ErrNoReply (warnings).
type Alert struct {
	Severity Severity
	Err      error
}

func (Send) isAction()       {}
func (Transition) isAction() {}
func (Leased) isAction()     {}
func (Alert) isAction()      {}

// Machine is the lease state machine of one VIP. It is pure: it never reads
// the clock or touches the network; the driver passes the current time with
// every input and performs the returned actions. It is not safe for
// concurrent use.
type Machine struct {
	cfg    MachineConfig
	state  State
	active bool
	want   netip.Addr
	lease  Lease // the last lease granted; zero before the first

	// The address offered in Selecting (or Expired) and its server, until
	// it is acknowledged or its Requests give up.
	offer, offerServer netip.Addr
	offerTries         int

	attempts int       // messages sent since the state was entered
	nextAt   time.Time // next (re)transmission
	problem  error     // the last Error alert, until a good ACK
}

// NewMachine returns a machine in StateInit, inactive.
func NewMachine(cfg MachineConfig) *Machine {
	cfg = cfg.withDefaults()
	return &Machine{cfg: cfg, state: StateInit, want: cfg.Want}
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Active reports whether the machine may send (between Activate and
// Deactivate).
func (m *Machine) Active() bool { return m.active }

// Lease returns the last lease granted (Valid false before the first). In
// states past Bound it may be running out or expired; see State.
func (m *Machine) Lease() Lease { return m.lease }

// Want returns the address the machine insists on: the configured one, or
// the first one leased.
func (m *Machine) Want() netip.Addr { return m.want }

// Problem returns the last Error alert (NAK, different address, expiry)
// until a good ACK clears it; nil when all is well.
func (m *Machine) Problem() error { return m.problem }

// NextDeadline returns when the driver must call Step with Tick, or the
// zero time when no timer runs (inactive, Init, or an infinite lease).
func (m *Machine) NextDeadline() time.Time {
	if !m.active {
		return time.Time{}
	}
	switch m.state {
	case StateBound:
		if m.lease.Infinite() {
			return time.Time{}
		}
		return m.lease.RenewAt()
	case StateSelecting, StateRequesting, StateRenewing, StateRebinding, StateExpired:
		return m.nextAt
	default:
		return time.Time{}
	}
}

// Step feeds one input at time now and returns the actions to perform, in
// order. A Transition comes first so logs precede its effects.
func (m *Machine) Step(now time.Time, in Input) []Action {
	switch in := in.(type) {
	case Activate:
		if m.active {
			return nil
		}
		m.active = true
		return m.resume(now)
	case Deactivate:
		// Silence at once: the new active node renews with this identity,
		// and two nodes talking for one client only confuse the server.
		m.active = false
		m.nextAt = time.Time{}
		m.clearOffer()
		return nil
	case Tick:
		if !m.active {
			return nil
		}
		return m.tick(now)
	case OfferReceived:
		if !m.active {
			return nil
		}
		return m.offered(now, in)
	case AckReceived:
		if !m.active {
			return nil
		}
		return m.acked(now, in)
	case NakReceived:
		if !m.active {
			return nil
		}
		return m.naked(now, in)
	default:
		return nil
	}
}

// resume starts talking after Activate, from what the lease record says.
func (m *Machine) resume(now time.Time) []Action {
	const reason = "activated: renewing at once"
	switch {
	case m.lease.Valid() && now.Before(m.lease.RebindAt()):
		return append(m.enter(StateRenewing, reason), m.send(now)...)
	case m.lease.Valid() && now.Before(m.lease.ExpiresAt()):
		return append(m.enter(StateRebinding, reason), m.send(now)...)
	case m.lease.Valid():
		return m.expire(now)
	case m.want.IsValid():
		// INIT-REBOOT: a node that never saw the lease asks for the VIP.
		return append(m.enter(StateRequesting, "activated: requesting "+m.want.String()), m.send(now)...)
	default:
		return append(m.enter(StateSelecting, "activated: discovering"), m.send(now)...)
	}
}

func (m *Machine) enter(s State, reason string) []Action {
	from := m.state
	m.state = s
	m.attempts = 0
	if from == s {
		return nil
	}
	return []Action{Transition{From: from, To: s, Reason: reason}}
}

// message is what the current state sends next.
func (m *Machine) message() Message {
	switch m.state {
	case StateSelecting:
		// The VIP as a hint: a server may offer it again (RFC 2131 4.4.1).
		return Message{Type: MessageDiscover, Requested: m.want}
	case StateRequesting:
		if m.offer.IsValid() {
			return Message{Type: MessageRequest, Requested: m.offer, Server: m.offerServer}
		}
		return Message{Type: MessageRequest, Requested: m.want}
	case StateRenewing:
		return Message{Type: MessageRequest, Requested: m.lease.Addr(), Server: m.lease.Server}
	case StateRebinding:
		return Message{Type: MessageRequest, Requested: m.lease.Addr()}
	case StateExpired:
		if m.offer.IsValid() {
			return Message{Type: MessageRequest, Requested: m.offer, Server: m.offerServer}
		}
		// Alternate: a server that kept the lease ACKs the Request; one
		// that forgot it stays silent (RFC 2131 4.3.2) but may offer the
		// address again to a Discover.
		if m.attempts%2 == 0 {
			return Message{Type: MessageRequest, Requested: m.want}
		}
		return Message{Type: MessageDiscover, Requested: m.want}
	default:
		return Message{}
	}
}

// send emits the current state's message and schedules its retransmission.
func (m *Machine) send(now time.Time) []Action {
	msg := m.message()
	if m.offer.IsValid() {
		m.offerTries++
	}
	m.attempts++
	next := now.Add(m.backoff())
	switch m.state {
	case StateRenewing:
		next = minTime(next, m.lease.RebindAt())
	case StateRebinding:
		next = minTime(next, m.lease.ExpiresAt())
	}
	m.nextAt = next
	return []Action{Send{Message: msg}}
}

// backoff is the wait after the attempts-th message of a state.
func (m *Machine) backoff() time.Duration {
	d := m.cfg.RetryMin
	for i := 1; i < m.attempts && d < m.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, m.cfg.RetryMax)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (m *Machine) tick(now time.Time) []Action {
	switch m.state {
	case StateBound:
		switch {
		case m.lease.Infinite() || now.Before(m.lease.RenewAt()):
			return nil
		case !now.Before(m.lease.ExpiresAt()):
			return m.expire(now) // the driver slept through T1 and T2
		case !now.Before(m.lease.RebindAt()):
			return append(m.enter(StateRebinding, "T2 reached"), m.send(now)...)
		}
		return append(m.enter(StateRenewing, "T1 reached"), m.send(now)...)
	case StateRenewing:
		if !now.Before(m.lease.ExpiresAt()) {
			return m.expire(now)
		}
		if !now.Before(m.lease.RebindAt()) {
			reason := fmt.Sprintf("T2 reached without a reply from server %s", m.lease.Server)
			acts := m.enter(StateRebinding, reason)
			acts = append(acts, Alert{Severity: Warning, Err: fmt.Errorf("%w: server %s did not renew %s since T1; asking any server until the lease ends at %s",
				ErrNoReply, m.lease.Server, m.lease.Addr(), m.lease.ExpiresAt().Format(time.RFC3339))})
			return append(acts, m.send(now)...)
		}
		return m.retransmit(now)
	case StateRebinding:
		if !now.Before(m.lease.ExpiresAt()) {
			return m.expire(now)
		}
		return m.retransmit(now)
	case StateRequesting:
		if now.Before(m.nextAt) {
			return nil
		}
		tries := rebootTries
		if m.offer.IsValid() {
			tries = requestTries
		}
		if m.attempts >= tries {
			what := "no ACK for " + m.message().Requested.String()
			m.clearOffer()
			acts := m.enter(StateSelecting, what+": discovering again")
			if m.want.IsValid() && !m.lease.Valid() {
				// A lease the node knows of is reported when it ends; one
				// it never saw, only here: it may already have ended.
				err := fmt.Errorf("%w: %s, taken over without its lease, was not acknowledged by any DHCP server after %d requests; asking again",
					ErrNoLease, m.want, tries)
				m.problem = err
				acts = append(acts, Alert{Severity: Error, Err: err})
			}
			return append(acts, m.send(now)...)
		}
		return m.retransmit(now)
	case StateExpired:
		if now.Before(m.nextAt) {
			return nil
		}
		if m.offer.IsValid() && m.offerTries >= requestTries {
			m.clearOffer()
		}
		return m.retransmit(now)
	case StateSelecting:
		return m.retransmit(now)
	default:
		return nil
	}
}

// retransmit sends again when the retransmission time has come, with a
// warning after the first unanswered message of a state.
func (m *Machine) retransmit(now time.Time) []Action {
	if now.Before(m.nextAt) {
		return nil
	}
	var acts []Action
	if m.attempts == 1 {
		acts = append(acts, Alert{Severity: Warning, Err: fmt.Errorf("%w to %s (%s), retrying", ErrNoReply, m.message(), m.state)})
	}
	return append(acts, m.send(now)...)
}

func (m *Machine) expire(now time.Time) []Action {
	m.clearOffer()
	err := fmt.Errorf("%w: %s, leased from %s, ended at %s without a renewal", ErrLeaseExpired,
		m.lease.Addr(), m.lease.Server, m.lease.ExpiresAt().Format(time.RFC3339))
	m.problem = err
	acts := m.enter(StateExpired, "lease time over")
	acts = append(acts, Alert{Severity: Error, Err: err})
	return append(acts, m.send(now)...)
}

func (m *Machine) clearOffer() {
	m.offer, m.offerServer, m.offerTries = netip.Addr{}, netip.Addr{}, 0
}

func (m *Machine) offered(now time.Time, o OfferReceived) []Action {
	if m.state != StateSelecting && m.state != StateExpired {
		return nil
	}
	if m.want.IsValid() && o.Addr != m.want {
		err := fmt.Errorf("%w: server %s offered %s, the VIP is %s; not taking it", ErrDifferentAddress, o.Server, o.Addr, m.want)
		m.problem = err
		return []Action{Alert{Severity: Error, Err: err}}
	}
	m.offer, m.offerServer, m.offerTries = o.Addr, o.Server, 0
	if m.state == StateExpired {
		return m.send(now)
	}
	reason := fmt.Sprintf("offer of %s from %s", o.Addr, o.Server)
	return append(m.enter(StateRequesting, reason), m.send(now)...)
}

func (m *Machine) acked(now time.Time, a AckReceived) []Action {
	switch m.state {
	case StateRequesting, StateRenewing, StateRebinding, StateExpired:
	default:
		return nil // a duplicate or a reply to a request given up on
	}
	if m.want.IsValid() && a.Addr != m.want {
		err := fmt.Errorf("%w: server %s acknowledged %s, the VIP is %s; keeping the VIP", ErrDifferentAddress, a.Server, a.Addr, m.want)
		m.problem = err
		return []Action{Alert{Severity: Error, Err: err}}
	}
	d := a.Lease
	if d <= 0 {
		d = time.Second // the decoder rejects this; never divide a zero lease
	}
	t1, t2 := leaseTimes(d, a.T1, a.T2)
	bits := a.PrefixLen
	if bits < 0 || bits > 32 {
		bits = 32
	}
	renewed := m.lease.Valid() && m.lease.Addr() == a.Addr
	m.lease = Lease{
		Prefix:   netip.PrefixFrom(a.Addr, bits),
		Server:   a.Server,
		Duration: d,
		T1:       t1,
		T2:       t2,
		Obtained: now,
	}
	m.want = a.Addr
	m.clearOffer()
	m.problem = nil
	m.nextAt = time.Time{}
	verb := "leased"
	if renewed {
		verb = "renewed"
	}
	reason := fmt.Sprintf("%s %s from %s for %s", verb, a.Addr, a.Server, leaseString(d))
	acts := m.enter(StateBound, reason)
	acts = append(acts, Leased{Lease: m.lease})
	if d < m.cfg.MinLease {
		acts = append(acts, Alert{Severity: Warning, Err: fmt.Errorf("%w: server %s leases %s for %s (minimum %s): a DHCP server outage that long loses the VIP",
			ErrShortLease, a.Server, a.Addr, d, m.cfg.MinLease)})
	}
	return acts
}

func leaseString(d time.Duration) string {
	if d == InfiniteLease {
		return "ever"
	}
	return d.String()
}

func (m *Machine) naked(now time.Time, n NakReceived) []Action {
	var what netip.Addr
	switch m.state {
	case StateRequesting, StateRenewing, StateRebinding, StateExpired:
		what = m.message().Requested
	default:
		return nil
	}
	detail := ""
	if n.Message != "" {
		detail = fmt.Sprintf(" (%q)", n.Message)
	}
	err := fmt.Errorf("%w: server %s refused %s%s", ErrNak, n.Server, what, detail)
	m.problem = err
	acts := []Action{Alert{Severity: Error, Err: err}}
	switch m.state {
	case StateRequesting:
		// Start over, but not at once: a server that NAKs every Request
		// would otherwise get a storm.
		m.clearOffer()
		acts = append(acts, m.enter(StateSelecting, "NAK")...)
		m.nextAt = now.Add(m.cfg.RetryMin)
	case StateExpired:
		m.clearOffer()
	}
	// Renewing and Rebinding keep the address and their retransmission
	// schedule: the lease is valid until it expires, whatever one server
	// says, and the VIP never changes silently.
	return acts
}
