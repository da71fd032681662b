package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
)

// clashVRID is the VRID both groups of TestVRIDClash use. Two clusters
// collide on their own when their VIPs end in the same byte (hapod's
// default VRID), e.g. 198.18.0.10 and 198.18.1.10; the lab's VIPs share
// one /24, so the test gives both the same --vrid instead.
const clashVRID = 77

// TestVRIDClash runs two hapod clusters of two nodes each on one LAN, with
// the same VRID and different VIPs. Each must elect its own holder and keep
// its own VIP: the other cluster's adverts are dropped as addr_mismatch,
// counted, and warned about. Before the address check the four nodes
// formed one virtual router: one node held its VIP and every other node,
// the other cluster's included, stayed backup, so one VIP was held by
// nobody.
func TestVRIDClash(t *testing.T) {
	l := lab.New(t, 4)
	groups := []struct {
		vip   netip.Prefix
		nodes []int
	}{
		{l.VIP4Prefix(0), []int{0, 1}},
		{l.VIP4Prefix(1), []int{2, 3}},
	}
	// One lab, one node list: statusCluster's scraping works on any node.
	c := &statusCluster{cluster: &cluster{t: t, lab: l, vip: groups[0].vip}}
	c.args = make([][]string, len(l.Nodes))
	c.procs = make([]*lab.Process, len(l.Nodes))
	groupOf := make(map[*lab.Node]int)
	for g, grp := range groups {
		var backends []netip.AddrPort
		for _, i := range grp.nodes {
			n := l.Nodes[i]
			groupOf[n] = g
			a := netip.AddrPortFrom(n.IPv4, backendPort)
			n.ServeTCP(t, a)
			backends = append(backends, a)
		}
		for _, i := range grp.nodes {
			n := l.Nodes[i]
			cfg := hapodConfig(grp.vip, n, backends...)
			cfg.VRRP.VRID, cfg.VRRP.AdvertInterval = clashVRID, 100*time.Millisecond
			cfg.Health.Interval, cfg.Health.Timeout = 500*time.Millisecond, 400*time.Millisecond
			cfg.Health.Rise, cfg.Health.Fall = 2, 2
			c.args[i] = append([]string{hapodBin}, runArgs(cfg)...)
		}
	}
	for i := range l.Nodes {
		c.start(i)
	}

	// Each VIP gets exactly one holder, a node of its own cluster, and
	// keeps it: no fight between the clusters.
	holder := func(g int) (*lab.Node, string) {
		h := l.Holders(groups[g].vip.Addr())
		if len(h) != 1 {
			return nil, fmt.Sprintf("%d nodes hold %v: %v", len(h), groups[g].vip.Addr(), names(h))
		}
		if groupOf[h[0]] != g {
			return nil, fmt.Sprintf("%s of the other cluster holds %v", h[0].Name, groups[g].vip.Addr())
		}
		return h[0], ""
	}
	first := make([]*lab.Node, len(groups))
	deadline := time.Now().Add(10 * time.Second)
	for g := 0; g < len(groups); {
		h, why := holder(g)
		if why == "" {
			first[g] = h
			g++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster %d after 10s: %s", g, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
	end := time.Now().Add(3 * time.Second)
	for time.Now().Before(end) {
		for g := range groups {
			h, why := holder(g)
			if why != "" {
				t.Fatalf("cluster %d: %s", g, why)
			}
			if h != first[g] {
				t.Fatalf("cluster %d: holder changed from %s to %s", g, first[g].Name, h.Name)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Each VIP serves its own cluster's backends.
	for g, grp := range groups {
		target := netip.AddrPortFrom(grp.vip.Addr(), frontendPort)
		var name string
		var err error
		lab.WaitFor(t, 5*time.Second, fmt.Sprintf("client served through %v", target), func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			name, err = l.Client.WhoServes(ctx, target)
			return err == nil
		})
		if n := nodeNamed(l, name); n == nil || groupOf[n] != g {
			t.Errorf("%v served by %q, want a node of cluster %d", target, name, g)
		}
	}

	// Every node hears the other cluster's holder, drops its adverts as
	// addr_mismatch, never as anything else, and says so in its log.
	const series = `hapod_vrrp_dropped_packets_total{family="ipv4",reason="addr_mismatch"}`
	for i, n := range l.Nodes {
		c.waitMetric(i, series, "> 0", func(v float64) bool { return v > 0 })
		m := c.mustMetrics(i)
		for k, v := range m {
			if strings.HasPrefix(k, "hapod_vrrp_dropped_packets_total{") && k != series && v > 0 {
				t.Errorf("%s: %s = %v, want only addr_mismatch drops", n.Name, k, v)
			}
		}
		if got := m[`hapod_vrrp_state{family="ipv4",state="active"}`]; got != b2f(n == first[groupOf[n]]) {
			t.Errorf("%s: active %v, holder of its cluster is %s", n.Name, got, first[groupOf[n]].Name)
		}
		other := groups[1-groupOf[n]].vip.Addr().String()
		lab.WaitFor(t, 5*time.Second, n.Name+" warns about the other cluster", func() bool {
			for _, line := range strings.Split(c.procs[i].Log(), "\n") {
				if strings.Contains(line, "level=WARN") && strings.Contains(line, "reason=addr_mismatch") &&
					strings.Contains(line, other) && strings.Contains(line, "--vrid") {
					return true
				}
			}
			return false
		})
	}
}

// nodeNamed returns the lab host called name, or nil.
func nodeNamed(l *lab.Lab, name string) *lab.Node {
	for _, n := range l.Hosts() {
		if n.Name == name {
			return n
		}
	}
	return nil
}
