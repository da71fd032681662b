package e2e

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/health"
)

// frontendPort is hapod's proxy port on the VIP in these tests.
const frontendPort = 8443

// backendPort is where each node's stand-in kube-apiserver listens.
const backendPort = 6443

// cluster is hapod running on every node of a lab, each node also running
// a TCP backend on its own address that greets with the node's name.
type cluster struct {
	t   *testing.T
	lab *lab.Lab
	vip netip.Prefix
	// port is the endpoint's port on the VIP: frontendPort, or 6443
	// with clusterOptions.redirect.
	port  uint16
	args  [][]string
	procs []*lab.Process
	// apis are the fake kube-apiservers (clusterOptions.apiservers).
	apis []*lab.Process
}

type clusterOptions struct {
	nodes   int
	ipv6    bool
	unicast bool
	// apiservers runs the fake kube-apiserver (TLS, /readyz, watches) on
	// each node and keeps hapod's default HTTPS health check; otherwise
	// plain TCP servers that greet with the node name, checked with tcp.
	apiservers bool
	// redirect binds each fake kube-apiserver to 0.0.0.0:6443, as
	// kube-apiserver does by default, and makes VIP:6443 the endpoint:
	// hapod's proxy listens on its default listen port and VIP:6443
	// reaches it through the nftables redirect. Needs apiservers.
	redirect bool
	// configure changes every node's Config after the defaults above.
	configure func(*config.Config)
	// extra are arguments after the Config's, for what no Config field
	// holds (an obsolete flag).
	extra []string
	// wrap prefixes hapod's command line, e.g. prlimit.
	wrap []string
}

// newCluster builds a lab and starts hapod on every node.
func newCluster(t *testing.T, o clusterOptions) *cluster {
	t.Helper()
	if o.nodes == 0 {
		o.nodes = 3
	}
	l := lab.New(t, o.nodes)
	c := &cluster{t: t, lab: l, vip: l.VIP4Prefix(0), port: frontendPort}
	if o.redirect {
		c.port = config.DefaultPort
	}
	if o.ipv6 {
		c.vip = l.VIP6Prefix(0)
	}
	var backends []netip.AddrPort
	for _, n := range l.Nodes {
		a := netip.AddrPortFrom(n.Addr(c.vip.Addr()), backendPort)
		switch {
		case o.redirect:
			wildcard := netip.IPv4Unspecified()
			if o.ipv6 {
				wildcard = netip.IPv6Unspecified()
			}
			c.apis = append(c.apis, c.startAPIServer(n, netip.AddrPortFrom(wildcard, backendPort)))
		case o.apiservers:
			c.apis = append(c.apis, c.startAPIServer(n, a))
		default:
			n.ServeTCP(t, a)
		}
		backends = append(backends, a)
	}
	for _, n := range l.Nodes {
		cfg := hapodConfig(c.vip, n, backends...)
		if o.apiservers {
			cfg.Health.Check = health.KindHTTPS
		}
		if o.redirect {
			cfg.Proxy.Port = c.port // the listen port is derived
		}
		cfg.Health.Interval, cfg.Health.Timeout = 500*time.Millisecond, 400*time.Millisecond
		cfg.Health.Rise, cfg.Health.Fall = 2, 2
		if o.unicast {
			for _, p := range l.Nodes {
				if p != n {
					cfg.VRRP.Peers = append(cfg.VRRP.Peers, p.Addr(c.vip.Addr()))
				}
			}
		}
		if o.configure != nil {
			o.configure(&cfg)
		}
		args := append(append(append([]string{}, o.wrap...), hapodBin), runArgs(cfg)...)
		args = append(args, o.extra...)
		c.args = append(c.args, args)
		c.procs = append(c.procs, nil)
	}
	for i := range l.Nodes {
		c.start(i)
	}
	return c
}

// startAPIServer runs the fake kube-apiserver on n at addr, with extra
// arguments, and waits until it listens.
func (c *cluster) startAPIServer(n *lab.Node, addr netip.AddrPort, extra ...string) *lab.Process {
	c.t.Helper()
	return startAPIServer(c.t, n, addr, extra...)
}

// startAPIServer is cluster.startAPIServer for any test.
func startAPIServer(t *testing.T, n *lab.Node, addr netip.AddrPort, extra ...string) *lab.Process {
	t.Helper()
	args := append([]string{"--listen=" + addr.String(), "--name=" + n.Name, "--watch-interval=200ms"}, extra...)
	p := n.Start(t, fakeAPIServerBin, args...)
	lab.WaitFor(t, 10*time.Second, n.Name+"'s apiserver listening", func() bool { return strings.Contains(p.Log(), "ready ") })
	return p
}

// start (re)starts hapod on node i.
func (c *cluster) start(i int) {
	c.t.Helper()
	c.procs[i] = c.lab.Nodes[i].Start(c.t, c.args[i][0], c.args[i][1:]...)
}

func (c *cluster) index(n *lab.Node) int {
	for i, m := range c.lab.Nodes {
		if m == n {
			return i
		}
	}
	c.t.Fatalf("node %s not in cluster", n.Name)
	return -1
}

// holders returns the nodes holding the VIP, leaving out the ones in skip.
func (c *cluster) holders(skip ...*lab.Node) []*lab.Node {
	var out []*lab.Node
next:
	for _, n := range c.lab.Holders(c.vip.Addr()) {
		for _, s := range skip {
			if n == s {
				continue next
			}
		}
		out = append(out, n)
	}
	return out
}

// waitOneHolder waits until exactly one node (not in skip) holds the VIP
// and returns it with the time it took to be seen. Nodes of equal priority
// whose timers fire together both take the VIP over for a millisecond or
// two, and the first to add it may be the one that steps down (in CI a
// stability check once caught both), so a holder counts only if it is
// still the only one settle later.
func (c *cluster) waitOneHolder(timeout time.Duration, skip ...*lab.Node) (*lab.Node, time.Duration) {
	c.t.Helper()
	const settle = 20 * time.Millisecond
	start := time.Now()
	var h []*lab.Node
	for time.Since(start) < timeout {
		if h = c.holders(skip...); len(h) == 1 {
			took := time.Since(start)
			time.Sleep(settle)
			if again := c.holders(skip...); len(again) == 1 && again[0] == h[0] {
				return h[0], took
			}
			continue
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("after %v, %d nodes hold %s (want 1): %v", timeout, len(h), c.vip.Addr(), names(h))
	return nil, 0
}

// waitNotHolding waits until n no longer holds the VIP.
func (c *cluster) waitNotHolding(n *lab.Node, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for n.HasAddr(c.vip.Addr()) {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s still holds %s after %v", n.Name, c.vip.Addr(), timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stableOneHolder returns the node that holds the VIP alone for d, once
// the election has settled. Nodes started (or left) together may tie for a
// moment: each one's master-down timer fires before the other's advert
// arrives, both take the VIP, and the lower address yields on the first
// advert it hears (RFC 9568 6.4.3). Such a tie restarts the window, with
// the tie logged; the holder changing more than twice, or no settled holder
// within 5 s, fails the test.
func (c *cluster) stableOneHolder(d time.Duration) *lab.Node {
	c.t.Helper()
	const maxChanges = 2
	deadline := time.Now().Add(5*time.Second + d)
	first, _ := c.waitOneHolder(5 * time.Second)
	changes := 0
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if h := c.holders(); len(h) != 1 || h[0] != first {
			changes++
			if changes > maxChanges || time.Now().After(deadline) {
				c.t.Fatalf("holder changed from %s to %v (%d changes)", first.Name, names(h), changes)
			}
			c.t.Logf("election not settled yet: holder changed from %s to %v; waiting again", first.Name, names(h))
			first, _ = c.waitOneHolder(time.Until(deadline))
			end = time.Now().Add(d)
			continue
		}
		time.Sleep(20 * time.Millisecond)
	}
	return first
}

// reach connects from the client to VIP:port through the holder's proxy
// and returns the name of the backend node that answered.
func (c *cluster) reach(timeout time.Duration) string {
	c.t.Helper()
	target := netip.AddrPortFrom(c.vip.Addr(), frontendPort)
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		name, err := c.lab.Client.WhoServes(ctx, target)
		cancel()
		if err == nil {
			return name
		}
		lastErr = err
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("client cannot reach %s: %v", target, lastErr)
	return ""
}

// status GETs path from node i's status server.
func (c *cluster) status(i int, path string) (int, string, error) {
	tr := &http.Transport{DialContext: c.lab.Nodes[i].Dial}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	resp, err := hc.Get("http://127.0.0.1:10270" + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

// kill stops node i's hapod with sig and waits for it to exit.
func (c *cluster) kill(i int, sig syscall.Signal) error {
	c.t.Helper()
	if err := c.procs[i].Signal(sig); err != nil {
		return err
	}
	// hapod exits within a second of SIGTERM (the handover takes at most
	// 0.8 s, then the connections through the VIP are closed at once);
	// callers that care check the time, this only bounds a hang.
	return c.procs[i].Wait(5 * time.Second)
}

func names(ns []*lab.Node) string {
	var s []string
	for _, n := range ns {
		s = append(s, n.Name)
	}
	return "[" + strings.Join(s, " ") + "]"
}
