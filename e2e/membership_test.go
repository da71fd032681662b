//lint:file-ignore SA1019 the Node authorizer lets a node identity get Endpoints, and grants nothing on EndpointSlices (see package discover)

package e2e

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/hapod/hapod/internal/fakeapiserver"
	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/health"
	"github.com/hapod/hapod/pkg/status"
)

// memberGrace is --member-grace in TestMembership: short, so the test
// sees a removal, long against the 3 s discovery interval.
const memberGrace = 8 * time.Second

// TestMembership: three nodes, each started with only its own apiserver
// as --backend and one unicast --peer, discover the others from the
// default/kubernetes Endpoints (served by fake apiservers sharing one CA,
// read with a per-node kubelet-like client certificate); a 4th apiserver
// listed is used by every node's proxy within seconds; the API going away
// changes nothing, for as long as it lasts; a restart with the API down
// starts from the persisted members; the 4th, no longer listed, stops
// getting new connections after the grace period, not before.
func TestMembership(t *testing.T) {
	l := lab.New(t, 4)
	c := &cluster{t: t, lab: l, vip: l.VIP4Prefix(0), port: frontendPort}
	dir := t.TempDir()
	ca, err := fakeapiserver.NewCA("e2e-cluster-ca")
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	epFile := filepath.Join(dir, "endpoints.json")
	addr := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(l.Nodes[i].Addr(c.vip.Addr()), backendPort)
	}
	setMembers := func(idx ...int) {
		t.Helper()
		ep := corev1.Endpoints{Subsets: []corev1.EndpointSubset{{
			Ports: []corev1.EndpointPort{{Name: "https", Port: backendPort, Protocol: corev1.ProtocolTCP}},
		}}}
		for _, i := range idx {
			ep.Subsets[0].Addresses = append(ep.Subsets[0].Addresses, corev1.EndpointAddress{IP: addr(i).Addr().String()})
		}
		b, err := json.Marshal(ep)
		if err != nil {
			t.Fatal(err)
		}
		tmp := epFile + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, epFile); err != nil {
			t.Fatal(err)
		}
	}
	startAPI := func(i int) {
		n := l.Nodes[i]
		c.apis = append(c.apis, c.startAPIServer(n, addr(i), "--ca-dir="+dir, "--endpoints-file="+epFile))
	}
	setMembers(0, 1, 2)
	for i := range 3 {
		startAPI(i)
	}

	for i, n := range l.Nodes[:3] {
		ndir := filepath.Join(dir, n.Name)
		if err := os.MkdirAll(ndir, 0o755); err != nil {
			t.Fatal(err)
		}
		kc, err := ca.Kubeconfig("system:node:"+n.Name, "https://"+netip.AddrPortFrom(c.vip.Addr(), frontendPort).String())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ndir, "kubelet.conf"), kc, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := hapodConfig(c.vip, n, addr(i))
		cfg.Health.Check = health.KindHTTPS
		cfg.Health.Interval, cfg.Health.Timeout = 500*time.Millisecond, 400*time.Millisecond
		cfg.Health.Rise, cfg.Health.Fall = 2, 2
		// Unicast, each node knowing one peer only: the rest comes from
		// discovery, or the nodes never hear each other.
		cfg.VRRP.Peers = []netip.Addr{addr((i + 1) % 3).Addr()}
		cfg.Membership.Discover = true
		cfg.Membership.Kubeconfig = filepath.Join(ndir, "kubelet.conf")
		cfg.Membership.StateDir = filepath.Join(ndir, "state")
		cfg.Membership.Grace = memberGrace
		c.args = append(c.args, append([]string{hapodBin}, runArgs(cfg)...))
		c.procs = append(c.procs, nil)
	}
	for i := range 3 {
		c.start(i)
	}

	nodes := []int{0, 1, 2}
	// 1. Each node ends up with the three apiservers, all up; one holds
	// the VIP and both others hear its adverts, though it was given one
	// of them as --peer.
	took := c.waitMembers(nodes, 30*time.Second, "three members, up", func(r status.Report) bool {
		return upBackends(r) == 3
	})
	t.Logf("discovery: every node proxies to the 3 apiservers %v after start", took.Round(time.Millisecond))
	holder := c.stableOneHolder(time.Second)
	c.waitMembers(nodes, 10*time.Second, "the holder heard", func(r status.Report) bool {
		return c.router(r).ActiveRouter == holder.Addr(c.vip.Addr())
	})

	// 2. A 4th apiserver joins the list: every node's proxy uses it.
	startAPI(3)
	setMembers(0, 1, 2, 3)
	took = c.waitMembers(nodes, 30*time.Second, "the 4th apiserver up", func(r status.Report) bool {
		return backendHealth(r, addr(3)) == status.HealthUp
	})
	t.Logf("a 4th apiserver listed is up in every node's proxy %v later", took.Round(time.Millisecond))
	hc := c.apiClient()
	lab.WaitFor(t, 10*time.Second, "a request through the VIP served by "+l.Nodes[3].Name, func() bool {
		name, err := c.whoami(hc)
		return err == nil && name == l.Nodes[3].Name
	})

	// 3. The API goes away (every apiserver answers 503 for the list):
	// nothing changes, for several grace periods.
	if err := os.Rename(epFile, epFile+".off"); err != nil {
		t.Fatal(err)
	}
	c.waitMembers(nodes, 30*time.Second, "the API seen unreachable", func(r status.Report) bool {
		return r.Membership != nil && !r.Membership.APIReachable && !r.Membership.LastRead.IsZero()
	})
	time.Sleep(3 * memberGrace)
	for _, i := range nodes {
		if got := c.members(i); !slices.Equal(got, []netip.AddrPort{addr(0), addr(1), addr(2), addr(3)}) {
			t.Fatalf("%s after %v without the API: members %v", l.Nodes[i].Name, 3*memberGrace, got)
		}
	}

	// 4. A restart with the API down starts from the persisted members:
	// node 1's --backend names only itself.
	if err := c.kill(0, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.start(0)
	c.waitMembers([]int{0}, 30*time.Second, "the restarted node proxying to 4 apiservers", func(r status.Report) bool {
		return upBackends(r) == 4
	})
	r, err := c.report(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range r.Membership.Members {
		if want := "persisted"; m.Address != addr(0) && m.Source != want {
			t.Errorf("after the restart %v is %s, want %s", m.Address, m.Source, want)
		}
	}

	// 5. The API back without the 4th: it stays for the grace period,
	// then leaves every node, and gets no new connection.
	setMembers(0, 1, 2)
	back := time.Now()
	c.waitMembers(nodes, 30*time.Second, "a removal pending", func(r status.Report) bool {
		return r.Membership.APIReachable && pendingRemoval(r, addr(3))
	})
	took = c.waitMembers(nodes, memberGrace+30*time.Second, "the 4th apiserver gone", func(r status.Report) bool {
		return backendHealth(r, addr(3)) == ""
	})
	if since := time.Since(back); since < memberGrace {
		t.Fatalf("the 4th apiserver left %v after the API came back, before the grace period %v", since, memberGrace)
	}
	t.Logf("a member no longer listed left every node %v after the API came back (grace %v)", took.Round(time.Millisecond), memberGrace)
	for range 30 {
		name, err := c.whoami(hc)
		if err != nil {
			t.Fatalf("request through the VIP: %v", err)
		}
		if name == l.Nodes[3].Name {
			t.Fatalf("a new connection went to the removed apiserver %s", name)
		}
	}
}

// members returns node i's members, by address.
func (c *cluster) members(i int) []netip.AddrPort {
	r, _ := c.report(i)
	if r.Membership == nil {
		return nil
	}
	var out []netip.AddrPort
	for _, m := range r.Membership.Members {
		out = append(out, m.Address)
	}
	return out
}

// waitMembers waits until cond holds for every node in nodes and returns
// how long that took.
func (c *cluster) waitMembers(nodes []int, timeout time.Duration, what string, cond func(status.Report) bool) time.Duration {
	c.t.Helper()
	start := time.Now()
	lab.WaitFor(c.t, timeout, what+" on every node", func() bool {
		for _, i := range nodes {
			r, _ := c.report(i) // a node not answering yet fails cond
			if !cond(r) {
				return false
			}
		}
		return true
	})
	return time.Since(start)
}

func upBackends(r status.Report) int {
	n := 0
	for _, b := range r.Backends {
		if b.Health == status.HealthUp {
			n++
		}
	}
	return n
}

// backendHealth is a's health in r, "" when r does not list it.
func backendHealth(r status.Report, a netip.AddrPort) string {
	for _, b := range r.Backends {
		if b.Address == a {
			return b.Health
		}
	}
	return ""
}

func pendingRemoval(r status.Report, a netip.AddrPort) bool {
	if r.Membership == nil {
		return false
	}
	for _, m := range r.Membership.Members {
		if m.Address == a {
			return !m.RemoveAt.IsZero()
		}
	}
	return false
}
