// Package membership decides which kube-apiservers hapod proxies to and,
// in unicast VRRP, which peers it advertises to: the static --backend
// list is the floor, the API server's own list of live apiservers adds
// members, and a member only leaves after it has been missing from that
// list for a grace period while the API answered.
//
// The Set is pure: no clock, no I/O. Its driver (Tracker) feeds it what
// the API said, or that it could not be reached, and applies the changes
// it returns to the proxy pool, the health checker and the VRRP peers.
// Nothing on the path to "the VIP is up" waits for it: a Set starts from
// the static list and the persisted one, and the API only ever adds to
// that until it has been reachable long enough to say who is gone.
package membership

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// DefaultGrace is how long a member must be missing from the API's list,
// with the API reachable all that time, before it is removed. A few
// minutes: an apiserver that restarts (upgrade, certificate renewal)
// leaves the list for tens of seconds and must not be dropped, while a
// machine that is gone for good should stop getting connections soon.
const DefaultGrace = 5 * time.Minute

// Reason says why a member was added or removed.
type Reason int

// The reasons. The zero value is invalid.
const (
	// ReasonStatic: a --backend, present from the start and never removed.
	ReasonStatic Reason = iota + 1
	// ReasonPersisted: in the set a previous run saved, so a restart
	// during an API outage starts with what was known.
	ReasonPersisted
	// ReasonDiscovered: listed by the API server.
	ReasonDiscovered
	// ReasonGone: missing from the API's list for the grace period.
	ReasonGone
)

func (r Reason) String() string {
	switch r {
	case ReasonStatic:
		return "static"
	case ReasonPersisted:
		return "persisted"
	case ReasonDiscovered:
		return "discovered"
	case ReasonGone:
		return "gone"
	}
	return "invalid"
}

// Change is one member added or removed, and why.
type Change struct {
	Member netip.AddrPort
	Added  bool
	Reason Reason
}

// Input is what the driver tells a Set: Observed, Unreachable or Tick.
type Input interface{ input() }

// Observed is a successful read of the API's list of live apiservers.
type Observed struct {
	Members []netip.AddrPort
}

// Unreachable is a failed read: no apiserver answered, or the answer was
// refused. Removal waits until the API answers again.
type Unreachable struct {
	Err error
}

// Tick is time passing; Step(now, Tick{}) removes members whose grace
// period ended by now.
type Tick struct{}

func (Observed) input()    {}
func (Unreachable) input() {}
func (Tick) input()        {}

// Config configures a Set.
type Config struct {
	// Static are the --backend addresses: the bootstrap set and the
	// floor, never removed.
	Static []netip.AddrPort
	// Grace is how long a member must be missing from the list, with the
	// API reachable, before it is removed (default DefaultGrace).
	Grace time.Duration
}

// Member is one member's state, for status pages.
type Member struct {
	Addr netip.AddrPort
	// Static members are never removed.
	Static bool
	// Reason is why it was added.
	Reason Reason
	// Since is when it was added.
	Since time.Time
	// MissingSince is when the API's list stopped showing it; zero while
	// it is listed (or static, or the API is unreachable).
	MissingSince time.Time
	// RemoveAt is when it will be removed if still missing; zero when no
	// removal is pending.
	RemoveAt time.Time
}

type member struct {
	static  bool
	reason  Reason
	since   time.Time
	missing time.Time // zero: listed, or no reachable API since it was
}

// Set is the membership. Not safe for concurrent use: the Tracker owns it.
type Set struct {
	grace     time.Duration
	members   map[netip.AddrPort]*member
	reachable bool
}

// New returns a Set holding the static members and the persisted ones,
// and the changes that made it (one addition each), for logging.
func New(cfg Config, now time.Time, persisted []netip.AddrPort) (*Set, []Change) {
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	s := &Set{grace: cfg.Grace, members: make(map[netip.AddrPort]*member)}
	var out []Change
	for _, a := range cfg.Static {
		if _, dup := s.members[a]; dup || !a.IsValid() {
			continue
		}
		s.members[a] = &member{static: true, reason: ReasonStatic, since: now}
		out = append(out, Change{Member: a, Added: true, Reason: ReasonStatic})
	}
	for _, a := range persisted {
		if _, dup := s.members[a]; dup || !a.IsValid() {
			continue
		}
		s.members[a] = &member{reason: ReasonPersisted, since: now}
		out = append(out, Change{Member: a, Added: true, Reason: ReasonPersisted})
	}
	sortChanges(out)
	return s, out
}

// Step feeds one input at time now and returns the changes it caused,
// sorted by address (additions and removals are independent).
//
// The rules:
//   - Observed adds every listed member that is not in the set at once,
//     and starts the grace period of every non-static member it does not
//     list (a member listed again stops it).
//   - An Observed list with no member says nothing: an apiserver answered,
//     so at least one is alive, and an empty list is a reconciler that
//     has not run yet, not a cluster without apiservers. It is ignored.
//   - Unreachable stops every grace period: the full period starts again
//     when the API answers. An unreachable API never shrinks the set.
//   - Tick, and any input, removes the members whose grace period ended,
//     only while the last read succeeded. Static members are never
//     removed.
func (s *Set) Step(now time.Time, in Input) []Change {
	var out []Change
	switch in := in.(type) {
	case Observed:
		if len(in.Members) == 0 {
			break
		}
		s.reachable = true
		listed := make(map[netip.AddrPort]bool, len(in.Members))
		for _, a := range in.Members {
			if !a.IsValid() {
				continue
			}
			listed[a] = true
			if m := s.members[a]; m != nil {
				m.missing = time.Time{}
				continue
			}
			s.members[a] = &member{reason: ReasonDiscovered, since: now}
			out = append(out, Change{Member: a, Added: true, Reason: ReasonDiscovered})
		}
		for a, m := range s.members {
			if !m.static && !listed[a] && m.missing.IsZero() {
				m.missing = now
			}
		}
	case Unreachable:
		s.reachable = false
		for _, m := range s.members {
			m.missing = time.Time{}
		}
	}
	out = append(out, s.expire(now)...)
	sortChanges(out)
	return out
}

// expire removes the members whose grace period ended by now.
func (s *Set) expire(now time.Time) []Change {
	if !s.reachable {
		return nil
	}
	var out []Change
	for a, m := range s.members {
		if m.static || m.missing.IsZero() || now.Before(m.missing.Add(s.grace)) {
			continue
		}
		delete(s.members, a)
		out = append(out, Change{Member: a, Added: false, Reason: ReasonGone})
	}
	return out
}

// NextDeadline is when the next removal is due, or zero when none is
// pending: the driver calls Step(deadline, Tick{}) then.
func (s *Set) NextDeadline() time.Time {
	if !s.reachable {
		return time.Time{}
	}
	var next time.Time
	for _, m := range s.members {
		if m.static || m.missing.IsZero() {
			continue
		}
		if at := m.missing.Add(s.grace); next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next
}

// Addrs returns the members' addresses, sorted.
func (s *Set) Addrs() []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(s.members))
	for a := range s.members {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}

// Discovered returns the members that are not static, sorted: what is
// worth persisting (the static ones are in the manifest already).
func (s *Set) Discovered() []netip.AddrPort {
	var out []netip.AddrPort
	for a, m := range s.members {
		if !m.static {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}

// Members returns every member's state, sorted by address.
func (s *Set) Members() []Member {
	out := make([]Member, 0, len(s.members))
	for a, m := range s.members {
		mm := Member{Addr: a, Static: m.static, Reason: m.reason, Since: m.since, MissingSince: m.missing}
		if s.reachable && !m.static && !m.missing.IsZero() {
			mm.RemoveAt = m.missing.Add(s.grace)
		}
		out = append(out, mm)
	}
	slices.SortFunc(out, func(a, b Member) int { return a.Addr.Compare(b.Addr) })
	return out
}

// Reachable reports whether the last read of the API succeeded.
func (s *Set) Reachable() bool { return s.reachable }

func sortChanges(cs []Change) {
	slices.SortFunc(cs, func(a, b Change) int {
		if c := a.Member.Compare(b.Member); c != 0 {
			return c
		}
		return cmp.Compare(a.Reason, b.Reason)
	})
}

// Peers returns the unicast VRRP peers the members imply: the static
// peers, then the address of every member of self's family that is not
// self, without duplicates. An apiserver's advertise address is its
// node's address, which in unicast mode is where that node's speaker
// listens.
func Peers(static []netip.Addr, members []netip.AddrPort, self netip.Addr) []netip.Addr {
	self = self.Unmap().WithZone("")
	seen := map[netip.Addr]bool{self: true}
	var out []netip.Addr
	add := func(a netip.Addr) {
		a = a.Unmap().WithZone("")
		if !a.IsValid() || seen[a] || a.Is4() != self.Is4() || a.IsLoopback() {
			return
		}
		seen[a] = true
		out = append(out, a)
	}
	for _, a := range static {
		add(a)
	}
	for _, m := range members {
		add(m.Addr())
	}
	return out
}
