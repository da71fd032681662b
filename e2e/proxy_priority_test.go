package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/config"
)

// TestNoBackendLowersPriority: the VIP holder loses every kube-apiserver
// while the other nodes still reach some. Its priority drops by
// --no-backend-weight (default 50), a backup preempts it (preemption is
// on by default), and clients through the VIP are served again. When its
// backends return its priority is back to 100, equal to the new holder's,
// and it does not take the VIP back: a move costs an outage and buys
// nothing.
//
// The holder is cut off without any tool but ip: "prohibit" routes in its
// namespace to the other nodes (connect fails at once), and its own fake
// apiserver switched to slow mode, which delays /readyz by 2s, longer
// than --health-timeout=400ms: a slow apiserver counts as down, for every
// node, though it still accepts connections.
func TestNoBackendLowersPriority(t *testing.T) {
	c := newCluster(t, clusterOptions{apiservers: true})
	holder, _ := c.waitOneHolder(5 * time.Second)
	hi := c.index(holder)
	hc := c.apiClient()
	lab.WaitFor(t, 5*time.Second, "the VIP answers", func() bool { _, err := c.whoami(hc); return err == nil })
	sc := &statusCluster{cluster: c}
	sc.waitMetric(hi, "hapod_proxy_healthy_backends", "= 3", func(v float64) bool { return v == 3 })
	effective, base := c.series("hapod_vrrp_effective_priority"), c.series("hapod_vrrp_base_priority")
	if m := sc.mustMetrics(hi); m[effective] != config.DefaultPriority || m[base] != config.DefaultPriority {
		t.Fatalf("%s: priority base %v effective %v, want %d both", holder.Name, m[base], m[effective], config.DefaultPriority)
	}
	ownAPI := netip.AddrPortFrom(holder.IPv4, backendPort)

	// Cut the holder off from every apiserver.
	start := time.Now()
	var others []*lab.Node
	for _, n := range c.lab.Nodes {
		if n != holder {
			others = append(others, n)
			holder.Run(t, "ip", "route", "add", "prohibit", n.IPv4.String()+"/32")
		}
	}
	c.setMode(hi, "slow")

	// Fall x interval until the last backend is down (a slow check takes
	// the whole timeout, and the first may start up to an interval late),
	// then the VRRP failover: 3 x 100ms adverts plus skew.
	const (
		interval = 500 * time.Millisecond
		timeout  = 400 * time.Millisecond
		failover = 400 * time.Millisecond
	)
	bound := markedDown + interval + timeout + failover
	// Waited for twice as long, so a slow run is reported with its time,
	// not as a hang.
	c.waitNotHolding(holder, 2*bound)
	next, _ := c.waitOneHolder(2*bound, holder)
	took := time.Since(start)
	t.Logf("%s lost its backends: %s holds the VIP %v later (bound %v)", holder.Name, next.Name, took.Round(time.Millisecond), bound)
	if took > bound {
		t.Errorf("the VIP moved %v after the holder lost its backends; fall x interval + timeout + failover is %v", took, bound)
	}

	// The degraded node says why and shows it.
	m := sc.mustMetrics(hi)
	for series, want := range map[string]float64{
		effective:                      config.DefaultPriority - config.DefaultNoBackendWeight,
		base:                           config.DefaultPriority,
		"hapod_proxy_healthy_backends": 0,
		c.series("hapod_vrrp_state", `state="backup"`): 1,
		c.vipSeries("hapod_vrrp_vip_held"):             0,
	} {
		if m[series] != want {
			t.Errorf("%s: %s = %v, want %v", holder.Name, series, m[series], want)
		}
	}
	if log := c.procs[hi].Log(); !strings.Contains(log, "no healthy kube-apiserver: VRRP priority lowered") {
		t.Errorf("%s did not log the lowered priority:\n%s", holder.Name, lastLines(log, 15))
	}
	// Slow is down for the new holder too, which can connect to it.
	ni := c.index(next)
	sc.waitMetric(ni, backendSeries("hapod_health_backend_up", ownAPI), "= 0 (slow /readyz)", func(v float64) bool { return v == 0 })
	if n := sc.mustMetrics(ni)["hapod_proxy_healthy_backends"]; n != 2 {
		t.Errorf("%s: %v healthy backends, want 2 (all but the slow one)", next.Name, n)
	}

	// Clients through the VIP are served, never by the slow apiserver.
	got := c.spread(hc, 30)
	t.Logf("30 requests through %s: %v", next.Name, got)
	if got[holder.Name] != 0 {
		t.Errorf("the slow apiserver on %s served %d requests", holder.Name, got[holder.Name])
	}

	// The backends return: priority 100 again, equal to the holder's.
	for _, n := range others {
		holder.Run(t, "ip", "route", "del", "prohibit", n.IPv4.String()+"/32")
	}
	c.setMode(hi, "ok")
	sc.waitMetric(hi, "hapod_proxy_healthy_backends", "= 3", func(v float64) bool { return v == 3 })
	sc.waitMetric(hi, effective, fmt.Sprintf("= %d", config.DefaultPriority),
		func(v float64) bool { return v == config.DefaultPriority })
	transitions := sumPrefix(sc.mustMetrics(hi), "hapod_vrrp_transitions_total")
	// 3s is 30 advert intervals: a preemption would have happened.
	if h := c.stableOneHolder(3 * time.Second); h != next {
		t.Fatalf("%s holds the VIP after %s's backends came back, want %s kept", h.Name, holder.Name, next.Name)
	}
	if n := sumPrefix(sc.mustMetrics(hi), "hapod_vrrp_transitions_total"); n != transitions {
		t.Errorf("%s changed state %v times after its backends came back, want 0", holder.Name, n-transitions)
	}
	got = c.spread(hc, 30)
	t.Logf("backends back, the VIP stays on %s: %v", next.Name, got)
}
