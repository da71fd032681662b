package status

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/utils/clock"

	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/dhcpvip"
	"github.com/hapod/hapod/pkg/health"
	"github.com/hapod/hapod/pkg/membership"
	"github.com/hapod/hapod/pkg/proxy"
	"github.com/hapod/hapod/pkg/redirect"
	"github.com/hapod/hapod/pkg/vip"
	"github.com/hapod/hapod/pkg/vrrp"
)

// VRRPSource is the VRRP speaker as the Monitor sees it (*vrrp.Speaker).
type VRRPSource interface{ Status() vrrp.Status }

// VIPSource is a router's VIPs as the kernel has them (*vip.Group).
type VIPSource interface{ Status() vip.GroupStatus }

// DropSource counts discarded VRRP packets by reason (*vrrp.RawConn).
type DropSource interface {
	Drops() map[vrrp.DropReason]uint64
}

// ProxySource is the proxy as the Monitor sees it (*proxy.Proxy).
type ProxySource interface{ Stats() proxy.Stats }

// HealthSource is the health checker as the Monitor sees it
// (*health.Prober).
type HealthSource interface{ Results() []health.Result }

// Sources are the parts of a running hapod that a Monitor reads when it
// is asked. A nil source is left out of the report and the metrics.
type Sources struct {
	// Routers are the virtual routers, one per address family present,
	// IPv4 first.
	Routers []Router
	Proxy   ProxySource
	Health  HealthSource
	// DHCP is set only for a DHCP-leased VIP.
	DHCP DHCPSource
	// Membership is where the backends and peers come from.
	Membership MembershipSource
	// Redirect is set only when VIP:--port reaches the proxy through
	// hapod's nftables redirect.
	Redirect RedirectSource
}

// Router is one VRRP virtual router: its configuration, its speaker, its
// socket and the VIPs its adverts carry.
type Router struct {
	// Family is the family label of the router's series.
	Family config.Family
	VRID   uint8
	// Version is the VRRP version, 2 or 3.
	Version int
	// Address is this node's own address, the source of the router's
	// adverts.
	Address netip.Addr
	VRRP    VRRPSource
	Drops   DropSource
	// VIPs are the addresses the router carries, in advert order.
	VIPs []netip.Prefix
	// Kernel, when set, is the truth about holding the VIPs: the kernel's
	// addresses, not the speaker's intent.
	Kernel VIPSource
}

// kernelView is what k says about each of prefixes, in their order: nil
// for a VIP it does not report, all nil without k.
func kernelView(k VIPSource, prefixes []netip.Prefix) []*vip.Status {
	out := make([]*vip.Status, len(prefixes))
	if k == nil {
		return out
	}
	gs := k.Status()
	for i, p := range prefixes {
		for j := range gs.VIPs {
			if gs.VIPs[j].Prefix == p {
				out[i] = &gs.VIPs[j]
			}
		}
	}
	return out
}

// RedirectSource is the redirect of VIP:--port to the proxy
// (*redirect.Switch).
type RedirectSource interface {
	State() redirect.State
	Spec() redirect.Spec
}

// MembershipSource is the membership tracker (*membership.Tracker).
type MembershipSource interface{ Status() membership.Status }

// DHCPSource is the lease keeper of a DHCP-leased VIP (*dhcpvip.Keeper).
type DHCPSource interface{ Status() dhcpvip.Status }

// MonitorConfig configures a Monitor.
type MonitorConfig struct {
	// Info is shown on the page and in hapod_vrrp_info.
	Info Info
	// Clock stamps reports and measures time in state (default: real).
	Clock clock.PassiveClock
	// Events is how many recent events to keep (default DefaultEvents).
	Events int
}

// Monitor is hapod's observability: it reads the speaker, the proxy and
// the checker at scrape or request time, records recent events from the
// log (Handler), times health checks (ObserveCheck), and serves /metrics,
// /status and the page at / (Install).
type Monitor struct {
	info     Info
	clock    clock.PassiveClock
	recorder *Recorder
	registry *prometheus.Registry

	checkLatency *prometheus.HistogramVec

	mu  sync.Mutex
	src Sources
}

// NewMonitor returns a Monitor with no sources yet; hand it its logger
// handler and check observer first, then SetSources once the parts exist.
func NewMonitor(cfg MonitorConfig) *Monitor {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	m := &Monitor{
		info:     cfg.Info,
		clock:    cfg.Clock,
		recorder: NewRecorder(cfg.Events),
		registry: prometheus.NewRegistry(),
		checkLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: subHealth, Name: "check_duration_seconds",
			Help:    "Health check latency, by backend and result (ok, fail).",
			Buckets: checkBuckets,
		}, []string{"backend", "result"}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help: "hapod's version and the Go version it was built with; the value is always 1.",
	}, []string{"version", "goversion"})
	build.WithLabelValues(cfg.Info.Version, runtime.Version()).Set(1)
	m.registry.MustRegister(
		collector{m},
		m.checkLatency,
		build,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// SetSources sets (or replaces) what the Monitor reads.
func (m *Monitor) SetSources(s Sources) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.src = s
}

func (m *Monitor) sources() Sources {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.src
}

// Handler wraps a log handler: every record still goes to next, and the
// ones at Info or above become the page's recent events.
func (m *Monitor) Handler(next slog.Handler) slog.Handler { return m.recorder.Handler(next) }

// ObserveCheck records one health check; it fits health.Config.Observe.
func (m *Monitor) ObserveCheck(backend netip.AddrPort, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "fail"
	}
	m.checkLatency.WithLabelValues(backend.String(), result).Observe(d.Seconds())
}

// Snapshot reads every source now.
func (m *Monitor) Snapshot() Snapshot {
	src := m.sources()
	var s Snapshot
	for _, rt := range src.Routers {
		rs := RouterSnapshot{Family: rt.Family, VRID: rt.VRID, Version: rt.Version, Address: rt.Address}
		if rt.VRRP != nil {
			rs.VRRP = rt.VRRP.Status()
		}
		if rt.Drops != nil {
			rs.Drops = rt.Drops.Drops()
		}
		kernel := kernelView(rt.Kernel, rt.VIPs)
		for i, p := range rt.VIPs {
			rs.VIPs = append(rs.VIPs, VIPSnapshot{Prefix: p, Kernel: kernel[i]})
		}
		s.Routers = append(s.Routers, rs)
	}
	if src.Proxy != nil {
		s.Proxy = src.Proxy.Stats()
	}
	if src.Health != nil {
		s.Health = src.Health.Results()
	}
	if src.DHCP != nil {
		st := src.DHCP.Status()
		s.DHCP = &st
	}
	if src.Membership != nil {
		st := src.Membership.Status()
		s.Membership = &st
	}
	if src.Redirect != nil {
		s.Redirect = &RedirectSnapshot{Spec: src.Redirect.Spec(), State: src.Redirect.State()}
	}
	s.Events = m.recorder.Events()
	return s
}

// Report builds the report of this moment.
func (m *Monitor) Report() Report {
	return BuildReport(m.clock.Now(), m.info, m.Snapshot())
}

// Gatherer is the registry /metrics serves, for tests and embedding.
func (m *Monitor) Gatherer() prometheus.Gatherer { return m.registry }

// Install registers /metrics, /status (JSON) and / (the HTML page) on s.
func (m *Monitor) Install(s *Server) {
	s.Handle("GET /metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	s.Handle("GET /status", http.HandlerFunc(m.serveJSON))
	s.Handle("GET /{$}", http.HandlerFunc(m.servePage))
}

func (m *Monitor) serveJSON(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(m.Report())
}
