package status

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hapod/hapod/pkg/membership"
	"github.com/hapod/hapod/pkg/vrrp"
)

// Metric name prefix and subsystems.
const (
	namespace = "hapod"
	subVRRP   = "vrrp"
	subProxy  = "proxy"
	subHealth = "health"
	subDHCP   = "dhcp"
	subMember = "membership"
	subRedir  = "redirect"
)

// checkBuckets are the buckets of the health check latency histogram, in
// seconds: a check on a LAN takes a millisecond or so, and the default
// check timeout is one second.
var checkBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

func desc(sub, name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, sub, name), help, labels, nil)
}

// The metrics read from snapshots at scrape time. The counters live in
// the speaker, the socket and the proxy already; copying them into
// client_golang counters would double the bookkeeping on the hot paths
// and could drift, so the collector reports their current values.
var (
	descVRRPInfo = desc(subVRRP, "info",
		"Static VRRP configuration of this node, one series per VIP of each virtual router (family: ipv4, ipv6); the value is always 1.",
		"family", "vip", "interface", "vrid", "vrrp_version")
	descVRRPState = desc(subVRRP, "state",
		"1 for the protocol state the family's virtual router is in (init, backup, active), 0 for the others.", "family", "state")
	descVIPHeld = desc(subVRRP, "vip_held",
		"1 when this node has the VIP on its interface, as the kernel says (not as the VRRP state wants).", "family", "vip")
	descVIPConflicts = desc("", "vip_conflicts_total",
		"Times another host answered ARP or Neighbor Discovery for the VIP while this node held it (each answer is re-announced, at most once a second).", "family", "vip")
	descTimeInState = desc(subVRRP, "time_in_state_seconds",
		"Seconds since the virtual router's last state change (or since start).", "family")
	descLastTransition = desc(subVRRP, "last_transition_timestamp_seconds",
		"Unix time of the virtual router's last state change (or of the start).", "family")
	descBasePriority = desc(subVRRP, "base_priority",
		"Configured VRRP priority of the virtual router.", "family")
	descEffPriority = desc(subVRRP, "effective_priority",
		"VRRP priority the virtual router advertises now: the base priority plus adjustments (lowered while no backend is healthy).", "family")
	descAdvertsSent = desc(subVRRP, "adverts_sent_total",
		"VRRP advertisements sent by the virtual router.", "family")
	descTransitions = desc(subVRRP, "transitions_total",
		"VRRP state changes of the virtual router, by new state and reason ("+transitionReasonNames()+").", "family", "to", "reason")
	descAdvertsReceived = desc(subVRRP, "adverts_received_total",
		"VRRP advertisements for the virtual router received from other routers.", "family")
	descDrops = desc(subVRRP, "dropped_packets_total",
		"VRRP packets of the family discarded by a receive check, by reason: "+dropReasonNames()+".", "family", "reason")

	descActive = desc(subProxy, "active_connections",
		"Client connections open now.")
	descAccepted = desc(subProxy, "accepted_connections_total",
		"Client connections accepted.")
	descRefused = desc(subProxy, "refused_connections_total",
		"Client connections closed without being served: max_conns (the connection limit was reached) or no_backend (no backend could be dialled).", "reason")
	descClosed = desc(subProxy, "closed_connections_total",
		"Client connections closed by the proxy while served: idle_timeout, rebalance (moved to even out the spread after a backend came back), backend_down (their backend failed its health checks, --close-on-down), vip_released (closed as this node gave the VIP up, so that their clients reconnect through the new holder at once) or drain (still open when the proxy stopped).", "reason")
	descRetries = desc(subProxy, "connect_retries_total",
		"Backend dials repeated on another backend after a failure.")
	descAcceptErrors = desc(subProxy, "accept_errors_total",
		"Failed accepts (mostly: out of file descriptors).")
	descHealthyBackends = desc(subProxy, "healthy_backends",
		"Backends the health checker reports up.")
	descBackendActive = desc(subProxy, "backend_active_connections",
		"Connections open now to a backend.", "backend")
	descBackendTotal = desc(subProxy, "backend_connections_total",
		"Connections made to a backend.", "backend")
	descBackendBytesIn = desc(subProxy, "backend_bytes_in_total",
		"Bytes received from clients and sent to a backend.", "backend")
	descBackendBytesOut = desc(subProxy, "backend_bytes_out_total",
		"Bytes received from a backend and sent to clients.", "backend")
	descBackendFailures = desc(subProxy, "backend_connect_failures_total",
		"Failed dials to a backend.", "backend")
	descBackendSuspect = desc(subProxy, "backend_suspect",
		"1 while a backend is avoided after a failed dial (until its 5 s hold-down ends or a check passes) or after its node's VRRP router went silent (until a check passes).", "backend")

	descBackendUp = desc(subHealth, "backend_up",
		"1 when a backend passes its health checks (after rise/fall hysteresis), 0 when down or not checked yet.", "backend")

	descLeaseRemaining = desc(subDHCP, "lease_remaining_seconds",
		"Seconds until the DHCP lease of the VIP expires, as last granted to this node (--vip-dhcp only).")
	descLeaseActive = desc(subDHCP, "lease_active",
		"1 while this node renews the VIP's lease (it holds the VIP), 0 while it stays silent.")
	descLeaseProblem = desc(subDHCP, "lease_problem",
		"1 while the active node's lease has a problem (NAK, a different address, expiry, no lease known after a takeover), 0 otherwise.")

	descRedirectInstalled = desc(subRedir, "installed",
		"1 while hapod's nftables rule sends VIP:--port to the proxy (it has a healthy backend), 0 while VIP:--port reaches the local kube-apiserver (redirect mode only).")
	descRedirectChanges = desc(subRedir, "changes_total",
		"Installs and removals of the redirect.")
	descRedirectFailures = desc(subRedir, "failures_total",
		"Failed installs and removals of the redirect (netlink errors).")
)

var (
	descMembers = desc(subMember, "members",
		"Members (kube-apiservers the proxy uses) by source: static (--backend), persisted (saved by an earlier run), discovered (listed by the API).", "source")
	descMemberChanges = desc(subMember, "changes_total",
		"Members added (static, persisted, discovered) and removed (gone: missing from the API's list for --member-grace) since start.", "change", "reason")
	descMemberReads = desc(subMember, "reads_total",
		"Reads of the API's list of apiservers by result: ok, error (no apiserver answered), denied (the node identity may not read it).", "result")
	descMemberAPIReachable = desc(subMember, "api_reachable",
		"1 when the last read of the API's list succeeded; while 0 no member is removed.")
	descMemberPendingRemoval = desc(subMember, "pending_removals",
		"Members missing from the API's list whose grace period runs.")
)

var allDescs = []*prometheus.Desc{
	descMembers, descMemberChanges, descMemberReads, descMemberAPIReachable, descMemberPendingRemoval,
	descVRRPInfo, descVRRPState, descVIPHeld, descVIPConflicts, descTimeInState, descLastTransition,
	descBasePriority, descEffPriority, descAdvertsSent, descAdvertsReceived, descTransitions, descDrops,
	descActive, descAccepted, descRefused, descClosed, descRetries, descAcceptErrors,
	descHealthyBackends, descBackendActive, descBackendTotal, descBackendBytesIn,
	descBackendBytesOut, descBackendFailures, descBackendSuspect, descBackendUp,
	descLeaseRemaining, descLeaseActive, descLeaseProblem,
	descRedirectInstalled, descRedirectChanges, descRedirectFailures,
}

func transitionReasonNames() string {
	var names []string
	for _, r := range vrrp.Reasons() {
		names = append(names, r.String())
	}
	return strings.Join(names, ", ")
}

func dropReasonNames() string {
	var names []string
	for _, r := range vrrp.DropReasons() {
		names = append(names, r.String())
	}
	return strings.Join(names, ", ")
}

// The label values of hapod_vrrp_state, in the order of vrrp.State.
var stateLabels = []struct {
	s     vrrp.State
	label string
}{
	{vrrp.StateInit, "init"},
	{vrrp.StateBackup, "backup"},
	{vrrp.StateActive, "active"},
}

// collector reports a Monitor's snapshots at scrape time.
type collector struct{ m *Monitor }

var _ prometheus.Collector = collector{}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	src := c.m.sources()
	now := c.m.clock.Now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, rt := range src.Routers {
		collectRouter(rt, c.m.info.Interface, now, gauge, counter)
	}
	if src.Proxy != nil {
		ps := src.Proxy.Stats()
		gauge(descActive, float64(ps.Active))
		counter(descAccepted, ps.Accepted)
		counter(descRefused, ps.Refused, "max_conns")
		counter(descRefused, ps.NoBackend, "no_backend")
		counter(descClosed, ps.IdleClosed, "idle_timeout")
		counter(descClosed, ps.Rebalanced, "rebalance")
		counter(descClosed, ps.DownClosed, "backend_down")
		counter(descClosed, ps.DrainClosed, "drain")
		counter(descClosed, ps.VIPReleased, "vip_released")
		counter(descRetries, ps.Retries)
		counter(descAcceptErrors, ps.AcceptErrors)
		gauge(descHealthyBackends, float64(ps.Healthy))
		for _, b := range ps.Backends {
			a := b.Addr.String()
			gauge(descBackendActive, float64(b.Active), a)
			counter(descBackendTotal, b.Total, a)
			counter(descBackendBytesIn, b.BytesIn, a)
			counter(descBackendBytesOut, b.BytesOut, a)
			counter(descBackendFailures, b.ConnectFailures, a)
			gauge(descBackendSuspect, b2f(b.Suspect), a)
		}
	}
	if src.Health != nil {
		for _, r := range src.Health.Results() {
			gauge(descBackendUp, b2f(r.Healthy), r.Backend.String())
		}
	}
	if src.Membership != nil {
		collectMembership(src.Membership.Status(), gauge, counter)
	}
	if src.DHCP != nil {
		st := src.DHCP.Status()
		remaining := 0.0
		if st.Lease.Valid() {
			remaining = max(st.Lease.ExpiresAt().Sub(now).Seconds(), 0)
		}
		gauge(descLeaseRemaining, remaining)
		gauge(descLeaseActive, b2f(st.Active))
		gauge(descLeaseProblem, b2f(st.Healthy() != nil))
	}
	if src.Redirect != nil {
		st := src.Redirect.State()
		gauge(descRedirectInstalled, b2f(st.Installed))
		counter(descRedirectChanges, st.Changes)
		counter(descRedirectFailures, st.Failures)
	}
}

// collectRouter reports one virtual router's series, labelled with its
// family (and its VIPs' with the VIP too).
func collectRouter(rt Router, ifname string, now time.Time, gauge func(*prometheus.Desc, float64, ...string), counter func(*prometheus.Desc, uint64, ...string)) {
	fam := string(rt.Family)
	if rt.Drops != nil {
		drops := rt.Drops.Drops()
		// Every reason, zeros included, so that rate() works from the
		// first drop on.
		for _, r := range vrrp.DropReasons() {
			counter(descDrops, drops[r], fam, r.String())
		}
	}
	if rt.VRRP == nil {
		return
	}
	st := rt.VRRP.Status()
	kernel := kernelView(rt.Kernel, rt.VIPs)
	for i, p := range rt.VIPs {
		vip := p.String()
		gauge(descVRRPInfo, 1, fam, vip, ifname, strconv.Itoa(int(rt.VRID)), strconv.Itoa(rt.Version))
		held := st.VIPHeld
		if k := kernel[i]; k != nil {
			held = k.Held
			counter(descVIPConflicts, k.Conflicts, fam, vip)
		}
		gauge(descVIPHeld, b2f(held), fam, vip)
	}
	for _, s := range stateLabels {
		gauge(descVRRPState, b2f(st.State == s.s), fam, s.label)
	}
	gauge(descTimeInState, now.Sub(st.Since).Seconds(), fam)
	gauge(descLastTransition, float64(st.Since.UnixNano())/1e9, fam)
	gauge(descBasePriority, float64(st.BasePriority), fam)
	gauge(descEffPriority, float64(st.EffectivePriority), fam)
	counter(descAdvertsSent, st.AdvertsSent, fam)
	counter(descAdvertsReceived, st.AdvertsReceived, fam)
	for _, s := range stateLabels {
		for _, r := range vrrp.Reasons() {
			if n := st.TransitionsBy[vrrp.TransitionKey{To: s.s, Reason: r}]; n > 0 {
				counter(descTransitions, n, fam, s.label, r.String())
			}
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// memberReasons are the label values of the membership metrics, every
// one reported (zeros included) so that rate() and sums work from start.
var memberReasons = []membership.Reason{membership.ReasonStatic, membership.ReasonPersisted, membership.ReasonDiscovered}

func collectMembership(st membership.Status, gauge func(*prometheus.Desc, float64, ...string), counter func(*prometheus.Desc, uint64, ...string)) {
	by := map[membership.Reason]int{}
	pending := 0
	for _, m := range st.Members {
		by[m.Reason]++
		if !m.RemoveAt.IsZero() {
			pending++
		}
	}
	for _, r := range memberReasons {
		gauge(descMembers, float64(by[r]), r.String())
		counter(descMemberChanges, st.Added[r], "added", r.String())
	}
	counter(descMemberChanges, st.Removed[membership.ReasonGone], "removed", membership.ReasonGone.String())
	for _, r := range []membership.ReadResult{membership.ReadOK, membership.ReadError, membership.ReadDenied} {
		counter(descMemberReads, st.Reads[r], string(r))
	}
	gauge(descMemberAPIReachable, b2f(st.Reachable))
	gauge(descMemberPendingRemoval, float64(pending))
}
