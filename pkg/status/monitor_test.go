package status

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/health"
	"github.com/hapod/hapod/pkg/proxy"
	"github.com/hapod/hapod/pkg/vrrp"
)

var (
	t0  = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	be1 = netip.MustParseAddrPort("198.18.0.11:6443")
	be2 = netip.MustParseAddrPort("198.18.0.12:6443")
	be3 = netip.MustParseAddrPort("198.18.0.13:6443")
)

// fakeSources stands in for the speaker, the socket, the proxy and the
// checker; tests change its fields between reads.
type fakeSources struct {
	mu     sync.Mutex
	vrrp   vrrp.Status
	drops  map[vrrp.DropReason]uint64
	proxy  proxy.Stats
	health []health.Result
}

func (f *fakeSources) Status() vrrp.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.vrrp
}

func (f *fakeSources) Drops() map[vrrp.DropReason]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.drops
}

func (f *fakeSources) Stats() proxy.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.proxy
}

func (f *fakeSources) Results() []health.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.health
}

// router is f as this node's IPv4 router, carrying testVIP.
func (f *fakeSources) router() Router {
	return Router{Family: config.IPv4, VRID: 10, Version: 3, Address: testAddr, VRRP: f, Drops: f,
		VIPs: []netip.Prefix{testVIP}}
}

func (f *fakeSources) sources() Sources {
	return Sources{Routers: []Router{f.router()}, Proxy: f, Health: f}
}

var (
	testInfo = Info{Node: "cp1", Version: "v1.2.3", Interface: "eth0"}
	testVIP  = netip.MustParsePrefix("198.18.0.10/24")
	testAddr = netip.MustParseAddr("198.18.0.11")
)

// activeNode is node 1 holding the VIP with two of three backends up.
func activeNode() *fakeSources {
	return &fakeSources{
		vrrp: vrrp.Status{
			State: vrrp.StateActive, Since: t0.Add(-90 * time.Second), LastReason: "master down timer expired",
			BasePriority: 100, EffectivePriority: 100, ActiveRouter: testAddr, VIPHeld: true,
			AdvertsSent: 900, AdvertsReceived: 12, Transitions: 2,
			TransitionsBy: map[vrrp.TransitionKey]uint64{
				{To: vrrp.StateBackup, Reason: vrrp.ReasonStartup}:    1,
				{To: vrrp.StateActive, Reason: vrrp.ReasonMasterDown}: 1,
			},
			// The router active before this one, silent since it crashed.
			Peers: []vrrp.Peer{{Addr: netip.MustParseAddr("198.18.0.12"), Priority: 150, Interval: time.Second,
				LastHeard: t0.Add(-93 * time.Second), Adverts: 12}},
		},
		drops: map[vrrp.DropReason]uint64{vrrp.DropVRID: 7, vrrp.DropAuth: 1},
		proxy: proxy.Stats{
			Listeners: []proxy.ListenerStats{{Addr: netip.MustParseAddrPort("198.18.0.10:8443"), Accepted: 40}}, Active: 5, Accepted: 40, Refused: 1,
			NoBackend: 2, Retries: 3, IdleClosed: 4, Rebalanced: 6, DownClosed: 8, DrainClosed: 9, AcceptErrors: 0, Healthy: 2,
			Backends: []proxy.BackendStats{
				{Addr: be1, Healthy: true, Active: 3, Total: 20, BytesIn: 1000, BytesOut: 250000},
				{Addr: be2, Healthy: true, Active: 2, Total: 18, BytesIn: 900, BytesOut: 2 << 20, Suspect: true, ConnectFailures: 1},
				{Addr: be3, Healthy: false, Total: 2, ConnectFailures: 5},
			},
		},
		health: []health.Result{
			{Backend: be1, Healthy: true, LastCheck: t0.Add(-time.Second), LastLatency: 1200 * time.Microsecond, Checks: 45},
			{Backend: be2, Healthy: true, LastCheck: t0.Add(-time.Second), LastLatency: 900 * time.Microsecond, Checks: 45},
			{Backend: be3, Healthy: false, LastErr: errors.New("dial tcp 198.18.0.13:6443: connect: connection refused"),
				LastCheck: t0.Add(-time.Second), LastLatency: 300 * time.Microsecond, Checks: 45},
		},
	}
}

// oneRouter is the snapshot of a node with one IPv4 router carrying
// testVIP, in state st.
func oneRouter(st vrrp.Status) []RouterSnapshot {
	return []RouterSnapshot{{Family: config.IPv4, VRID: 10, Version: 3, Address: testAddr, VRRP: st,
		VIPs: []VIPSnapshot{{Prefix: testVIP}}}}
}

func newTestMonitor(src *fakeSources) (*Monitor, *clocktesting.FakePassiveClock) {
	clk := clocktesting.NewFakePassiveClock(t0)
	m := NewMonitor(MonitorConfig{Info: testInfo, Clock: clk})
	m.SetSources(src.sources())
	return m, clk
}

func TestReportOfAnActiveNode(t *testing.T) {
	m, _ := newTestMonitor(activeNode())
	r := m.Report()
	if !r.Healthy || r.Err() != nil {
		t.Errorf("healthy = %v, problems %v", r.Healthy, r.Problems)
	}
	if len(r.Routers) != 1 {
		t.Fatalf("routers = %+v", r.Routers)
	}
	v := r.Routers[0]
	if v.Family != config.IPv4 || v.State != "Active" || v.SinceSeconds != 90 || v.VRID != 10 || v.Drops["vrid"] != 7 ||
		len(v.VIPs) != 1 || v.VIPs[0].Prefix != testVIP || !v.VIPs[0].Held {
		t.Errorf("router = %+v", v)
	}
	if len(r.Backends) != 3 {
		t.Fatalf("backends = %+v", r.Backends)
	}
	b := r.Backends[2]
	if b.Address != be3 || b.Health != HealthDown || !strings.Contains(b.LastError, "refused") || b.ConnectFailures != 5 {
		t.Errorf("backend 3 = %+v", b)
	}
	if b := r.Backends[1]; b.Health != HealthUp || !b.Suspect || b.ActiveConnections != 2 || b.LastLatencySeconds != 0.0009 {
		t.Errorf("backend 2 = %+v", b)
	}
}

func TestReportProblems(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*fakeSources)
		want   []string
	}{
		{"link down", func(f *fakeSources) {
			f.vrrp.State, f.vrrp.LastReason, f.vrrp.VIPHeld = vrrp.StateInit, "link down", false
		}, []string{"ipv4: VRRP is in state Init (link down)"}},
		{"all backends down", func(f *fakeSources) {
			for i := range f.health {
				f.health[i].Healthy = false
			}
		}, []string{"no healthy backend (of 3)"}},
		{"not checked yet", func(f *fakeSources) {
			for i := range f.health {
				f.health[i] = health.Result{Backend: f.health[i].Backend}
			}
		}, []string{"no healthy backend (of 3)"}},
		{"both", func(f *fakeSources) {
			f.vrrp.State, f.vrrp.LastReason, f.vrrp.VIPHeld = vrrp.StateInit, "", false
			f.health = nil
			f.proxy.Backends = nil
		}, []string{"ipv4: VRRP is in state Init", "no healthy backend (of 0)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := activeNode()
			tc.change(src)
			m, _ := newTestMonitor(src)
			r := m.Report()
			if r.Healthy || strings.Join(r.Problems, "|") != strings.Join(tc.want, "|") {
				t.Errorf("healthy %v, problems %q, want %q", r.Healthy, r.Problems, tc.want)
			}
			if err := r.Err(); !errors.Is(err, ErrUnhealthy) {
				t.Errorf("Err = %v", err)
			}
		})
	}
}

func TestBackendOnlyTheCheckerKnowsIsShown(t *testing.T) {
	src := activeNode()
	src.proxy = proxy.Stats{}
	m, _ := newTestMonitor(src)
	r := m.Report()
	if len(r.Backends) != 3 || r.Backends[0].Health != HealthUp || r.Backends[0].TotalConnections != 0 {
		t.Errorf("backends = %+v", r.Backends)
	}
}

// metricValues gathers m and returns "name{l1=v1,l2=v2}" -> value; a
// histogram's value is its sample count.
func metricValues(t *testing.T, m *Monitor) map[string]float64 {
	t.Helper()
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			out[seriesName(f.GetName(), mt.GetLabel())] = value(f.GetType(), mt)
		}
	}
	return out
}

func seriesName(name string, labels []*dto.LabelPair) string {
	if len(labels) == 0 {
		return name
	}
	var ls []string
	for _, l := range labels {
		ls = append(ls, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(ls)
	return name + "{" + strings.Join(ls, ",") + "}"
}

func value(typ dto.MetricType, m *dto.Metric) float64 {
	switch typ {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_HISTOGRAM:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return m.GetUntyped().GetValue()
}

func TestMetricsReadTheSourcesAtScrapeTime(t *testing.T) {
	src := activeNode()
	m, clk := newTestMonitor(src)
	m.ObserveCheck(be1, 2*time.Millisecond, nil)
	m.ObserveCheck(be3, time.Millisecond, errors.New("refused"))
	m.ObserveCheck(be3, time.Millisecond, errors.New("refused"))

	want := map[string]float64{
		"hapod_vrrp_state{family=ipv4,state=active}":                                            1,
		"hapod_vrrp_state{family=ipv4,state=backup}":                                            0,
		"hapod_vrrp_state{family=ipv4,state=init}":                                              0,
		"hapod_vrrp_vip_held{family=ipv4,vip=198.18.0.10/24}":                                   1,
		"hapod_vrrp_time_in_state_seconds{family=ipv4}":                                         90,
		"hapod_vrrp_base_priority{family=ipv4}":                                                 100,
		"hapod_vrrp_effective_priority{family=ipv4}":                                            100,
		"hapod_vrrp_adverts_sent_total{family=ipv4}":                                            900,
		"hapod_vrrp_adverts_received_total{family=ipv4}":                                        12,
		"hapod_vrrp_dropped_packets_total{family=ipv4,reason=vrid}":                             7,
		"hapod_vrrp_dropped_packets_total{family=ipv4,reason=auth}":                             1,
		"hapod_vrrp_dropped_packets_total{family=ipv4,reason=ttl}":                              0,
		"hapod_vrrp_info{family=ipv4,interface=eth0,vip=198.18.0.10/24,vrid=10,vrrp_version=3}": 1,
		"hapod_proxy_active_connections":                                                        5,
		"hapod_proxy_accepted_connections_total":                                                40,
		"hapod_proxy_refused_connections_total{reason=max_conns}":                               1,
		"hapod_proxy_refused_connections_total{reason=no_backend}":                              2,
		"hapod_proxy_closed_connections_total{reason=idle_timeout}":                             4,
		"hapod_proxy_closed_connections_total{reason=rebalance}":                                6,
		"hapod_proxy_closed_connections_total{reason=backend_down}":                             8,
		"hapod_proxy_closed_connections_total{reason=drain}":                                    9,
		"hapod_proxy_connect_retries_total":                                                     3,
		"hapod_proxy_healthy_backends":                                                          2,
		"hapod_proxy_backend_active_connections{backend=198.18.0.11:6443}":                      3,
		"hapod_proxy_backend_connections_total{backend=198.18.0.12:6443}":                       18,
		"hapod_proxy_backend_bytes_out_total{backend=198.18.0.12:6443}":                         2 << 20,
		"hapod_proxy_backend_connect_failures_total{backend=198.18.0.13:6443}":                  5,
		"hapod_proxy_backend_suspect{backend=198.18.0.12:6443}":                                 1,
		"hapod_health_backend_up{backend=198.18.0.11:6443}":                                     1,
		"hapod_health_backend_up{backend=198.18.0.13:6443}":                                     0,
		"hapod_health_check_duration_seconds{backend=198.18.0.11:6443,result=ok}":               1,
		"hapod_health_check_duration_seconds{backend=198.18.0.13:6443,result=fail}":             2,
	}
	got := metricValues(t, m)
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}

	// Nothing is cached: the next scrape reads the sources again.
	src.mu.Lock()
	src.vrrp.State, src.vrrp.VIPHeld, src.vrrp.Since = vrrp.StateBackup, false, t0
	src.vrrp.EffectivePriority = 50
	src.drops[vrrp.DropTTL] = 3
	src.proxy.Backends[0].Active = 0
	src.mu.Unlock()
	clk.SetTime(t0.Add(5 * time.Second))
	got = metricValues(t, m)
	for k, v := range map[string]float64{
		"hapod_vrrp_state{family=ipv4,state=active}":                       0,
		"hapod_vrrp_state{family=ipv4,state=backup}":                       1,
		"hapod_vrrp_vip_held{family=ipv4,vip=198.18.0.10/24}":              0,
		"hapod_vrrp_time_in_state_seconds{family=ipv4}":                    5,
		"hapod_vrrp_effective_priority{family=ipv4}":                       50,
		"hapod_vrrp_dropped_packets_total{family=ipv4,reason=ttl}":         3,
		"hapod_proxy_backend_active_connections{backend=198.18.0.11:6443}": 0,
	} {
		if got[k] != v {
			t.Errorf("after the change %s = %v, want %v", k, got[k], v)
		}
	}
}

func TestMetricsWithoutSources(t *testing.T) {
	m := NewMonitor(MonitorConfig{Info: testInfo})
	for name := range metricValues(t, m) {
		if strings.HasPrefix(name, "hapod_vrrp_") || strings.HasPrefix(name, "hapod_proxy_") {
			t.Errorf("%s reported with no source", name)
		}
	}
}

// hapod_vrrp_transitions_total is labelled from the real vrrp.Speaker's
// typed transitions, and its log lines still reach the events.
func TestSpeakerTransitionsAreCounted(t *testing.T) {
	m := NewMonitor(MonitorConfig{Info: testInfo})
	log := slog.New(m.Handler(slog.DiscardHandler))
	conn := newIdleConn()
	sp := vrrp.NewSpeaker(vrrp.SpeakerConfig{
		Machine: vrrp.MachineConfig{VRID: 10, Priority: 100, Interval: 10 * time.Millisecond,
			Version: vrrp.Version3, Primary: testAddr},
		Logger: log,
	}, conn, nopVIP{})
	m.SetSources(Sources{Routers: []Router{{Family: config.IPv4, VRID: 10, Version: 3, VRRP: sp}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sp.Run(ctx) }()
	// Alone on its "LAN", the speaker goes Init -> Backup -> Active.
	for sp.Status().State != vrrp.StateActive {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := metricValues(t, m)
	for _, k := range []string{
		"hapod_vrrp_transitions_total{family=ipv4,reason=startup,to=backup}",
		"hapod_vrrp_transitions_total{family=ipv4,reason=master_down,to=active}",
		"hapod_vrrp_transitions_total{family=ipv4,reason=shutdown,to=init}",
	} {
		if got[k] != 1 {
			t.Errorf("%s = %v, want 1 (all: %v)", k, got[k], filter(got, "hapod_vrrp_transitions_total"))
		}
	}
	var msgs []string
	for _, e := range m.Report().Events {
		msgs = append(msgs, e.Message)
	}
	if strings.Count(strings.Join(msgs, "\n"), "vrrp state change") != 3 {
		t.Errorf("events: %q", msgs)
	}
}

func filter(m map[string]float64, prefix string) map[string]float64 {
	out := make(map[string]float64)
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out
}

// idleConn is a vrrp.Conn on a LAN with nobody else.
type idleConn struct {
	once   sync.Once
	closed chan struct{}
}

func newIdleConn() *idleConn { return &idleConn{closed: make(chan struct{})} }

func (c *idleConn) Send(*vrrp.Packet) error { return nil }

func (c *idleConn) Receive() (vrrp.Received, error) {
	<-c.closed
	return vrrp.Received{}, net.ErrClosed
}

func (c *idleConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

type nopVIP struct{}

func (nopVIP) Acquire() error { return nil }
func (nopVIP) Release() error { return nil }

func TestServeStatusJSONAndPage(t *testing.T) {
	src := activeNode()
	m, _ := newTestMonitor(src)
	slog.New(m.Handler(slog.DiscardHandler)).Info("vrrp state change", "from", "Backup", "to", "Active", "reason", "master down timer expired")
	s := New(netip.MustParseAddrPort("127.0.0.1:0"))
	m.Install(s)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx)
	addr := netip.MustParseAddrPort(s.Addr().String())
	base := "http://" + addr.String()

	r, err := Fetch(ctx, nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	want := m.Report()
	// JSON round trip: what `hapod status` reads is what the node reports.
	a, _ := json.Marshal(r)
	b, _ := json.Marshal(want)
	if string(a) != string(b) {
		t.Errorf("fetched report differs:\n%s\n%s", a, b)
	}

	code, page := get(t, base+"/")
	if code != 200 {
		t.Fatalf("/ = %d", code)
	}
	for _, s := range []string{
		`<meta http-equiv="refresh" content="2">`, "cp1", "Active", "This node holds", "198.18.0.10/24",
		"198.18.0.11:6443", "198.18.0.13:6443", "connection refused", "suspect", "vrrp state change",
		"master down timer expired", "Healthy", "Peers heard", "198.18.0.12</td>", "1m 33s ago",
	} {
		if !strings.Contains(page, s) {
			t.Errorf("page lacks %q", s)
		}
	}
	if code, _ := get(t, base+"/nothing"); code != 404 {
		t.Errorf("/nothing = %d", code)
	}
	code, metrics := get(t, base+"/metrics")
	if code != 200 || !strings.Contains(metrics, `hapod_vrrp_state{family="ipv4",state="active"} 1`) {
		t.Errorf("/metrics = %d:\n%s", code, metrics)
	}
}

func TestFetchUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort(l.Addr().String())
	l.Close()
	_, err = Fetch(context.Background(), nil, addr)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), "\n") {
		t.Errorf("Fetch from a closed port: %v", err)
	}
}

func TestFetchNotAStatusServer(t *testing.T) {
	s := New(netip.MustParseAddrPort("127.0.0.1:0")) // no Monitor: /status is 404
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx)
	_, err := Fetch(ctx, &http.Client{Timeout: time.Second}, netip.MustParseAddrPort(s.Addr().String()))
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "404") {
		t.Errorf("Fetch: %v", err)
	}
}

func TestWriteTable(t *testing.T) {
	src := activeNode()
	src.vrrp.EffectivePriority = 50
	m, _ := newTestMonitor(src)
	var b strings.Builder
	if err := WriteTable(&b, m.Report()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, s := range []string{"cp1", "healthy", "ACTIVE", "198.18.0.10/24", "held here: yes", "PRIORITY   50                base 100, lowered\n",
		"198.18.0.12:6443  up (suspect)", "198.18.0.13:6443  down", "connection refused"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
	t.Logf("table:\n%s", out)
}
