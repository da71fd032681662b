package status

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hapod/hapod/pkg/health"
	"github.com/hapod/hapod/pkg/redirect"
	"github.com/hapod/hapod/pkg/vrrp"
)

var redirectSpec = redirect.Spec{VIPs: []netip.Addr{netip.MustParseAddr("198.18.0.10")}, Port: 6443, ListenPort: 9445}

type fakeRedirect struct{ st redirect.State }

func (f *fakeRedirect) State() redirect.State { return f.st }
func (*fakeRedirect) Spec() redirect.Spec     { return redirectSpec }

// TestReportRedirect: the report says where VIP:6443 goes and why; a
// failed change is a problem, a removal for want of a backend is not one
// of its own (the missing backend is).
func TestReportRedirect(t *testing.T) {
	now := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	up := []health.Result{{Backend: netip.MustParseAddrPort("198.18.0.11:6443"), Healthy: true, Checks: 1}}
	snap := func(st redirect.State) Snapshot {
		return Snapshot{Routers: oneRouter(vrrp.Status{State: vrrp.StateBackup}), Health: up,
			Redirect: &RedirectSnapshot{Spec: redirectSpec, State: st}}
	}
	r := BuildReport(now, Info{}, snap(redirect.State{Installed: true, Reason: redirect.ReasonServing, Since: now.Add(-90 * time.Second), Changes: 1}))
	want := RedirectReport{Endpoints: []netip.AddrPort{netip.MustParseAddrPort("198.18.0.10:6443")}, ListenPort: 9445, Table: "hapod_198_18_0_10",
		Installed: true, Reason: "serving", Since: now.Add(-90 * time.Second), SinceSeconds: 90, Changes: 1}
	if !r.Healthy || r.Redirect == nil || !reflect.DeepEqual(*r.Redirect, want) {
		t.Fatalf("installed: healthy=%v %q\n got %+v\nwant %+v", r.Healthy, r.Problems, r.Redirect, want)
	}
	var table bytes.Buffer
	if err := WriteTable(&table, r); err != nil {
		t.Fatal(err)
	}
	if line := "REDIRECT   198.18.0.10:6443  to the proxy on :9445 (serving) for 1m 30s"; !strings.Contains(table.String(), line) {
		t.Errorf("hapod status lacks %q:\n%s", line, table.String())
	}

	failed := redirect.State{Installed: true, Reason: redirect.ReasonNoBackend, Failures: 1, Err: errors.New("netlink: operation not permitted")}
	r = BuildReport(now, Info{}, snap(failed))
	if r.Healthy || len(r.Problems) != 1 || r.Problems[0] != "redirect of 198.18.0.10:6443: netlink: operation not permitted" {
		t.Errorf("failed removal: healthy=%v %q", r.Healthy, r.Problems)
	}
	table.Reset()
	WriteTable(&table, r)
	if line := "to the proxy on :9445 (no healthy backend); last change failed: netlink"; !strings.Contains(table.String(), line) {
		t.Errorf("hapod status lacks %q:\n%s", line, table.String())
	}
	// Dual-stack: one rule per VIP, every endpoint shown, one per line.
	two := snap(failed)
	two.Redirect.Spec.VIPs = append(slices.Clone(redirectSpec.VIPs), netip.MustParseAddr("2001:db8::10"))
	r = BuildReport(now, Info{}, two)
	if len(r.Problems) != 1 || r.Problems[0] != "redirect of 198.18.0.10:6443 and [2001:db8::10]:6443: netlink: operation not permitted" {
		t.Errorf("two VIPs: %q", r.Problems)
	}
	table.Reset()
	WriteTable(&table, r)
	if lines := "REDIRECT   198.18.0.10:6443  to the proxy on :9445 (no healthy backend)"; !strings.Contains(table.String(), lines) ||
		!strings.Contains(table.String(), "\n           [2001:db8::10]:6443\n") {
		t.Errorf("hapod status lacks a line per endpoint:\n%s", table.String())
	}
	if r := BuildReport(now, Info{}, Snapshot{Routers: oneRouter(vrrp.Status{State: vrrp.StateBackup}), Health: up}); r.Redirect != nil {
		t.Error("a plain listener reports a redirect section")
	}
}

func TestMetricsRedirect(t *testing.T) {
	m, _ := newTestMonitor(activeNode())
	src := activeNode().sources()
	fake := &fakeRedirect{redirect.State{Installed: true, Reason: redirect.ReasonServing, Changes: 3, Failures: 1}}
	src.Redirect = fake
	m.SetSources(src)
	want := map[string]float64{"hapod_redirect_installed": 1, "hapod_redirect_changes_total": 3, "hapod_redirect_failures_total": 1}
	got := metricValues(t, m)
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	// Read at scrape time.
	fake.st.Installed = false
	if got := metricValues(t, m)["hapod_redirect_installed"]; got != 0 {
		t.Errorf("after removal: hapod_redirect_installed = %v, want 0", got)
	}
	if _, ok := metricValues(t, func() *Monitor { m, _ := newTestMonitor(activeNode()); return m }())["hapod_redirect_installed"]; ok {
		t.Error("a plain listener exports hapod_redirect_installed")
	}
}
