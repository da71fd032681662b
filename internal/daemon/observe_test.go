package daemon

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/hapod/hapod/pkg/health"
	"github.com/hapod/hapod/pkg/proxy"
)

var (
	be1 = netip.MustParseAddrPort("198.18.0.11:6443")
	be2 = netip.MustParseAddrPort("198.18.0.12:6443")
)

// newPool returns a pool of two backends owned by a proxy that logs to
// log (the pool logs through its proxy's logger).
func newPool(t *testing.T, log *slog.Logger) *proxy.Pool {
	t.Helper()
	pool := proxy.NewPool([]netip.AddrPort{be1, be2}, nil)
	cfg := proxy.DefaultConfig(netip.MustParseAddrPort("198.18.0.10:8443"))
	cfg.Logger = log
	if _, err := proxy.New(cfg, pool); err != nil {
		t.Fatal(err)
	}
	return pool
}

// A health change is logged once, by the daemon, with its cause; the
// pool's own line about it is dropped.
func TestBackendTransitionLoggedOnce(t *testing.T) {
	// The pool does log these messages: if it stops or renames them,
	// poolTransitions must follow.
	var raw bytes.Buffer
	pool := newPool(t, slog.New(slog.NewTextHandler(&raw, nil)))
	pool.SetHealthy(be1, false)
	pool.SetHealthy(be1, true)
	for msg := range poolTransitions {
		if !strings.Contains(raw.String(), "msg=\""+msg+"\"") {
			t.Errorf("the pool no longer logs %q:\n%s", msg, raw.String())
		}
	}

	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	pool = newPool(t, proxyLogger(log))
	down := health.Transition{Backend: be1, Healthy: false, Err: errors.New("connect: connection refused")}
	logBackend(log, down, pool)
	pool.SetHealthy(be1, false)
	logBackend(log, down, pool) // a first verdict equal to the pool's state
	pool.SetHealthy(be1, false)
	up := health.Transition{Backend: be1, Healthy: true}
	logBackend(log, up, pool)
	pool.SetHealthy(be1, true)

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		`level=WARN msg="backend down" backend=198.18.0.11:6443 err="connect: connection refused" healthy=1`,
		`level=WARN msg="backend down" backend=198.18.0.11:6443 err="connect: connection refused" healthy=1`,
		`level=INFO msg="backend up" backend=198.18.0.11:6443 healthy=2`,
	}
	if len(lines) != len(want) {
		t.Fatalf("log:\n%s", out.String())
	}
	for i, l := range lines {
		if _, rest, _ := strings.Cut(l, " "); rest != want[i] { // cut the time
			t.Errorf("line %d = %s\nwant      %s", i, rest, want[i])
		}
	}
}

func TestProxyLoggerKeepsOtherLines(t *testing.T) {
	var out bytes.Buffer
	log := proxyLogger(slog.New(slog.NewTextHandler(&out, nil))).With("component", "proxy")
	log.Info("rebalancing connections", "rate_per_s", 5)
	log.Info("backend up")
	log.Debug("dial failed")
	if s := out.String(); !strings.Contains(s, `msg="rebalancing connections" component=proxy rate_per_s=5`) ||
		strings.Contains(s, "backend up") || strings.Contains(s, "dial failed") {
		t.Errorf("log:\n%s", s)
	}
}
