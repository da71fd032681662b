//lint:file-ignore SA1019 the Node authorizer lets a node identity get Endpoints, and grants nothing on EndpointSlices (see package discover)

package discover

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest/fake"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/hapod/hapod/pkg/membership"
)

var (
	t0 = time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	n1 = netip.MustParseAddrPort("198.18.0.11:6443")
	n2 = netip.MustParseAddrPort("198.18.0.12:6443")
	n3 = netip.MustParseAddrPort("198.18.0.13:6443")
	n4 = netip.MustParseAddrPort("198.18.0.14:6443")
)

func endpoints(members ...netip.AddrPort) *corev1.Endpoints {
	ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"}}
	ss := corev1.EndpointSubset{Ports: []corev1.EndpointPort{{Name: "https", Port: 6443, Protocol: corev1.ProtocolTCP}}}
	for _, m := range members {
		ss.Addresses = append(ss.Addresses, corev1.EndpointAddress{IP: m.Addr().String()})
	}
	ep.Subsets = []corev1.EndpointSubset{ss}
	return ep
}

func TestMembers(t *testing.T) {
	for _, tc := range []struct {
		name string
		ep   *corev1.Endpoints
		want []netip.AddrPort
	}{
		{"three apiservers", endpoints(n3, n1, n2), []netip.AddrPort{n1, n2, n3}},
		{"none", &corev1.Endpoints{}, nil},
		{"unnamed single port", &corev1.Endpoints{Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: "198.18.0.11"}},
			Ports:     []corev1.EndpointPort{{Port: 6443}},
		}}}, []netip.AddrPort{n1}},
		{"other port names ignored, bad IPs skipped", &corev1.Endpoints{Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: "198.18.0.11"}, {IP: "node1"}, {IP: "198.18.0.11"}},
			Ports:     []corev1.EndpointPort{{Name: "metrics", Port: 9000}, {Name: "https", Port: 6443}},
		}, {
			Addresses: []corev1.EndpointAddress{{IP: "198.18.0.12"}},
			Ports:     []corev1.EndpointPort{{Name: "metrics", Port: 9000}, {Name: "other", Port: 1}},
		}}}, []netip.AddrPort{n1}},
		{"IPv6 and IPv4-mapped", &corev1.Endpoints{Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: "2001:db8::11"}, {IP: "::ffff:198.18.0.11"}},
			Ports:     []corev1.EndpointPort{{Name: "https", Port: 6443}},
		}}}, []netip.AddrPort{n1, netip.MustParseAddrPort("[2001:db8::11]:6443")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Members(tc.ep); !slices.Equal(got, tc.want) {
				t.Fatalf("Members = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCandidates(t *testing.T) {
	local := func(a netip.Addr) bool { return a == n2.Addr() }
	got := Candidates([]netip.AddrPort{n1, n2, n3}, local, "https://198.18.0.10:8443")
	want := []string{"https://198.18.0.12:6443", "https://198.18.0.11:6443", "https://198.18.0.13:6443", "https://198.18.0.10:8443"}
	if !slices.Equal(got, want) {
		t.Fatalf("Candidates = %v, want %v", got, want)
	}
	// The kubeconfig's server is not asked twice.
	got = Candidates([]netip.AddrPort{n1}, local, "https://198.18.0.11:6443/")
	if !slices.Equal(got, []string{"https://198.18.0.11:6443"}) {
		t.Fatalf("Candidates = %v", got)
	}
}

// apiservers fakes the apiservers behind client-go's fake REST client:
// each host answers with its Endpoints, an error status, or a dial error.
type apiservers struct {
	mu    sync.Mutex
	hosts map[string]func() (*http.Response, error) // by host; absent: connection refused
	asked []string
}

var errRefused = errors.New("connect: connection refused")

func (a *apiservers) set(host string, f func() (*http.Response, error)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hosts[host] = f
}

func (a *apiservers) drop(host string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.hosts, host)
}

func (a *apiservers) takeAsked() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.asked
	a.asked = nil
	return out
}

func jsonResponse(code int, obj any) func() (*http.Response, error) {
	return func() (*http.Response, error) {
		b, _ := json.Marshal(obj)
		return &http.Response{StatusCode: code, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(bytes.NewReader(b))}, nil
	}
}

func serving(ep *corev1.Endpoints) func() (*http.Response, error) {
	return jsonResponse(http.StatusOK, ep)
}

var forbidden = jsonResponse(http.StatusForbidden, metav1.Status{
	TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure, Code: http.StatusForbidden,
	Reason:  metav1.StatusReasonForbidden,
	Message: `endpoints "kubernetes" is forbidden: User "system:node:cp1" cannot get resource "endpoints"`,
})

// client returns a client-go fake REST client for host.
func (a *apiservers) client(host string) endpointsGetter {
	return restGetter{&fake.RESTClient{
		NegotiatedSerializer: coreV1.WithoutConversion(),
		GroupVersion:         corev1.SchemeGroupVersion,
		VersionedAPIPath:     "/api/v1",
		Client: fake.CreateHTTPClient(func(r *http.Request) (*http.Response, error) {
			if r.URL.Path != "/api/v1/namespaces/default/endpoints/kubernetes" || r.Method != http.MethodGet {
				return nil, errors.New("unexpected request " + r.Method + " " + r.URL.Path)
			}
			a.mu.Lock()
			a.asked = append(a.asked, host)
			f := a.hosts[host]
			a.mu.Unlock()
			if f == nil {
				return nil, errRefused
			}
			return f()
		}),
	}}
}

type discoverHarness struct {
	t       *testing.T
	clk     *clocktesting.FakeClock
	api     *apiservers
	tracker *membership.Tracker
	src     *Source
	logs    *bytes.Buffer
}

func newDiscoverHarness(t *testing.T, static []netip.AddrPort, persisted []netip.AddrPort) *discoverHarness {
	h := &discoverHarness{t: t, clk: clocktesting.NewFakeClock(t0), logs: &bytes.Buffer{},
		api: &apiservers{hosts: map[string]func() (*http.Response, error){}}}
	log := slog.New(slog.NewTextHandler(h.logs, nil))
	h.tracker = membership.NewTracker(membership.TrackerConfig{
		Config: membership.Config{Static: static, Grace: time.Minute}, Persisted: persisted, Clock: h.clk, Logger: log,
	})
	h.src = New(Config{Kubeconfig: "/etc/kubernetes/kubelet.conf", Clock: h.clk, Logger: log,
		Local: func(a netip.Addr) bool { return a == n1.Addr() }}, h.tracker)
	h.src.creds = &Credentials{Server: "https://198.18.0.10:8443"}
	h.src.newClient = h.api.client
	return h
}

// read runs one poll at now+d and returns the members after it.
func (h *discoverHarness) read(d time.Duration) []netip.AddrPort {
	h.t.Helper()
	h.clk.SetTime(t0.Add(d))
	h.src.readOnce(context.Background())
	return h.tracker.Members()
}

func host(a netip.AddrPort) string { return "https://" + a.String() }

// The merge rules through the real client-go request path: a member the
// API lists is added at once; one it stops listing is removed only after
// the grace period; the API going away changes nothing; a restart from
// the persisted set keeps it while the API is down.
func TestSourceMergeRules(t *testing.T) {
	h := newDiscoverHarness(t, []netip.AddrPort{n1}, nil)
	h.api.set(host(n1), serving(endpoints(n1, n2, n3)))
	if got := h.read(0); !slices.Equal(got, []netip.AddrPort{n1, n2, n3}) {
		t.Fatalf("after the first read: %v", got)
	}
	// The local apiserver was asked, and nothing else.
	if asked := h.api.takeAsked(); !slices.Equal(asked, []string{host(n1)}) {
		t.Fatalf("asked %v", asked)
	}

	// n4 joins: added on the next read.
	h.api.set(host(n1), serving(endpoints(n1, n2, n3, n4)))
	if got := h.read(3 * time.Second); !slices.Equal(got, []netip.AddrPort{n1, n2, n3, n4}) {
		t.Fatalf("after n4 joined: %v", got)
	}
	// n3 leaves the list: kept for the grace period.
	h.api.set(host(n1), serving(endpoints(n1, n2, n4)))
	h.read(6 * time.Second)
	if got := h.read(65 * time.Second); !slices.Equal(got, []netip.AddrPort{n1, n2, n3, n4}) {
		t.Fatalf("within the grace period: %v", got)
	}
	if got := h.read(66 * time.Second); !slices.Equal(got, []netip.AddrPort{n1, n2, n4}) {
		t.Fatalf("after the grace period: %v", got)
	}

	// The local apiserver fails: the others are asked, in order.
	h.api.drop(host(n1))
	h.api.set(host(n2), serving(endpoints(n2, n4)))
	h.api.takeAsked()
	h.read(70 * time.Second)
	if asked := h.api.takeAsked(); !slices.Equal(asked, []string{host(n1), host(n2)}) {
		t.Fatalf("with the local apiserver down, asked %v", asked)
	}

	// Every apiserver gone: nothing changes, for as long as it lasts.
	h.api.drop(host(n2))
	for _, d := range []time.Duration{75 * time.Second, time.Hour, 2 * time.Hour} {
		if got := h.read(d); !slices.Equal(got, []netip.AddrPort{n1, n2, n4}) {
			t.Fatalf("API down at %v: %v", d, got)
		}
	}
	if asked := h.api.takeAsked(); !slices.Contains(asked, "https://198.18.0.10:8443") {
		t.Fatalf("the kubeconfig's server was not tried: %v", asked)
	}
	st := h.tracker.Status()
	if st.Reachable || st.Reads[membership.ReadError] != 3 || !strings.Contains(st.LastErr, "connection refused") {
		t.Fatalf("status with the API down: %+v", st)
	}
}

func TestSourceRestartFromPersistedWithAPIDown(t *testing.T) {
	h := newDiscoverHarness(t, []netip.AddrPort{n1}, []netip.AddrPort{n2, n3})
	for _, d := range []time.Duration{0, time.Hour} {
		if got := h.read(d); !slices.Equal(got, []netip.AddrPort{n1, n2, n3}) {
			t.Fatalf("restarted with the API down, at %v: %v", d, got)
		}
	}
	// Every known member was asked (local first), then the kubeconfig's server.
	want := []string{host(n1), host(n2), host(n3), "https://198.18.0.10:8443"}
	if asked := h.api.takeAsked(); !slices.Equal(asked[:4], want) {
		t.Fatalf("asked %v, want %v first", asked, want)
	}
	// The API back without n3: it leaves after the grace period only.
	h.api.set(host(n2), serving(endpoints(n1, n2)))
	h.read(2 * time.Hour)
	if got := h.read(2*time.Hour + time.Minute); !slices.Equal(got, []netip.AddrPort{n1, n2}) {
		t.Fatalf("after the API came back and the grace period: %v", got)
	}
}

// An apiserver advertising the VIP is left out: the proxy would dial
// itself.
func TestSourceLeavesOutTheVIP(t *testing.T) {
	h := newDiscoverHarness(t, []netip.AddrPort{n1}, nil)
	vip := netip.MustParseAddrPort("198.18.0.10:6443")
	h.src.cfg.VIP = vip.Addr()
	h.api.set(host(n1), serving(endpoints(n1, vip, n2)))
	if got := h.read(0); !slices.Equal(got, []netip.AddrPort{n1, n2}) {
		t.Fatalf("members %v", got)
	}
	if !strings.Contains(h.logs.String(), "advertises the VIP") {
		t.Fatalf("no warning:\n%s", h.logs.String())
	}
}

// The REST clients of hosts no longer asked are dropped.
func TestSourceForgetsClientsOfLeftMembers(t *testing.T) {
	h := newDiscoverHarness(t, nil, []netip.AddrPort{n1, n2})
	h.read(0)
	if len(h.src.clients) != 3 {
		t.Fatalf("%d clients after asking n1, n2 and the server", len(h.src.clients))
	}
	h.src.creds.Server = ""
	h.tracker.Observe([]netip.AddrPort{n1})
	h.clk.Step(2 * time.Minute)
	h.tracker.Observe([]netip.AddrPort{n1})
	h.read(2 * time.Minute)
	if _, ok := h.src.clients[host(n2)]; ok || len(h.src.clients) != 1 {
		t.Fatalf("clients %v after n2 left", h.src.clients)
	}
}

func TestSourceDenied(t *testing.T) {
	h := newDiscoverHarness(t, []netip.AddrPort{n1, n2}, nil)
	h.api.set(host(n1), forbidden)
	h.api.set(host(n2), serving(endpoints(n1, n2, n3)))
	h.read(0)
	h.read(time.Second)
	// Denied is the same everywhere: the other apiserver is not asked.
	if asked := h.api.takeAsked(); !slices.Equal(asked, []string{host(n1), host(n1)}) {
		t.Fatalf("asked %v", asked)
	}
	if got := h.tracker.Members(); !slices.Equal(got, []netip.AddrPort{n1, n2}) {
		t.Fatalf("members %v", got)
	}
	st := h.tracker.Status()
	if st.Reads[membership.ReadDenied] != 2 {
		t.Fatalf("reads %v, want 2 denied", st.Reads)
	}
	// One clear line, once.
	if n := strings.Count(h.logs.String(), "may not read the default/kubernetes Endpoints"); n != 1 {
		t.Fatalf("%d denial lines:\n%s", n, h.logs.String())
	}
}

// Run waits for the kubeconfig without reading, then reads every Interval.
func TestSourceWaitsForKubeconfig(t *testing.T) {
	h := newDiscoverHarness(t, []netip.AddrPort{n1}, nil)
	h.src.creds = nil
	h.src.cfg.Kubeconfig = t.TempDir() + "/kubelet.conf"
	h.api.set(host(n1), serving(endpoints(n1, n2)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.src.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, func() bool { return h.clk.HasWaiters() })
	if asked := h.api.takeAsked(); len(asked) != 0 {
		t.Fatalf("asked %v without a kubeconfig", asked)
	}
	if !strings.Contains(h.logs.String(), "waits for the kubelet's kubeconfig") {
		t.Fatalf("no waiting line:\n%s", h.logs.String())
	}
	writeFile(t, h.src.cfg.Kubeconfig, kubeletConf)
	h.clk.Step(DefaultInterval)
	waitFor(t, func() bool { return slices.Equal(h.tracker.Members(), []netip.AddrPort{n1, n2}) })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
	}
}
