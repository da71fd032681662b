package status

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/dhcpvip"
	"github.com/hapod/hapod/pkg/health"
	"github.com/hapod/hapod/pkg/membership"
	"github.com/hapod/hapod/pkg/proxy"
	"github.com/hapod/hapod/pkg/redirect"
	"github.com/hapod/hapod/pkg/vip"
	"github.com/hapod/hapod/pkg/vrrp"
)

// Report is what /status serves as JSON and the page at / shows: one
// node's view of its virtual routers and VIPs, its backends and its recent
// events.
type Report struct {
	// Node is the host name.
	Node    string    `json:"node"`
	Version string    `json:"version,omitempty"`
	Time    time.Time `json:"time"`
	// Healthy is true when every router is fine (its VRRP runs, Backup
	// or Active; the kernel holds each of its VIPs exactly while it is
	// Active, give or take VIPSettle; its link carries VRRP; no other host
	// claimed one of its VIPs within ConflictRecent) and at least one
	// backend passes its health checks; Problems says why not, naming the
	// router's family.
	Healthy  bool     `json:"healthy"`
	Problems []string `json:"problems,omitempty"`
	// Interface is where the VIPs live and the adverts go.
	Interface string `json:"interface,omitempty"`
	// Routers are the virtual routers, one per address family, IPv4
	// first.
	Routers  []RouterReport  `json:"routers"`
	Proxy    ProxyReport     `json:"proxy"`
	Backends []BackendReport `json:"backends"`
	// DHCP is the VIP's lease, for a DHCP-leased VIP only.
	DHCP *DHCPReport `json:"dhcp,omitempty"`
	// Membership is where the backends and peers come from; absent when
	// not known.
	Membership *MembershipReport `json:"membership,omitempty"`
	// Redirect is the nftables redirect of VIP:--port to the proxy;
	// absent when the proxy listens on VIP:--port itself.
	Redirect *RedirectReport `json:"redirect,omitempty"`
	// Events are the recent state changes and warnings, newest first.
	Events []Event `json:"events"`
}

// RouterReport is one virtual router of a Report.
type RouterReport struct {
	Family config.Family `json:"family"`
	// State is Init, Backup or Active (a string: vrrp.State does not
	// decode from JSON, and `hapod status` reads this back).
	State   string `json:"state"`
	VRID    uint8  `json:"vrid"`
	Version int    `json:"version,omitempty"`
	// Address is this node's own address, the source of its adverts.
	Address netip.Addr `json:"address,omitzero"`
	// Since is when State was entered; LastReason why.
	Since        time.Time `json:"since"`
	SinceSeconds float64   `json:"sinceSeconds"`
	LastReason   string    `json:"lastReason,omitempty"`
	// ActiveRouter is the router heard (or, when Active, known) to hold
	// the VIPs; absent when unknown.
	ActiveRouter      netip.Addr        `json:"activeRouter,omitzero"`
	BasePriority      uint8             `json:"basePriority"`
	EffectivePriority uint8             `json:"effectivePriority"`
	AdvertsSent       uint64            `json:"advertsSent"`
	AdvertsReceived   uint64            `json:"advertsReceived"`
	Transitions       uint64            `json:"transitions"`
	Drops             map[string]uint64 `json:"drops,omitempty"`
	// Peers are the other routers heard advertising for this VRID, by
	// address (at most vrrp.MaxPeers, the longest silent forgotten first).
	Peers []PeerReport `json:"peers"`
	// VIPs are the addresses this router carries, in advert order.
	VIPs []VIPReport `json:"vips"`
}

// VIPReport is one VIP of a router.
type VIPReport struct {
	Prefix netip.Prefix `json:"prefix"`
	// Held is true when the VIP is on this node's interface: as the
	// kernel says (Holding) when known, as the speaker wants otherwise.
	Held bool `json:"held"`
	// Holding is the VIP as the kernel has it; absent when not known.
	Holding *HoldingReport `json:"holding,omitempty"`
}

// PeerReport is another router heard advertising for this VRID.
type PeerReport struct {
	Address netip.Addr `json:"address"`
	// Priority of its last advert; 0 means it said it was leaving.
	Priority        uint8   `json:"priority"`
	IntervalSeconds float64 `json:"intervalSeconds"`
	// LastHeard is when its last advert arrived; Adverts counts them.
	LastHeard           time.Time `json:"lastHeard"`
	LastHeardSecondsAgo float64   `json:"lastHeardSecondsAgo"`
	Adverts             uint64    `json:"adverts"`
	// Active: this node believes the peer holds the VIP (ActiveRouter).
	Active bool `json:"active,omitempty"`
}

// ProxyReport is the proxy part of a Report.
type ProxyReport struct {
	// Listen: the proxy's listening addresses.
	Listen []netip.AddrPort `json:"listen,omitempty"`
	// Active client connections now; Accepted since start.
	Active          int64  `json:"active"`
	Accepted        uint64 `json:"accepted"`
	Refused         uint64 `json:"refused"`
	NoBackend       uint64 `json:"noBackend"`
	Retries         uint64 `json:"retries"`
	HealthyBackends int    `json:"healthyBackends"`
}

// BackendReport is one backend in a Report.
type BackendReport struct {
	Address netip.AddrPort `json:"address"`
	// Health is "up", "down" or "unknown" (not checked yet).
	Health string `json:"health"`
	// Suspect: a recent dial failed; the proxy avoids it for a while.
	Suspect            bool      `json:"suspect,omitempty"`
	Checks             uint64    `json:"checks"`
	LastCheck          time.Time `json:"lastCheck,omitzero"`
	LastError          string    `json:"lastError,omitempty"`
	LastLatencySeconds float64   `json:"lastLatencySeconds"`
	ActiveConnections  int64     `json:"activeConnections"`
	TotalConnections   uint64    `json:"totalConnections"`
	BytesIn            uint64    `json:"bytesIn"`
	BytesOut           uint64    `json:"bytesOut"`
	ConnectFailures    uint64    `json:"connectFailures"`
}

// The values of BackendReport.Health.
const (
	HealthUp      = "up"
	HealthDown    = "down"
	HealthUnknown = "unknown"
)

// MembershipReport is the membership part of a Report: every member, and
// whether the API's list could be read.
type MembershipReport struct {
	// APIReachable: the last read of the list succeeded.
	APIReachable bool      `json:"apiReachable"`
	LastRead     time.Time `json:"lastRead,omitzero"`
	LastError    string    `json:"lastError,omitempty"`
	// Reads counts reads of the list by result (ok, error, denied).
	Reads   map[string]uint64 `json:"reads,omitempty"`
	Members []MemberReport    `json:"members"`
}

// MemberReport is one member.
type MemberReport struct {
	Address netip.AddrPort `json:"address"`
	// Source is why it is a member: static, persisted or discovered.
	Source string    `json:"source"`
	Since  time.Time `json:"since"`
	// RemoveAt is when it leaves unless the API lists it again.
	RemoveAt time.Time `json:"removeAt,omitzero"`
}

// Info is what a Monitor knows about the node from its configuration;
// what it knows of each router comes with the Router.
type Info struct {
	// Node is the host name.
	Node    string
	Version string
	// Interface is where the VIPs live and the adverts go.
	Interface string
}

// HoldingReport is the VIP as the kernel has it: what the Keeper saw and
// did.
type HoldingReport struct {
	// HeldForSeconds is how long the VIP has been (or has not been) on
	// the interface (VIPReport.Held says which).
	HeldForSeconds float64 `json:"heldForSeconds"`
	// LinkUp: the interface exists, is usable and carries this node's own
	// address; LinkReason says why or why not.
	LinkUp     bool   `json:"linkUp"`
	LinkReason string `json:"linkReason,omitempty"`
	// LastError is the last failure to add, remove or rebind.
	LastError string `json:"lastError,omitempty"`
	// Conflicts counts claims of the VIP by other hosts while this node
	// held it; LastConflictMAC and LastConflict are the latest.
	Conflicts       uint64    `json:"conflicts"`
	LastConflictMAC string    `json:"lastConflictMAC,omitempty"`
	LastConflict    time.Time `json:"lastConflict,omitzero"`
}

// VIPSettle is how long the kernel may disagree with the VRRP state
// before the node counts as unhealthy: an active node adds the VIP as it
// becomes active and again within milliseconds of a removal (netlink
// tells at once), and a node leaving Active removes it as it leaves. A
// second of disagreement is no longer a change in flight but a failure to
// act, and a client of the VIP is timing out meanwhile.
const VIPSettle = time.Second

// ConflictRecent is how long after another host last claimed the VIP the
// active node reports it as a problem. The active node asks every
// vip.ProbeInterval (a second), so a stale holder that is still there is
// seen again well within it.
const ConflictRecent = 5 * time.Second

// DHCPReport is the lease part of a Report.
type DHCPReport struct {
	// State is the lease state (Bound, Renewing, Rebinding, Expired...).
	State string `json:"state"`
	// Active is true while this node renews the lease (it holds the VIP).
	Active  bool         `json:"active"`
	Address netip.Prefix `json:"address,omitzero"`
	Server  netip.Addr   `json:"server,omitzero"`
	// Expires is when the last lease granted to this node runs out.
	Expires          time.Time `json:"expires,omitzero"`
	RemainingSeconds float64   `json:"remainingSeconds"`
	// Problem is the active lease's last error (NAK, different address,
	// expiry), empty when all is well.
	Problem string `json:"problem,omitempty"`
}

// RedirectReport is the redirect part of a Report.
type RedirectReport struct {
	// Endpoints are VIP:--port for every VIP, what clients use;
	// ListenPort is where the proxy listens on the VIPs; Table is hapod's
	// nftables table.
	Endpoints  []netip.AddrPort `json:"endpoints"`
	ListenPort uint16           `json:"listenPort"`
	Table      string           `json:"table"`
	// Installed is true while the rule sends the endpoint to the proxy;
	// otherwise VIP:--port reaches this node's own kube-apiserver.
	Installed bool `json:"installed"`
	// Reason is why it is installed or not (serving, no healthy backend,
	// ...); Since when Installed last changed.
	Reason       string    `json:"reason"`
	Since        time.Time `json:"since,omitzero"`
	SinceSeconds float64   `json:"sinceSeconds"`
	Changes      uint64    `json:"changes"`
	Failures     uint64    `json:"failures"`
	// Problem is the last change's error, empty once one succeeds.
	Problem string `json:"problem,omitempty"`
}

// RedirectSnapshot is the redirect as read at one moment.
type RedirectSnapshot struct {
	Spec  redirect.Spec
	State redirect.State
}

// Snapshot is everything a Report is made of, read at one moment. Zero
// parts are reported as such (a nil Health means no backend was checked).
type Snapshot struct {
	Routers []RouterSnapshot
	Proxy   proxy.Stats
	Health  []health.Result
	DHCP    *dhcpvip.Status
	// Membership is nil when no tracker reports.
	Membership *membership.Status
	// Redirect is nil when the proxy listens on VIP:--port itself.
	Redirect *RedirectSnapshot
	Events   []Event
}

// RouterSnapshot is one virtual router as read at one moment, with its
// configuration.
type RouterSnapshot struct {
	Family  config.Family
	VRID    uint8
	Version int
	Address netip.Addr
	VRRP    vrrp.Status
	Drops   map[vrrp.DropReason]uint64
	VIPs    []VIPSnapshot
}

// VIPSnapshot is one VIP of a router as read at one moment.
type VIPSnapshot struct {
	Prefix netip.Prefix
	// Kernel is nil when no Keeper reports (then Held is the speaker's).
	Kernel *vip.Status
}

// BuildReport assembles the Report of info and snap as of now. It is
// pure: the Monitor reads the snapshots, this decides what they mean.
func BuildReport(now time.Time, info Info, snap Snapshot) Report {
	r := Report{
		Node:      info.Node,
		Version:   info.Version,
		Time:      now,
		Interface: info.Interface,
		Routers:   []RouterReport{},
		Proxy: ProxyReport{
			Active:          snap.Proxy.Active,
			Accepted:        snap.Proxy.Accepted,
			Refused:         snap.Proxy.Refused,
			NoBackend:       snap.Proxy.NoBackend,
			Retries:         snap.Proxy.Retries,
			HealthyBackends: snap.Proxy.Healthy,
		},
		Backends: []BackendReport{},
		Events:   snap.Events,
	}
	if r.Events == nil {
		r.Events = []Event{}
	}
	for _, ln := range snap.Proxy.Listeners {
		r.Proxy.Listen = append(r.Proxy.Listen, ln.Addr)
	}
	for _, rs := range snap.Routers {
		r.Routers = append(r.Routers, routerReport(now, rs))
	}

	// Backends in the proxy's order, with the checker's view merged in;
	// a backend only the checker knows is still shown.
	checks := make(map[netip.AddrPort]health.Result, len(snap.Health))
	for _, h := range snap.Health {
		checks[h.Backend] = h
	}
	seen := make(map[netip.AddrPort]bool)
	add := func(addr netip.AddrPort, ps *proxy.BackendStats) {
		seen[addr] = true
		b := BackendReport{Address: addr, Health: HealthUnknown}
		if h, ok := checks[addr]; ok && h.Checks > 0 {
			b.Health = HealthDown
			if h.Healthy {
				b.Health = HealthUp
			}
			b.Checks = h.Checks
			b.LastCheck = h.LastCheck
			b.LastLatencySeconds = h.LastLatency.Seconds()
			if h.LastErr != nil {
				b.LastError = h.LastErr.Error()
			}
		}
		if ps != nil {
			b.Suspect = ps.Suspect
			b.ActiveConnections = ps.Active
			b.TotalConnections = ps.Total
			b.BytesIn, b.BytesOut = ps.BytesIn, ps.BytesOut
			b.ConnectFailures = ps.ConnectFailures
		}
		r.Backends = append(r.Backends, b)
	}
	for i := range snap.Proxy.Backends {
		add(snap.Proxy.Backends[i].Addr, &snap.Proxy.Backends[i])
	}
	for _, h := range snap.Health {
		if !seen[h.Backend] {
			add(h.Backend, nil)
		}
	}

	if d := snap.DHCP; d != nil {
		r.DHCP = &DHCPReport{State: d.State.String(), Active: d.Active}
		if d.Lease.Valid() {
			r.DHCP.Address, r.DHCP.Server = d.Lease.Prefix, d.Lease.Server
			r.DHCP.Expires = d.Lease.ExpiresAt()
			r.DHCP.RemainingSeconds = max(r.DHCP.Expires.Sub(now).Seconds(), 0)
		}
		if err := d.Healthy(); err != nil {
			r.DHCP.Problem = err.Error()
		}
	}
	if m := snap.Membership; m != nil {
		r.Membership = &MembershipReport{
			APIReachable: m.Reachable,
			LastRead:     m.LastRead,
			LastError:    m.LastErr,
			Members:      []MemberReport{},
		}
		if len(m.Reads) > 0 {
			r.Membership.Reads = make(map[string]uint64, len(m.Reads))
			for k, n := range m.Reads {
				r.Membership.Reads[string(k)] = n
			}
		}
		for _, mm := range m.Members {
			r.Membership.Members = append(r.Membership.Members, MemberReport{
				Address: mm.Addr, Source: mm.Reason.String(), Since: mm.Since, RemoveAt: mm.RemoveAt,
			})
		}
	}
	if rd := snap.Redirect; rd != nil && len(rd.Spec.VIPs) > 0 {
		st := rd.State
		var endpoints []netip.AddrPort
		for _, v := range rd.Spec.VIPs {
			endpoints = append(endpoints, netip.AddrPortFrom(v, rd.Spec.Port))
		}
		r.Redirect = &RedirectReport{
			Endpoints:  endpoints,
			ListenPort: rd.Spec.ListenPort,
			Table:      redirect.TableName(rd.Spec.VIPs[0]),
			Installed:  st.Installed,
			Reason:     st.Reason.String(),
			Since:      st.Since,
			Changes:    st.Changes,
			Failures:   st.Failures,
		}
		if !st.Since.IsZero() {
			r.Redirect.SinceSeconds = max(now.Sub(st.Since).Seconds(), 0)
		}
		if st.Err != nil {
			r.Redirect.Problem = st.Err.Error()
		}
	}
	r.Problems = problems(r)
	r.Healthy = len(r.Problems) == 0
	return r
}

// routerReport is the report of one router.
func routerReport(now time.Time, rs RouterSnapshot) RouterReport {
	v := rs.VRRP
	r := RouterReport{
		Family:            routerFamily(rs),
		State:             v.State.String(),
		VRID:              rs.VRID,
		Version:           rs.Version,
		Address:           rs.Address,
		Since:             v.Since,
		LastReason:        v.LastReason,
		ActiveRouter:      v.ActiveRouter,
		BasePriority:      v.BasePriority,
		EffectivePriority: v.EffectivePriority,
		AdvertsSent:       v.AdvertsSent,
		AdvertsReceived:   v.AdvertsReceived,
		Transitions:       v.Transitions,
		Peers:             []PeerReport{},
		VIPs:              []VIPReport{},
	}
	if !v.Since.IsZero() {
		r.SinceSeconds = now.Sub(v.Since).Seconds()
	}
	for _, p := range v.Peers {
		r.Peers = append(r.Peers, PeerReport{
			Address:             p.Addr,
			Priority:            p.Priority,
			IntervalSeconds:     p.Interval.Seconds(),
			LastHeard:           p.LastHeard,
			LastHeardSecondsAgo: max(now.Sub(p.LastHeard).Seconds(), 0),
			Adverts:             p.Adverts,
			Active:              v.ActiveRouter.IsValid() && p.Addr == v.ActiveRouter,
		})
	}
	if len(rs.Drops) > 0 {
		r.Drops = make(map[string]uint64, len(rs.Drops))
		for reason, n := range rs.Drops {
			r.Drops[reason.String()] = n
		}
	}
	for _, vs := range rs.VIPs {
		vr := VIPReport{Prefix: vs.Prefix, Held: v.VIPHeld}
		if h := vs.Kernel; h != nil {
			vr.Held = h.Held
			vr.Holding = &HoldingReport{
				HeldForSeconds: max(now.Sub(h.HeldSince).Seconds(), 0),
				LinkUp:         h.LinkUp,
				LinkReason:     h.LinkReason,
				LastError:      h.LastError,
				Conflicts:      h.Conflicts,
			}
			if h.Conflicts > 0 {
				vr.Holding.LastConflictMAC = h.LastConflict.MAC.String()
				vr.Holding.LastConflict = h.LastConflict.At
			}
		}
		r.VIPs = append(r.VIPs, vr)
	}
	return r
}

// routerFamily is the router's family, or the one of its addresses when
// the snapshot does not say.
func routerFamily(rs RouterSnapshot) config.Family {
	switch {
	case rs.Family != "":
		return rs.Family
	case rs.Address.IsValid():
		return config.FamilyOf(rs.Address)
	case len(rs.VIPs) > 0:
		return config.FamilyOf(rs.VIPs[0].Prefix.Addr())
	}
	return ""
}

// problems lists why a node is not healthy: every router must be fine
// (routerProblems), and at least one backend must pass its checks
// (otherwise the proxy has nowhere to send clients). A problem two VIPs
// share (their link) is said once.
func problems(r Report) []string {
	var out []string
	if len(r.Routers) == 0 {
		out = append(out, "no VRRP router")
	}
	for _, rr := range r.Routers {
		for _, p := range routerProblems(r.Time, r.Interface, rr) {
			if p = string(rr.Family) + ": " + p; !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	up := 0
	for _, b := range r.Backends {
		if b.Health == HealthUp {
			up++
		}
	}
	if up == 0 {
		out = append(out, fmt.Sprintf("no healthy backend (of %d)", len(r.Backends)))
	}
	if r.DHCP != nil && r.DHCP.Problem != "" {
		out = append(out, "DHCP lease of the VIP: "+r.DHCP.Problem)
	}
	if r.Redirect != nil && r.Redirect.Problem != "" {
		out = append(out, "redirect of "+joinAddrPorts(r.Redirect.Endpoints)+": "+r.Redirect.Problem)
	}
	return out
}

// routerProblems lists why one router is not fine: its VRRP must run (a
// router in Init neither holds nor can take its VIPs), and each VIP must
// be held as its state says (vipProblems).
func routerProblems(now time.Time, ifname string, rr RouterReport) []string {
	var out []string
	if s := rr.State; s != vrrp.StateBackup.String() && s != vrrp.StateActive.String() {
		msg := "VRRP is in state " + s
		if rr.LastReason != "" {
			msg += " (" + rr.LastReason + ")"
		}
		out = append(out, msg)
	}
	for _, v := range rr.VIPs {
		out = append(out, vipProblems(now, ifname, rr, v)...)
	}
	return out
}

// vipProblems compares a VIP with its router's state: it must be on the
// interface exactly while the router is Active (as the kernel says when
// it is known, as the speaker wants otherwise), the link must carry VRRP,
// and no other host may have claimed the VIP lately.
func vipProblems(now time.Time, ifname string, rr RouterReport, v VIPReport) []string {
	var out []string
	// The disagreement began with the later of the two last changes.
	apart := rr.SinceSeconds
	if h := v.Holding; h != nil {
		apart = min(h.HeldForSeconds, apart)
	}
	settled := apart > VIPSettle.Seconds()
	active := rr.State == vrrp.StateActive.String()
	switch {
	case active && !v.Held && settled:
		msg := fmt.Sprintf("Active, but %s is not on %s (for %s)", v.Prefix.Addr(), ifname, roundSeconds(apart))
		if h := v.Holding; h != nil && h.LastError != "" {
			msg += ": " + h.LastError
		}
		out = append(out, msg)
	case !active && v.Held && settled:
		out = append(out, fmt.Sprintf("%s is on %s while %s (for %s)", v.Prefix.Addr(), ifname, rr.State, roundSeconds(apart)))
	}
	h := v.Holding
	if h == nil {
		return out
	}
	if !h.LinkUp && h.LinkReason != "" {
		out = append(out, h.LinkReason)
	}
	if h.Conflicts > 0 && now.Sub(h.LastConflict) < ConflictRecent {
		out = append(out, fmt.Sprintf("another host (%s) answered for %s %s ago (%d conflicts)",
			h.LastConflictMAC, v.Prefix.Addr(), roundSeconds(now.Sub(h.LastConflict).Seconds()), h.Conflicts))
	}
	return out
}

// roundSeconds writes seconds to a tenth.
func roundSeconds(s float64) string {
	return (time.Duration(s*10) * time.Second / 10).String()
}

// ErrUnhealthy is returned by Report.Err for a node that is not healthy.
var ErrUnhealthy = errors.New("not healthy")

// Err returns nil for a healthy report, otherwise ErrUnhealthy wrapped
// with the problems.
func (r Report) Err() error {
	if r.Healthy && len(r.Problems) == 0 {
		return nil
	}
	if len(r.Problems) == 0 {
		return ErrUnhealthy
	}
	return fmt.Errorf("%w: %s", ErrUnhealthy, strings.Join(r.Problems, "; "))
}

// joinAddrPorts is "a, b and c".
func joinAddrPorts(aps []netip.AddrPort) string {
	s := make([]string, len(aps))
	for i, a := range aps {
		s[i] = a.String()
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
