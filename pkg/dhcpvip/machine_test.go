package dhcpvip

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var (
	t0      = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	vip     = netip.MustParseAddr("198.18.0.150")
	other   = netip.MustParseAddr("198.18.0.151")
	server  = netip.MustParseAddr("198.18.0.10")
	server2 = netip.MustParseAddr("198.18.0.11")
)

// at is t0 plus d: scripts read as "at 60s".
func at(d time.Duration) time.Time { return t0.Add(d) }

func ack(addr netip.Addr, lease, t1, t2 time.Duration) AckReceived {
	return AckReceived{Addr: addr, PrefixLen: 24, Server: server, Lease: lease, T1: t1, T2: t2}
}

func discover(hint netip.Addr) Send {
	return Send{Message{Type: MessageDiscover, Requested: hint}}
}

func request(addr, srv netip.Addr) Send {
	return Send{Message{Type: MessageRequest, Requested: addr, Server: srv}}
}

func trans(from, to State) Transition { return Transition{From: from, To: to} }

func alert(s Severity, err error) Alert { return Alert{Severity: s, Err: err} }

// sameActions compares actions: Transitions by states (and a non-empty
// reason), Alerts by severity and errors.Is, the rest exactly.
func sameActions(got, want []Action) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d actions %v, want %d %v", len(got), describe(got), len(want), describe(want))
	}
	for i := range got {
		switch w := want[i].(type) {
		case Transition:
			g, ok := got[i].(Transition)
			if !ok || g.From != w.From || g.To != w.To || g.Reason == "" {
				return fmt.Errorf("action %d: got %v, want %v", i, describe(got[i:i+1]), describe(want[i:i+1]))
			}
		case Alert:
			g, ok := got[i].(Alert)
			if !ok || g.Severity != w.Severity || !errors.Is(g.Err, w.Err) {
				return fmt.Errorf("action %d: got %v, want %v", i, describe(got[i:i+1]), describe(want[i:i+1]))
			}
		default:
			if got[i] != want[i] {
				return fmt.Errorf("action %d: got %v, want %v", i, describe(got[i:i+1]), describe(want[i:i+1]))
			}
		}
	}
	return nil
}

func describe(acts []Action) string {
	var s []string
	for _, a := range acts {
		switch a := a.(type) {
		case Send:
			s = append(s, "Send("+a.Message.String()+")")
		case Transition:
			s = append(s, fmt.Sprintf("%s->%s(%s)", a.From, a.To, a.Reason))
		case Alert:
			s = append(s, fmt.Sprintf("%s(%v)", a.Severity, a.Err))
		default:
			s = append(s, fmt.Sprintf("%T%+v", a, a))
		}
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// step is one line of a script: at this time, this input gives these
// actions, and leaves this state and next deadline (never: zero).
type step struct {
	at    time.Duration
	in    Input
	want  []Action
	state State
	next  time.Duration // from t0; never for none
}

const never time.Duration = -1

func run(t *testing.T, m *Machine, script []step) {
	t.Helper()
	for i, s := range script {
		got := m.Step(at(s.at), s.in)
		if err := sameActions(got, s.want); err != nil {
			t.Fatalf("step %d (%T at %v): %v", i, s.in, s.at, err)
		}
		if m.State() != s.state {
			t.Fatalf("step %d (%T at %v): state %s, want %s", i, s.in, s.at, m.State(), s.state)
		}
		wantNext := time.Time{}
		if s.next != never {
			wantNext = at(s.next)
		}
		if !m.NextDeadline().Equal(wantNext) {
			t.Fatalf("step %d (%T at %v): next deadline %v, want %v", i, s.in, s.at, m.NextDeadline().Sub(t0), s.next)
		}
	}
}

func leased(addr netip.Addr, obtained time.Duration, lease, t1, t2 time.Duration) Leased {
	return Leased{Lease{Prefix: netip.PrefixFrom(addr, 24), Server: server, Duration: lease, T1: t1, T2: t2, Obtained: at(obtained)}}
}

// bound returns a machine that leased vip at t0 for 120 s (T1 60 s, T2 105 s).
func bound(t *testing.T) *Machine {
	t.Helper()
	m := NewMachine(MachineConfig{})
	run(t, m, []step{
		{0, Activate{}, []Action{trans(StateInit, StateSelecting), discover(netip.Addr{})}, StateSelecting, 4 * time.Second},
		{0, OfferReceived{Addr: vip, Server: server}, []Action{trans(StateSelecting, StateRequesting), request(vip, server)}, StateRequesting, 4 * time.Second},
		{0, ack(vip, 120*time.Second, 0, 0), []Action{trans(StateRequesting, StateBound), leased(vip, 0, 120*time.Second, 60*time.Second, 105*time.Second)}, StateBound, 60 * time.Second},
	})
	return m
}

func TestMachineAcquire(t *testing.T) {
	m := bound(t)
	if m.Want() != vip || m.Problem() != nil || !m.Lease().Valid() {
		t.Fatalf("want %v problem %v lease %+v", m.Want(), m.Problem(), m.Lease())
	}
	if got := m.Lease().Prefix; got != netip.MustParsePrefix("198.18.0.150/24") {
		t.Fatalf("prefix %v", got)
	}
}

func TestMachineRenewAtT1(t *testing.T) {
	m := bound(t)
	run(t, m, []step{
		{59 * time.Second, Tick{}, nil, StateBound, 60 * time.Second}, // early tick: nothing
		{60 * time.Second, Tick{}, []Action{trans(StateBound, StateRenewing), request(vip, server)}, StateRenewing, 64 * time.Second},
		{61 * time.Second, ack(vip, 120*time.Second, 0, 0), []Action{trans(StateRenewing, StateBound), leased(vip, 61*time.Second, 120*time.Second, 60*time.Second, 105*time.Second)}, StateBound, 121 * time.Second},
	})
}

func TestMachineServerGoneKeepsLeaseUntilExpiry(t *testing.T) {
	m := bound(t)
	noReply := alert(Warning, ErrNoReply)
	run(t, m, []step{
		{60 * time.Second, Tick{}, []Action{trans(StateBound, StateRenewing), request(vip, server)}, StateRenewing, 64 * time.Second},
		// Backoff 4, 8, 16 s, then capped by T2 = 105 s.
		{64 * time.Second, Tick{}, []Action{noReply, request(vip, server)}, StateRenewing, 72 * time.Second},
		{72 * time.Second, Tick{}, []Action{request(vip, server)}, StateRenewing, 88 * time.Second},
		{88 * time.Second, Tick{}, []Action{request(vip, server)}, StateRenewing, 105 * time.Second},
		// T2: broadcast without a server identifier, capped by the expiry.
		{105 * time.Second, Tick{}, []Action{trans(StateRenewing, StateRebinding), noReply, request(vip, netip.Addr{})}, StateRebinding, 109 * time.Second},
		{109 * time.Second, Tick{}, []Action{noReply, request(vip, netip.Addr{})}, StateRebinding, 117 * time.Second},
		{117 * time.Second, Tick{}, []Action{request(vip, netip.Addr{})}, StateRebinding, 120 * time.Second},
	})
	// Still the VIP's lease, no error: the lease is valid until it ends.
	if m.Lease().Addr() != vip || m.Problem() != nil {
		t.Fatalf("before expiry: lease %v problem %v", m.Lease().Addr(), m.Problem())
	}
	run(t, m, []step{
		{120 * time.Second, Tick{}, []Action{trans(StateRebinding, StateExpired), alert(Error, ErrLeaseExpired), request(vip, netip.Addr{})}, StateExpired, 124 * time.Second},
		// Expired alternates a Request and a Discover for the VIP.
		{124 * time.Second, Tick{}, []Action{noReply, discover(vip)}, StateExpired, 132 * time.Second},
		{132 * time.Second, Tick{}, []Action{request(vip, netip.Addr{})}, StateExpired, 148 * time.Second},
	})
	if !errors.Is(m.Problem(), ErrLeaseExpired) || m.Lease().Addr() != vip {
		t.Fatalf("after expiry: lease %v problem %v", m.Lease().Addr(), m.Problem())
	}
	// The server is back: the same address again, problem cleared.
	run(t, m, []step{
		{133 * time.Second, ack(vip, 120*time.Second, 0, 0), []Action{trans(StateExpired, StateBound), leased(vip, 133*time.Second, 120*time.Second, 60*time.Second, 105*time.Second)}, StateBound, 193 * time.Second},
	})
	if m.Problem() != nil {
		t.Fatalf("problem after the ACK: %v", m.Problem())
	}
}

func TestMachineBackoffCapsAtRetryMax(t *testing.T) {
	m := NewMachine(MachineConfig{RetryMin: time.Second, RetryMax: 5 * time.Second})
	run(t, m, []step{
		{0, Activate{}, []Action{trans(StateInit, StateSelecting), discover(netip.Addr{})}, StateSelecting, time.Second},
		{1 * time.Second, Tick{}, []Action{alert(Warning, ErrNoReply), discover(netip.Addr{})}, StateSelecting, 3 * time.Second},
		{3 * time.Second, Tick{}, []Action{discover(netip.Addr{})}, StateSelecting, 7 * time.Second},
		{7 * time.Second, Tick{}, []Action{discover(netip.Addr{})}, StateSelecting, 12 * time.Second},
		{12 * time.Second, Tick{}, []Action{discover(netip.Addr{})}, StateSelecting, 17 * time.Second},
	})
}

func TestMachineDriverSleptThroughTimers(t *testing.T) {
	// A suspended host wakes after T2 or after the expiry: no renewal
	// attempt that can no longer help, straight to the right state.
	m := bound(t)
	run(t, m, []step{
		{110 * time.Second, Tick{}, []Action{trans(StateBound, StateRebinding), request(vip, netip.Addr{})}, StateRebinding, 114 * time.Second},
	})
	m = bound(t)
	run(t, m, []step{
		{500 * time.Second, Tick{}, []Action{trans(StateBound, StateExpired), alert(Error, ErrLeaseExpired), request(vip, netip.Addr{})}, StateExpired, 504 * time.Second},
	})
}

func TestMachineNakWhileRenewingKeepsAddress(t *testing.T) {
	m := bound(t)
	run(t, m, []step{
		{60 * time.Second, Tick{}, []Action{trans(StateBound, StateRenewing), request(vip, server)}, StateRenewing, 64 * time.Second},
		{61 * time.Second, NakReceived{Server: server, Message: "wrong network"}, []Action{alert(Error, ErrNak)}, StateRenewing, 64 * time.Second},
	})
	if !errors.Is(m.Problem(), ErrNak) || m.Lease().Addr() != vip {
		t.Fatalf("problem %v lease %v", m.Problem(), m.Lease().Addr())
	}
	if !strings.Contains(m.Problem().Error(), "wrong network") {
		t.Fatalf("the server's reason is lost: %v", m.Problem())
	}
	// Retrying on schedule; a later ACK clears the problem.
	run(t, m, []step{
		{64 * time.Second, Tick{}, []Action{alert(Warning, ErrNoReply), request(vip, server)}, StateRenewing, 72 * time.Second},
		{65 * time.Second, ack(vip, 120*time.Second, 0, 0), []Action{trans(StateRenewing, StateBound), leased(vip, 65*time.Second, 120*time.Second, 60*time.Second, 105*time.Second)}, StateBound, 125 * time.Second},
	})
	if m.Problem() != nil {
		t.Fatal(m.Problem())
	}
}

func TestMachineDifferentAddressIsAnErrorAndIgnored(t *testing.T) {
	m := bound(t)
	run(t, m, []step{
		{60 * time.Second, Tick{}, []Action{trans(StateBound, StateRenewing), request(vip, server)}, StateRenewing, 64 * time.Second},
		{61 * time.Second, ack(other, 120*time.Second, 0, 0), []Action{alert(Error, ErrDifferentAddress)}, StateRenewing, 64 * time.Second},
	})
	if m.Lease().Addr() != vip || m.Lease().Obtained != t0 || !errors.Is(m.Problem(), ErrDifferentAddress) {
		t.Fatalf("lease %+v problem %v", m.Lease(), m.Problem())
	}
}

// unansweredTakeover: a node that took the VIP over without its lease
// asks for it twice (INIT-REBOOT), unanswered, then discovers, hinting the
// VIP, and reports that it knows no lease for it.
var unansweredTakeover = []step{
	{0, Activate{}, []Action{trans(StateInit, StateRequesting), request(vip, netip.Addr{})}, StateRequesting, 4 * time.Second},
	{4 * time.Second, Tick{}, []Action{alert(Warning, ErrNoReply), request(vip, netip.Addr{})}, StateRequesting, 12 * time.Second},
	{12 * time.Second, Tick{}, []Action{trans(StateRequesting, StateSelecting), alert(Error, ErrNoLease), discover(vip)}, StateSelecting, 16 * time.Second},
}

func TestMachineDifferentOfferNotRequested(t *testing.T) {
	m := NewMachine(MachineConfig{Want: vip})
	run(t, m, unansweredTakeover)
	run(t, m, []step{
		{13 * time.Second, OfferReceived{Addr: other, Server: server}, []Action{alert(Error, ErrDifferentAddress)}, StateSelecting, 16 * time.Second},
		{14 * time.Second, OfferReceived{Addr: vip, Server: server2}, []Action{trans(StateSelecting, StateRequesting), request(vip, server2)}, StateRequesting, 18 * time.Second},
	})
	if !errors.Is(m.Problem(), ErrDifferentAddress) {
		t.Fatal(m.Problem())
	}
}

// TestMachineTakenOverWithoutLease: a node that took the VIP over without
// ever seeing its lease, while no server answers, says so as a problem:
// it cannot tell whether the lease still runs. An ACK clears it.
func TestMachineTakenOverWithoutLease(t *testing.T) {
	m := NewMachine(MachineConfig{Want: vip})
	run(t, m, unansweredTakeover)
	if !errors.Is(m.Problem(), ErrNoLease) {
		t.Fatalf("problem %v", m.Problem())
	}
	run(t, m, []step{
		{16 * time.Second, Tick{}, []Action{alert(Warning, ErrNoReply), discover(vip)}, StateSelecting, 24 * time.Second},
		{17 * time.Second, OfferReceived{Addr: vip, Server: server}, []Action{trans(StateSelecting, StateRequesting), request(vip, server)}, StateRequesting, 21 * time.Second},
	})
	if !errors.Is(m.Problem(), ErrNoLease) {
		t.Fatalf("problem cleared by an offer: %v", m.Problem())
	}
	m.Step(t0.Add(18*time.Second), ack(vip, 120*time.Second, 0, 0))
	if m.State() != StateBound || m.Problem() != nil {
		t.Fatalf("after the ACK: state %v problem %v", m.State(), m.Problem())
	}
}

func TestMachineActivateDeactivate(t *testing.T) {
	m := bound(t)
	run(t, m, []step{
		// Backup: silent, no timers, replies ignored.
		{10 * time.Second, Deactivate{}, nil, StateBound, never},
		{60 * time.Second, Tick{}, nil, StateBound, never},
		{61 * time.Second, ack(vip, 120*time.Second, 0, 0), nil, StateBound, never},
		{61 * time.Second, NakReceived{Server: server}, nil, StateBound, never},
		// Active again before T2: renew at once, with the server identifier.
		{62 * time.Second, Activate{}, []Action{trans(StateBound, StateRenewing), request(vip, server)}, StateRenewing, 66 * time.Second},
		{62 * time.Second, Activate{}, nil, StateRenewing, 66 * time.Second}, // no duplicate
		{63 * time.Second, Deactivate{}, nil, StateRenewing, never},
		// Active after T2: rebind at once.
		{106 * time.Second, Activate{}, []Action{trans(StateRenewing, StateRebinding), request(vip, netip.Addr{})}, StateRebinding, 110 * time.Second},
		{107 * time.Second, Deactivate{}, nil, StateRebinding, never},
		// Active after the recorded expiry: expired, asking for the VIP.
		{200 * time.Second, Activate{}, []Action{trans(StateRebinding, StateExpired), alert(Error, ErrLeaseExpired), request(vip, netip.Addr{})}, StateExpired, 204 * time.Second},
	})
}

func TestMachineActivateBeforeT1RenewsAtOnce(t *testing.T) {
	// A fresh active node (the previous one died) never saw the lease:
	// it asks for the VIP at once with the same identity.
	m := NewMachine(MachineConfig{Want: vip})
	run(t, m, []step{
		{0, Deactivate{}, nil, StateInit, never},
		{0, Tick{}, nil, StateInit, never},
		{5 * time.Second, Activate{}, []Action{trans(StateInit, StateRequesting), request(vip, netip.Addr{})}, StateRequesting, 9 * time.Second},
		{6 * time.Second, ack(vip, 120*time.Second, 0, 0), []Action{trans(StateRequesting, StateBound), leased(vip, 6*time.Second, 120*time.Second, 60*time.Second, 105*time.Second)}, StateBound, 66 * time.Second},
	})
	// A bound node that becomes active again renews before T1.
	run(t, m, []step{
		{10 * time.Second, Deactivate{}, nil, StateBound, never},
		{20 * time.Second, Activate{}, []Action{trans(StateBound, StateRenewing), request(vip, server)}, StateRenewing, 24 * time.Second},
	})
}

func TestMachineNakWhileRequestingStartsOverLater(t *testing.T) {
	m := NewMachine(MachineConfig{})
	run(t, m, []step{
		{0, Activate{}, []Action{trans(StateInit, StateSelecting), discover(netip.Addr{})}, StateSelecting, 4 * time.Second},
		{1 * time.Second, OfferReceived{Addr: vip, Server: server}, []Action{trans(StateSelecting, StateRequesting), request(vip, server)}, StateRequesting, 5 * time.Second},
		{2 * time.Second, NakReceived{Server: server}, []Action{alert(Error, ErrNak), trans(StateRequesting, StateSelecting)}, StateSelecting, 6 * time.Second},
		{6 * time.Second, Tick{}, []Action{discover(netip.Addr{})}, StateSelecting, 10 * time.Second},
	})
}

func TestMachineRequestingGivesUpAfterTries(t *testing.T) {
	m := NewMachine(MachineConfig{RetryMin: time.Second, RetryMax: time.Second})
	run(t, m, []step{
		{0, Activate{}, []Action{trans(StateInit, StateSelecting), discover(netip.Addr{})}, StateSelecting, 1 * time.Second},
		{0, OfferReceived{Addr: vip, Server: server}, []Action{trans(StateSelecting, StateRequesting), request(vip, server)}, StateRequesting, 1 * time.Second},
		{1 * time.Second, Tick{}, []Action{alert(Warning, ErrNoReply), request(vip, server)}, StateRequesting, 2 * time.Second},
		{2 * time.Second, Tick{}, []Action{request(vip, server)}, StateRequesting, 3 * time.Second},
		{3 * time.Second, Tick{}, []Action{request(vip, server)}, StateRequesting, 4 * time.Second},
		{4 * time.Second, Tick{}, []Action{trans(StateRequesting, StateSelecting), discover(netip.Addr{})}, StateSelecting, 5 * time.Second},
	})
}

func TestMachineExpiredTakesOfferOfTheVIP(t *testing.T) {
	m := bound(t)
	run(t, m, []step{
		{10 * time.Second, Deactivate{}, nil, StateBound, never},
		{300 * time.Second, Activate{}, []Action{trans(StateBound, StateExpired), alert(Error, ErrLeaseExpired), request(vip, netip.Addr{})}, StateExpired, 304 * time.Second},
		{304 * time.Second, Tick{}, []Action{alert(Warning, ErrNoReply), discover(vip)}, StateExpired, 312 * time.Second},
		{305 * time.Second, OfferReceived{Addr: other, Server: server}, []Action{alert(Error, ErrDifferentAddress)}, StateExpired, 312 * time.Second},
		{306 * time.Second, OfferReceived{Addr: vip, Server: server2}, []Action{request(vip, server2)}, StateExpired, 322 * time.Second},
		{307 * time.Second, AckReceived{Addr: vip, PrefixLen: 24, Server: server, Lease: time.Hour}, []Action{trans(StateExpired, StateBound), leased(vip, 307*time.Second, time.Hour, 30*time.Minute, 52*time.Minute+30*time.Second)}, StateBound, 307*time.Second + 30*time.Minute},
	})
}

func TestMachineNakWhileExpiredKeepsAsking(t *testing.T) {
	m := bound(t)
	run(t, m, []step{
		{10 * time.Second, Deactivate{}, nil, StateBound, never},
		{300 * time.Second, Activate{}, []Action{trans(StateBound, StateExpired), alert(Error, ErrLeaseExpired), request(vip, netip.Addr{})}, StateExpired, 304 * time.Second},
		{301 * time.Second, NakReceived{Server: server}, []Action{alert(Error, ErrNak)}, StateExpired, 304 * time.Second},
		{304 * time.Second, Tick{}, []Action{alert(Warning, ErrNoReply), discover(vip)}, StateExpired, 312 * time.Second},
	})
}

func TestMachineShortLeaseWarning(t *testing.T) {
	m := NewMachine(MachineConfig{Want: vip})
	run(t, m, []step{
		{0, Activate{}, []Action{trans(StateInit, StateRequesting), request(vip, netip.Addr{})}, StateRequesting, 4 * time.Second},
		{0, ack(vip, 30*time.Second, 0, 0), []Action{trans(StateRequesting, StateBound), leased(vip, 0, 30*time.Second, 15*time.Second, 26250*time.Millisecond), alert(Warning, ErrShortLease)}, StateBound, 15 * time.Second},
	})
	if m.Problem() != nil {
		t.Fatalf("a short lease is a warning, not a problem: %v", m.Problem())
	}
}

func TestMachineServerTimesHonoured(t *testing.T) {
	m := NewMachine(MachineConfig{Want: vip})
	run(t, m, []step{
		{0, Activate{}, []Action{trans(StateInit, StateRequesting), request(vip, netip.Addr{})}, StateRequesting, 4 * time.Second},
		{0, ack(vip, 120*time.Second, 5*time.Second, 8*time.Second), []Action{trans(StateRequesting, StateBound), leased(vip, 0, 120*time.Second, 5*time.Second, 8*time.Second)}, StateBound, 5 * time.Second},
		{5 * time.Second, Tick{}, []Action{trans(StateBound, StateRenewing), request(vip, server)}, StateRenewing, 8 * time.Second},
		{8 * time.Second, Tick{}, []Action{trans(StateRenewing, StateRebinding), alert(Warning, ErrNoReply), request(vip, netip.Addr{})}, StateRebinding, 12 * time.Second},
	})
}

func TestMachineInfiniteLease(t *testing.T) {
	m := NewMachine(MachineConfig{Want: vip})
	m.Step(t0, Activate{})
	acts := m.Step(t0, AckReceived{Addr: vip, PrefixLen: -1, Server: server, Lease: InfiniteLease})
	if m.State() != StateBound || !m.NextDeadline().IsZero() || !m.Lease().Infinite() {
		t.Fatalf("state %s next %v lease %+v (%v)", m.State(), m.NextDeadline(), m.Lease(), describe(acts))
	}
	if m.Lease().Prefix.Bits() != 32 {
		t.Fatalf("no mask should give /32, got %v", m.Lease().Prefix)
	}
	if got := m.Step(t0.Add(100*365*24*time.Hour), Tick{}); got != nil {
		t.Fatalf("infinite lease renewed: %v", describe(got))
	}
}

func TestMachineIgnoresStrayReplies(t *testing.T) {
	m := bound(t)
	for _, in := range []Input{
		OfferReceived{Addr: vip, Server: server},
		ack(vip, time.Hour, 0, 0),
		NakReceived{Server: server},
	} {
		if got := m.Step(at(time.Second), in); got != nil {
			t.Fatalf("%T in Bound: %v", in, describe(got))
		}
	}
	if m.State() != StateBound || m.Problem() != nil {
		t.Fatalf("state %s problem %v", m.State(), m.Problem())
	}
	idle := NewMachine(MachineConfig{})
	if got := idle.Step(t0, ack(vip, time.Hour, 0, 0)); got != nil || idle.State() != StateInit {
		t.Fatalf("ACK before Activate: %v", describe(got))
	}
}

func TestLeaseTimes(t *testing.T) {
	const L = 1000 * time.Second
	for _, tc := range []struct {
		name           string
		t1, t2         time.Duration
		wantT1, wantT2 time.Duration
	}{
		{"absent", 0, 0, 500 * time.Second, 875 * time.Second},
		{"both given", 100 * time.Second, 200 * time.Second, 100 * time.Second, 200 * time.Second},
		{"T2 beyond lease", 100 * time.Second, 2 * L, 100 * time.Second, 875 * time.Second},
		{"T1 beyond T2", 300 * time.Second, 200 * time.Second, 200 * time.Second, 200 * time.Second},
		{"only T2, below half", 0, 300 * time.Second, 300 * time.Second, 300 * time.Second},
		{"T2 equals lease", 0, L, 500 * time.Second, L},
	} {
		t1, t2 := leaseTimes(L, tc.t1, tc.t2)
		if t1 != tc.wantT1 || t2 != tc.wantT2 {
			t.Errorf("%s: got %v/%v, want %v/%v", tc.name, t1, t2, tc.wantT1, tc.wantT2)
		}
	}
}

// TestMachineRandomInputs checks invariants over random input sequences:
// nothing is sent while inactive, a Tick at the deadline moves it into the
// future (a driver never spins), and the kept address never changes once
// leased.
func TestMachineRandomInputs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for run := 0; run < 300; run++ {
		m := NewMachine(MachineConfig{RetryMin: time.Second, RetryMax: 8 * time.Second})
		now := t0
		var first netip.Addr
		for i := 0; i < 200; i++ {
			var in Input
			switch rng.IntN(8) {
			case 0:
				in = Activate{}
			case 1:
				in = Deactivate{}
			case 2:
				in = OfferReceived{Addr: []netip.Addr{vip, other}[rng.IntN(2)], Server: server}
			case 3:
				in = AckReceived{Addr: []netip.Addr{vip, other}[rng.IntN(2)], PrefixLen: 24, Server: server,
					Lease: time.Duration(1+rng.IntN(300)) * time.Second, T1: time.Duration(rng.IntN(400)) * time.Second, T2: time.Duration(rng.IntN(400)) * time.Second}
			case 4:
				in = NakReceived{Server: server}
			default:
				if d := m.NextDeadline(); !d.IsZero() && rng.IntN(2) == 0 {
					now = d
				} else {
					now = now.Add(time.Duration(rng.IntN(5000)) * time.Millisecond)
				}
				in = Tick{}
			}
			wasActive := m.Active()
			acts := m.Step(now, in)
			for _, a := range acts {
				if _, ok := a.(Send); ok && !m.Active() {
					t.Fatalf("run %d step %d: Send while inactive after %T", run, i, in)
				}
			}
			if _, ok := in.(Tick); ok && wasActive {
				if d := m.NextDeadline(); !d.IsZero() && !d.After(now) {
					t.Fatalf("run %d step %d: after a Tick at %v the deadline is %v (state %s)", run, i, now.Sub(t0), d.Sub(t0), m.State())
				}
			}
			if l := m.Lease(); l.Valid() {
				if !first.IsValid() {
					first = l.Addr()
				} else if l.Addr() != first {
					t.Fatalf("run %d step %d: address changed from %v to %v", run, i, first, l.Addr())
				}
			}
		}
	}
}

func TestStateStrings(t *testing.T) {
	for s := StateInvalid; s <= StateExpired+1; s++ {
		if s.String() == "" {
			t.Fatalf("state %d has no name", int(s))
		}
	}
	if b, _ := StateRebinding.MarshalText(); string(b) != "Rebinding" {
		t.Fatal(string(b))
	}
	if StateInvalid.String() != "Invalid(0)" || Warning.String() != "warning" || Error.String() != "error" {
		t.Fatal("names changed")
	}
}
