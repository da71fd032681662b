package e2e

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/redirect"
	"github.com/hapod/hapod/pkg/status"
)

// The endpoint on kubeadm's own port (issue 21): every node's fake
// kube-apiserver binds 0.0.0.0:6443 as the real one does, hapod's proxy
// listens on VIP:9445, and hapod's nftables table sends VIP:6443 to it
// while the proxy has a healthy backend.

// nftState is hapod's tables in a node's namespace: table name -> chain
// name -> number of rules.
type nftState map[string]map[string]int

// hapodTables reads n's inet tables whose names start with "hapod_".
func hapodTables(t *testing.T, n *lab.Node) nftState {
	t.Helper()
	out := nftState{}
	err := n.Do(func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if err != nil {
			return err
		}
		tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
		if err != nil {
			return err
		}
		for _, tb := range tables {
			if strings.HasPrefix(tb.Name, "hapod_") {
				out[tb.Name] = map[string]int{}
			}
		}
		for _, ch := range chains {
			if _, ours := out[ch.Table.Name]; !ours {
				continue
			}
			rules, err := c.GetRules(ch.Table, ch)
			if err != nil {
				return err
			}
			out[ch.Table.Name][ch.Name] = len(rules)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: nftables: %v", n.Name, err)
	}
	return out
}

// checkInstalled fails unless n holds exactly hapod's one table for the
// cluster's VIP, with its two chains of one rule each, and no other.
func (c *cluster) checkInstalled(n *lab.Node) {
	c.t.Helper()
	want := redirect.TableName(c.vip.Addr())
	got := hapodTables(c.t, n)
	if len(got) != 1 || len(got[want]) != 2 || got[want]["prerouting"] != 1 || got[want]["output"] != 1 {
		c.t.Errorf("%s: hapod's nftables tables %v, want only %s with one rule in prerouting and in output", n.Name, got, want)
	}
}

func (c *cluster) checkRemoved(n *lab.Node) {
	c.t.Helper()
	if got := hapodTables(c.t, n); len(got) != 0 {
		c.t.Errorf("%s: hapod's nftables tables %v left behind, want none", n.Name, got)
	}
}

// redirectInstalled is a waitReport condition.
func redirectInstalled(want bool) func(status.Report) bool {
	return func(r status.Report) bool {
		return r.Redirect != nil && r.Redirect.Installed == want && r.Redirect.Problem == ""
	}
}

// localClient talks HTTPS to the VIP from node n itself (the output hook),
// one connection per request.
func (c *cluster) localClient(n *lab.Node) *http.Client {
	return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: n.Dial, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
}

func (c *cluster) checkSpread(what string, got map[string]int) {
	c.t.Helper()
	c.t.Logf("%s: %v", what, got)
	for _, n := range c.lab.Nodes {
		if got[n.Name] == 0 {
			c.t.Errorf("%s: %s served nothing: %v", what, n.Name, got)
		}
	}
}

// TestRedirectEndpoint: VIP:6443 reaches the proxy (requests spread over
// all three apiservers, from the network and from the holder itself);
// with no healthy backend the redirect goes and VIP:6443 reaches the
// holder's own apiserver, which still answers; it comes back with the
// backends; a flushed table is put back; a SIGKILLed hapod's table is
// taken over by the next start, a SIGTERMed one removes its own.
func TestRedirectEndpoint(t *testing.T) {
	c := newCluster(t, clusterOptions{apiservers: true, redirect: true})
	holder, _ := c.waitOneHolder(10 * time.Second)
	h := c.index(holder)
	for i := range c.lab.Nodes {
		c.waitReport(i, "the redirect installed", redirectInstalled(true))
		c.checkInstalled(c.lab.Nodes[i])
	}
	r, _ := c.report(h)
	if rd := r.Redirect; !slices.Equal(rd.Endpoints, []netip.AddrPort{netip.AddrPortFrom(c.vip.Addr(), 6443)}) || rd.ListenPort != config.DefaultListenPort || rd.Reason != "serving" {
		t.Errorf("holder's redirect report %+v", rd)
	}
	if want := []netip.AddrPort{netip.AddrPortFrom(c.vip.Addr(), config.DefaultListenPort)}; !slices.Equal(r.Proxy.Listen, want) {
		t.Errorf("proxy listens on %v, want VIP:%d", r.Proxy.Listen, config.DefaultListenPort)
	}
	hc := c.apiClient()
	lab.WaitFor(t, 10*time.Second, "VIP:6443 answers", func() bool { _, err := c.whoami(hc); return err == nil })
	c.checkSpread("60 requests to VIP:6443 from the client", c.spread(hc, 60))
	c.checkSpread("60 requests to VIP:6443 from the holder itself", c.spread(c.localClient(holder), 60))
	if code, out := c.hapodStatus(h); code != 0 || !strings.Contains(out, "to the proxy on :9445 (serving)") {
		t.Errorf("hapod status on the holder: exit %d\n%s", code, out)
	}

	// `nft flush ruleset` on the holder (what restarting an nftables
	// service does): hapod puts its table back.
	if err := holder.Do(func() error {
		nft, err := nftables.New()
		if err != nil {
			return err
		}
		nft.FlushRuleset()
		return nft.Flush()
	}); err != nil {
		t.Fatal(err)
	}
	flushed := time.Now()
	lab.WaitFor(t, 10*time.Second, "hapod's table back after the flush", func() bool { return len(hapodTables(t, holder)) == 1 })
	t.Logf("the flushed table was back %v later", time.Since(flushed).Round(time.Millisecond))
	c.checkInstalled(holder)
	if !strings.Contains(c.procs[h].Log(), "the redirect table is gone from the kernel") {
		t.Errorf("the holder did not say its table was flushed:\n%s", c.procs[h].Log())
	}
	c.checkSpread("60 requests to VIP:6443 after the flush", c.spread(hc, 60))

	// No healthy backend anywhere: every node removes its redirect, and
	// VIP:6443 is the holder's own kube-apiserver, answering.
	for i := range c.lab.Nodes {
		c.setMode(i, "fail")
	}
	for i := range c.lab.Nodes {
		c.waitReport(i, "the redirect removed", redirectInstalled(false))
		c.checkRemoved(c.lab.Nodes[i])
	}
	r, _ = c.report(h)
	if r.Redirect.Reason != "no healthy backend" {
		t.Errorf("redirect removed for %q, want no healthy backend", r.Redirect.Reason)
	}
	now := c.holders()
	got := c.spread(hc, 20)
	t.Logf("no healthy backend, 20 requests to VIP:%d: %v (holder %s)", c.port, got, names(now))
	if len(now) != 1 || got[now[0].Name] != 20 {
		t.Errorf("with no healthy backend VIP:6443 should be the holder %s's own apiserver: %v", names(now), got)
	}
	for i := range c.lab.Nodes {
		c.setMode(i, "ok")
	}
	for i := range c.lab.Nodes {
		c.waitReport(i, "the redirect back", redirectInstalled(true))
	}
	c.checkSpread("backends back, 60 requests", c.spread(hc, 60))

	// SIGKILL leaves the table (and the VIP); the next start takes both
	// over. Not the holder: its VIP would stay where the others took it.
	k := (h + 1) % len(c.lab.Nodes)
	if err := c.kill(k, syscall.SIGKILL); err == nil {
		t.Fatal("hapod exited 0 on SIGKILL")
	}
	c.checkInstalled(c.lab.Nodes[k])
	c.start(k)
	lab.WaitFor(t, 10*time.Second, "the restarted hapod taking over the table", func() bool {
		return strings.Contains(c.procs[k].Log(), "took over the redirect table left by a previous run")
	})
	c.waitReport(k, "the redirect installed after the restart", redirectInstalled(true))
	c.checkInstalled(c.lab.Nodes[k])

	// SIGTERM removes it: VIP:6443 belongs to the local apiserver again.
	if err := c.kill(k, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.checkRemoved(c.lab.Nodes[k])
	c.checkSpread("one hapod stopped, 60 requests", c.spread(hc, 60))

	// SIGKILLed and not started again (kubeadm reset without hapod
	// reset): `hapod reset` removes the table.
	c.start(k)
	c.waitReport(k, "the redirect installed", redirectInstalled(true))
	if err := c.kill(k, syscall.SIGKILL); err == nil {
		t.Fatal("hapod exited 0 on SIGKILL")
	}
	c.checkInstalled(c.lab.Nodes[k])
	out := c.lab.Nodes[k].Run(t, hapodBin, "reset", "--manifest-dir", t.TempDir(), "--vip", c.vip.String())
	t.Logf("node%d$ hapod reset\n%s", k, out)
	if !strings.Contains(out, "removed the nftables table "+redirect.TableName(c.vip.Addr())) {
		t.Errorf("hapod reset did not say it removed the table:\n%s", out)
	}
	c.checkRemoved(c.lab.Nodes[k])
}

// TestRedirectEndpointIPv6: the same redirect for an IPv6 VIP (the ip6
// rule of hapod's inet table): VIP:6443 spreads over all three.
func TestRedirectEndpointIPv6(t *testing.T) {
	c := newCluster(t, clusterOptions{apiservers: true, redirect: true, ipv6: true})
	holder, _ := c.waitOneHolder(10 * time.Second)
	c.waitReport(c.index(holder), "the redirect installed", redirectInstalled(true))
	c.checkInstalled(holder)
	hc := c.apiClient()
	lab.WaitFor(t, 10*time.Second, "[VIP]:6443 answers", func() bool { _, err := c.whoami(hc); return err == nil })
	c.checkSpread("60 requests to [VIP]:6443 from the client", c.spread(hc, 60))
	c.checkSpread("60 requests to [VIP]:6443 from the holder itself", c.spread(c.localClient(holder), 60))
}

// requestProbe sends one HTTPS request per interval, each on a new
// connection, to url from n, until stop is closed: what kubectl sees.
func requestProbe(n *lab.Node, url string, interval time.Duration, stop <-chan struct{}) func() lab.ProbeResult {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DialContext: n.Dial, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
	var mu sync.Mutex
	var samples []lab.Sample
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			at := time.Now()
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := lab.Sample{At: at}
				resp, err := hc.Get(url)
				if err == nil {
					b, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					s.OK, s.Served, err = rerr == nil && resp.StatusCode == 200, string(b), rerr
				}
				s.Err, s.RTT = err, time.Since(at)
				mu.Lock()
				samples = append(samples, s)
				mu.Unlock()
			}()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() lab.ProbeResult {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return lab.Summarize(samples)
	}
}

// TestRedirectFailover: a failover seen through VIP:6443 (the redirect)
// and through VIP:9445 (the proxy's own socket, what a plain --port
// listener is) at the same time, graceful (SIGTERM) and hard (the holder
// cut off the network and its hapod SIGKILLed): the redirect adds no
// outage. HAPOD_REDIRECT_RUNS sets the runs per fault (default 2).
func TestRedirectFailover(t *testing.T) {
	runs := 2
	if s := os.Getenv("HAPOD_REDIRECT_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("HAPOD_REDIRECT_RUNS=%q: want a positive number", s)
		}
		runs = n
	}
	c := newCluster(t, clusterOptions{apiservers: true, redirect: true})
	c.waitOneHolder(10 * time.Second)
	for i := range c.lab.Nodes {
		c.waitReport(i, "the redirect installed", redirectInstalled(true))
	}
	endpoints := map[string]string{
		"VIP:6443 (redirect)": "https://" + netip.AddrPortFrom(c.vip.Addr(), 6443).String() + "/fake/whoami",
		"VIP:9445 (listener)": "https://" + netip.AddrPortFrom(c.vip.Addr(), config.DefaultListenPort).String() + "/fake/whoami",
	}
	outages := map[string][]time.Duration{}
	for _, fault := range []string{"graceful", "hard"} {
		for run := range runs {
			holder, _ := c.waitOneHolder(15 * time.Second)
			h := c.index(holder)
			for i := range c.lab.Nodes {
				c.waitReport(i, "the redirect installed", redirectInstalled(true))
			}
			stop := make(chan struct{})
			results := map[string]func() lab.ProbeResult{}
			for name, url := range endpoints {
				results[name] = requestProbe(c.lab.Client, url, 20*time.Millisecond, stop)
			}
			time.Sleep(500 * time.Millisecond)
			at := time.Now()
			if fault == "graceful" {
				if err := c.kill(h, syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			} else {
				c.lab.Partition(t, holder)
				if err := c.kill(h, syscall.SIGKILL); err == nil {
					t.Fatal("hapod exited 0 on SIGKILL")
				}
			}
			c.waitOneHolder(15*time.Second, holder)
			// Past the new holder's settling and the health checks
			// marking the lost apiserver down (markedDown).
			time.Sleep(3 * time.Second)
			close(stop)
			for name, res := range results {
				r := res()
				if o, ok := r.OutageAt(at); ok && !o.Recovered {
					t.Errorf("%s %d, %s: never recovered: %v", fault, run, name, r)
				}
				d := r.OutageAfter(at)
				outages[fault+" "+name] = append(outages[fault+" "+name], d)
				t.Logf("%s run %d, %s: outage %v (%v)", fault, run, name, d.Round(time.Millisecond), r)
			}
			if fault == "hard" {
				c.lab.Heal(t, holder)
			}
			c.start(h)
			c.waitReport(h, "the restarted hapod's redirect", redirectInstalled(true))
			c.checkInstalled(holder)
		}
	}
	for _, fault := range []string{"graceful", "hard"} {
		for name := range endpoints {
			k := fault + " " + name
			t.Logf("%-30s outages %v", k, outages[k])
		}
	}
}

// TestRedirectStatusPage: the page at / shows where the endpoint goes.
func TestRedirectStatusPage(t *testing.T) {
	c := newCluster(t, clusterOptions{apiservers: true, redirect: true, nodes: 2})
	c.waitOneHolder(10 * time.Second)
	c.waitReport(0, "the redirect installed", redirectInstalled(true))
	code, body, err := c.status(0, "/")
	if err != nil || code != 200 {
		t.Fatalf("GET /: %d %v", code, err)
	}
	want := netip.AddrPortFrom(c.vip.Addr(), 6443).String() + " &rarr; proxy :9445 (serving)"
	if !strings.Contains(body, want) {
		t.Errorf("the page lacks %q", want)
	}
}
