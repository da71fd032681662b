package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/status"
)

// serveReport serves r as a status server's /status on loopback and
// returns its address.
func serveReport(t *testing.T, r status.Report) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/status" {
			http.NotFound(w, req)
			return
		}
		_ = json.NewEncoder(w).Encode(r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func report(healthy bool) status.Report {
	r := status.Report{
		Node: "cp1",
		Time: time.Now(),
		Routers: []status.RouterReport{{
			Family: config.IPv4, State: "Active", VRID: 10,
			VIPs:         []status.VIPReport{{Prefix: netip.MustParsePrefix("198.18.0.10/24"), Held: true}},
			BasePriority: 100, EffectivePriority: 100, Since: time.Now().Add(-time.Minute), LastReason: "master down timer expired",
			Peers: []status.PeerReport{{Address: netip.MustParseAddr("198.18.0.12"), Priority: 0, IntervalSeconds: 1,
				LastHeard: time.Now().Add(-time.Minute), LastHeardSecondsAgo: 60, Adverts: 3000}},
		}, {
			Family: config.IPv6, State: "Backup", VRID: 11, ActiveRouter: netip.MustParseAddr("2001:db8::12"),
			VIPs:         []status.VIPReport{{Prefix: netip.MustParsePrefix("2001:db8::10/64")}},
			BasePriority: 100, EffectivePriority: 100, Since: time.Now().Add(-time.Minute), LastReason: "startup",
		}},
		Proxy: status.ProxyReport{
			Listen: []netip.AddrPort{netip.MustParseAddrPort("198.18.0.10:9445"), netip.MustParseAddrPort("[2001:db8::10]:9445")},
			Active: 4, Accepted: 9,
		},
		Backends: []status.BackendReport{
			{Address: netip.MustParseAddrPort("198.18.0.11:6443"), Health: status.HealthUp, Checks: 3, ActiveConnections: 4, TotalConnections: 9},
			{Address: netip.MustParseAddrPort("198.18.0.12:6443"), Health: status.HealthDown, Checks: 3, LastError: "connection refused"},
		},
		Healthy: true,
	}
	if !healthy {
		r.Backends[0].Health = status.HealthDown
		r.Healthy, r.Problems = false, []string{"no healthy backend (of 2)"}
	}
	return r
}

func TestStatusHealthy(t *testing.T) {
	addr := serveReport(t, report(true))
	r := run(t, fakeHost(), "status", "--status-addr", addr)
	if r.err != nil {
		t.Fatalf("healthy node: %v", r.err)
	}
	for _, s := range []string{"cp1", "healthy", "VRRP ipv4  ACTIVE", "198.18.0.10/24", "held here: yes",
		"VRRP ipv6  BACKUP", "held here: no, active router: 2001:db8::12",
		"PROXY      198.18.0.10:9445  active 4, accepted 9\n           [2001:db8::10]:9445\n",
		"198.18.0.11:6443  up", "198.18.0.12:6443  down", "connection refused",
		"PEER", "priority 0 (leaving), every 1.0 s, heard 1m 00s ago, 3000 adverts\n"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("output lacks %q:\n%s", s, r.stdout)
		}
	}
	if !regexp.MustCompile(`\nVIP +2001:db8::10/64 +held here: no`).MatchString(r.stdout) {
		t.Errorf("no line for the IPv6 VIP:\n%s", r.stdout)
	}
}

func TestStatusUnhealthyExitsNonZeroWithOneLine(t *testing.T) {
	addr := serveReport(t, report(false))
	r := run(t, fakeHost(), "status", "--status-addr", addr)
	if !errors.Is(r.err, status.ErrUnhealthy) || r.err.Error() != "not healthy: no healthy backend (of 2)" {
		t.Errorf("err = %v", r.err)
	}
	if !strings.Contains(r.stdout, "NOT HEALTHY") {
		t.Errorf("the table is still printed:\n%s", r.stdout)
	}
}

func TestStatusJSON(t *testing.T) {
	addr := serveReport(t, report(false))
	r := run(t, fakeHost(), "status", "--status-addr", addr, "-o", "json")
	if !errors.Is(r.err, status.ErrUnhealthy) {
		t.Errorf("err = %v", r.err)
	}
	var got status.Report
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if got.Node != "cp1" || len(got.Routers) != 2 || got.Routers[0].State != "Active" || got.Routers[1].Family != config.IPv6 ||
		len(got.Backends) != 2 || got.Healthy {
		t.Errorf("decoded %+v", got)
	}
}

func TestStatusUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := run(t, fakeHost(), "status", "--status-addr", addr)
	if !errors.Is(r.err, status.ErrUnreachable) || strings.Contains(r.err.Error(), "\n") || r.stdout != "" {
		t.Errorf("err = %v, stdout %q", r.err, r.stdout)
	}
	if c := ExitCode(r.err); c != ExitNotRunning {
		t.Errorf("exit status %d, want %d", c, ExitNotRunning)
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("bad flag"), 1},
		{status.ErrUnhealthy, 1},
		{fmt.Errorf("wrapped: %w", exitError{errors.New("gone"), 3}), 3},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestStatusBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "-o", "yaml"}, `--output "yaml": want table or json`},
		{[]string{"status", "--status-addr", "localhost"}, "status-addr"},
		{[]string{"status", "extra"}, "unexpected arguments"},
	} {
		r := run(t, fakeHost(), tc.args...)
		if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, r.err, tc.want)
		}
	}
}
