package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/config"
)

// The client-through-the-proxy view of the failover benchmark (issue 23):
// what an API client sees, an HTTPS request through VIP:8443 that reaches
// a kube-apiserver, not a TCP connect to the VIP. hapod (VRRP and proxy,
// its default HTTPS /readyz checks) against keepalived + haproxy as
// kubeadm's HA guide configures them (haproxy's `check` defaults: inter
// 2s, fall 3, rise 2), side by side, each node running a fake
// kube-apiserver.

// clientProbeInterval and clientProbeTimeout are the client's: a request
// every 20 ms (outages resolved to that), failing after 1 s like the
// kubeadm harness's client.
const (
	clientProbeInterval = 20 * time.Millisecond
	clientProbeTimeout  = time.Second
)

// haproxyGuideConfig is haproxy.cfg as kubeadm's HA guide
// (docs/ha-considerations.md, "haproxy configuration") writes it, in
// front of backends on port 6443 with the frontend on 8443.
func haproxyGuideConfig(backends []netip.AddrPort) string {
	var b strings.Builder
	b.WriteString(`global
    maxconn 4000

defaults
    mode                    http
    option                  dontlognull
    option http-server-close
    option                  redispatch
    retries                 1
    timeout http-request    10s
    timeout queue           20s
    timeout connect         5s
    timeout client          35s
    timeout server          35s
    timeout http-keep-alive 10s
    timeout check           10s
    maxconn                 3000

frontend apiserver
    bind *:` + strconv.Itoa(frontendPort) + `
    mode tcp
    default_backend apiserverbackend

backend apiserverbackend
    option httpchk
    http-check connect ssl
    http-check send meth GET uri /healthz
    http-check expect status 200
    mode tcp
    balance roundrobin
`)
	for i, a := range backends {
		fmt.Fprintf(&b, "    server node%d %s check verify none\n", i, a)
	}
	return b.String()
}

// proxyBenchLab is a lab with a fake kube-apiserver on every node's
// address, port 6443; it returns the VIP (one) and their addresses.
func proxyBenchLab(t *testing.T) (*lab.Lab, []netip.Prefix, []netip.AddrPort) {
	t.Helper()
	l := lab.New(t, 3)
	var backends []netip.AddrPort
	for _, n := range l.Nodes {
		a := netip.AddrPortFrom(n.IPv4, backendPort)
		startAPIServer(t, n, a)
		backends = append(backends, a)
	}
	return l, []netip.Prefix{l.VIP4Prefix(0)}, backends
}

// newHapodProxyGroup is hapod with its defaults (health included) in front
// of fake apiservers.
func newHapodProxyGroup(t *testing.T, c benchCase) *benchGroup {
	t.Helper()
	l, vips, backends := proxyBenchLab(t)
	return startHapodGroup(t, l, vips, c, backends, func(cfg *config.Config) { cfg.Health = config.Default().Health })
}

// newKeepalivedHAProxyGroup is keepalived (as newKeepalivedGroup) and
// haproxy with the guide's configuration on every node.
func newKeepalivedHAProxyGroup(t *testing.T, c benchCase) *benchGroup {
	t.Helper()
	l, vips, backends := proxyBenchLab(t)
	cfgPath := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(haproxyGuideConfig(backends)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, n := range l.Nodes {
		n.Start(t, "haproxy", "-db", "-f", cfgPath)
	}
	return startKeepalivedGroup(t, "keepalived+haproxy", l, vips, c)
}

// clientRun is one failover seen by the HTTPS client.
type clientRun struct {
	// outage is from the fault to the first success after it.
	outage time.Duration
	// late counts requests started after the VIP moved that failed
	// anyway: sent to the dead node's apiserver by the new holder's
	// proxy, or sent before the client's ARP entry followed.
	late int
	// lastFail is from the fault to the start of the last request that
	// failed: how long clients kept seeing errors, where outage ends at
	// the first success.
	lastFail time.Duration
}

// measureClient is measure with the HTTPS client through VIP:8443.
func (g *benchGroup) measureClient(t *testing.T, f faultKind) clientRun {
	t.Helper()
	h := g.settled(t)
	url := "https://" + netip.AddrPortFrom(g.vips[0].Addr(), frontendPort).String() + "/fake/whoami"
	probe := httpsProbe(t, g.lab, url, clientProbeInterval, clientProbeTimeout)
	defer probe.Stop()
	lab.WaitFor(t, 15*time.Second, g.impl+": the client served before the fault", func() bool {
		r := probe.Snapshot()
		s, ok := r.LastSample()
		return ok && s.OK && r.Attempts >= 5
	})
	// Any phase of the adverts and of the health checks (2 s).
	time.Sleep(rand.N(2 * time.Second))
	at := time.Now()
	g.fault(t, h, f)
	var moved time.Time
	lab.WaitFor(t, g.settleTimeout(), g.impl+": another holder", func() bool {
		if len(g.holders(h)) == 0 {
			return false
		}
		moved = time.Now()
		return true
	})
	lab.WaitFor(t, 30*time.Second, g.impl+": ten successes in a row after the fault", func() bool {
		ok := 0
		for _, s := range slices.Backward(probe.Snapshot().Samples) {
			if !s.OK || s.At.Before(at) {
				break
			}
			ok++
		}
		return ok >= 10
	})
	// Until the failures sent to the dead node have ended: no failure
	// for quiet (longer than the client's timeout). haproxy's checks of
	// a silent server each wait for `timeout connect` (5 s in the guide),
	// so its fall of 3 takes about 15 s.
	const quiet = 3 * time.Second
	lab.WaitFor(t, 60*time.Second, g.impl+": no failed request for "+quiet.String(), func() bool {
		r := probe.Snapshot()
		if len(r.Samples) == 0 || time.Since(at) < quiet {
			return false
		}
		for _, s := range slices.Backward(r.Samples) {
			if s.At.Before(time.Now().Add(-quiet)) {
				return true
			}
			if !s.OK {
				return false
			}
		}
		return true
	})
	res := probe.Stop()
	r := clientRun{outage: res.OutageAfter(at)}
	if o, ok := res.OutageAt(at); ok && !o.Recovered {
		t.Fatalf("%s: the client did not recover after %v: %v", g.impl, f, res)
	}
	for _, s := range res.Samples {
		if !s.OK && s.At.After(moved) {
			r.late++
		}
		if !s.OK && s.At.After(at) {
			r.lastFail = max(r.lastFail, s.At.Sub(at))
		}
	}
	g.restore(t, h, f)
	return r
}

// TestBenchFailoverClient prints the client-through-the-proxy table (see
// the top of this file). HAPOD_BENCH=1 runs it (make bench-failover);
// HAPOD_BENCH_RUNS sets the runs per fault (default 10; the hard fault
// runs twice as often).
func TestBenchFailoverClient(t *testing.T) {
	if os.Getenv("HAPOD_BENCH") != "1" {
		t.Skip("a benchmark: set HAPOD_BENCH=1 (make bench-failover)")
	}
	lab.Tool(t, "keepalived", "keepalived")
	lab.Tool(t, "haproxy", "haproxy")
	runs := benchRuns(t)
	c := benchCases[0]
	groups := []*benchGroup{newHapodProxyGroup(t, c), newKeepalivedHAProxyGroup(t, c)}
	type row struct {
		f                faultKind
		outage, lastFail map[string][]time.Duration
		late             map[string][]int
	}
	var rows []row
	for _, f := range []faultKind{faultHard, faultGraceful} {
		n := runs
		if f == faultHard {
			n = 2 * runs
		}
		r := row{f: f, outage: map[string][]time.Duration{}, lastFail: map[string][]time.Duration{}, late: map[string][]int{}}
		t.Run(f.short(), func(t *testing.T) {
			for i := range n {
				order := groups
				if i%2 == 1 {
					order = []*benchGroup{groups[1], groups[0]}
				}
				for _, g := range order {
					res := g.measureClient(t, f)
					r.outage[g.impl] = append(r.outage[g.impl], res.outage)
					r.late[g.impl] = append(r.late[g.impl], res.late)
					r.lastFail[g.impl] = append(r.lastFail[g.impl], res.lastFail)
					t.Logf("%v run %d %s: outage %v, last failed request %v after the fault, %d requests failed after the VIP moved", f, i+1, g.impl,
						res.outage.Round(time.Millisecond), res.lastFail.Round(time.Millisecond), res.late)
				}
			}
		})
		rows = append(rows, r)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nClient through the proxy (%s): HTTPS GET through VIP:%d every %v, %v timeout, a new connection each.\n",
		c.name, frontendPort, clientProbeInterval, clientProbeTimeout)
	b.WriteString("Outage (ms): fault to first success after it. Last failure (ms): fault to the start of the last request that failed.\n")
	b.WriteString("Late: requests sent after the VIP moved that failed anyway, per run.\n\n")
	b.WriteString("| fault | runs | outage hapod p50 / p99 / max | outage keepalived+haproxy p50 / p99 / max | ratio p50 h/k | ratio p99 h/k | last failure hapod p50 / p99 / max | last failure k+h p50 / p99 / max | late max h / k | runs with late failures h / k |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		h, k := r.outage["hapod"], r.outage["keepalived+haproxy"]
		h50, h99, hmax := percentiles(h)
		k50, k99, kmax := percentiles(k)
		lateMax := func(l []int) int { return slices.Max(append([]int{0}, l...)) }
		withLate := func(l []int) int {
			n := 0
			for _, x := range l {
				if x > 0 {
					n++
				}
			}
			return n
		}
		ratio := func(a, b time.Duration) string {
			if b == 0 {
				return "n/a"
			}
			return strconv.FormatFloat(float64(a)/float64(b), 'f', 2, 64)
		}
		lh50, lh99, lhmax := percentiles(r.lastFail["hapod"])
		lk50, lk99, lkmax := percentiles(r.lastFail["keepalived+haproxy"])
		fmt.Fprintf(&b, "| %s | %d | %s / %s / %s | %s / %s / %s | %s | %s | %s / %s / %s | %s / %s / %s | %d / %d | %d / %d |\n",
			r.f, len(h), ms(h50), ms(h99), ms(hmax), ms(k50), ms(k99), ms(kmax), ratio(h50, k50), ratio(h99, k99),
			ms(lh50), ms(lh99), ms(lhmax), ms(lk50), ms(lk99), ms(lkmax),
			lateMax(r.late["hapod"]), lateMax(r.late["keepalived+haproxy"]),
			withLate(r.late["hapod"]), withLate(r.late["keepalived+haproxy"]))
	}
	fmt.Print(b.String())
	t.Log("\n" + b.String())
	if out := os.Getenv("HAPOD_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out+".client", []byte(b.String()), 0o644); err != nil {
			t.Errorf("HAPOD_BENCH_OUT: %v", err)
		}
	}
}
