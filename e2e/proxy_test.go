package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/config"
)

// Health timing of the clusters here: --health-interval=500ms, fall 2.
const markedDown = 2 * 500 * time.Millisecond

// apiClient talks HTTPS to the VIP from the client namespace, one new
// connection per request (the hardest case for a proxy and a balancer).
func (c *cluster) apiClient() *http.Client { return vipHTTPSClient(c.lab) }

// vipHTTPSClient is apiClient for any lab.
func vipHTTPSClient(l *lab.Lab) *http.Client {
	return &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{
			DialContext:       l.Client.Dial,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			DisableKeepAlives: true,
		},
	}
}

func (c *cluster) vipURL(path string) string {
	return "https://" + netip.AddrPortFrom(c.vip.Addr(), c.port).String() + path
}

// whoami asks the VIP which apiserver answered.
func (c *cluster) whoami(hc *http.Client) (string, error) {
	resp, err := hc.Get(c.vipURL("/fake/whoami"))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// spread makes n requests and counts who served them; any error fails.
func (c *cluster) spread(hc *http.Client, n int) map[string]int {
	c.t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		name, err := c.whoami(hc)
		if err != nil {
			c.t.Fatalf("request %d through the VIP failed: %v", i, err)
		}
		got[name]++
	}
	return got
}

// setMode switches node i's fake apiserver to ok, fail (/readyz 500) or slow.
func (c *cluster) setMode(i int, mode string) {
	c.t.Helper()
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: c.lab.Client.Dial, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	url := fmt.Sprintf("https://%s/fake/mode?m=%s", netip.AddrPortFrom(c.lab.Nodes[i].IPv4, backendPort), mode)
	resp, err := hc.Post(url, "", nil)
	if err != nil {
		c.t.Fatalf("set node%d mode %s: %v", i, mode, err)
	}
	resp.Body.Close()
}

// TestProxySpreadAndHealth: connections spread over all three apiservers;
// one answering 500 on /readyz is out within fall x interval and not one
// request fails after that; back to ok, it takes requests again.
func TestProxySpreadAndHealth(t *testing.T) {
	c := newCluster(t, clusterOptions{apiservers: true})
	c.waitOneHolder(5 * time.Second)
	hc := c.apiClient()
	lab.WaitFor(t, 5*time.Second, "the VIP answers", func() bool { _, err := c.whoami(hc); return err == nil })

	got := c.spread(hc, 60)
	t.Logf("60 requests, one connection each: %v", got)
	for _, n := range c.lab.Nodes {
		if got[n.Name] == 0 {
			t.Errorf("%s served nothing: %v", n.Name, got)
		}
	}

	c.setMode(1, "fail")
	time.Sleep(markedDown + 300*time.Millisecond)
	got = c.spread(hc, 60)
	t.Logf("node1 failing /readyz: %v", got)
	if got["node1"] != 0 {
		t.Errorf("node1 still served %d requests after failing its checks", got["node1"])
	}

	c.setMode(1, "ok")
	lab.WaitFor(t, 5*time.Second, "node1 back in the pool", func() bool {
		name, err := c.whoami(hc)
		return err == nil && name == "node1"
	})

	// A killed apiserver: no request fails once it is marked down, and
	// even before, a refused dial is retried on another backend.
	c.apis[2].Signal(syscall.SIGKILL)
	c.apis[2].Wait(5 * time.Second)
	got = c.spread(hc, 60)
	t.Logf("node2's apiserver killed, right away: %v", got)
	if got["node2"] != 0 {
		t.Errorf("a dead backend served %d requests", got["node2"])
	}
}

// watch is a long-lived API watch through the VIP.
type watch struct {
	server string // the apiserver streaming it
	ended  chan struct{}
}

// openWatch starts GET ?watch=1 through the VIP and reads the first event
// to learn the serving apiserver; ended closes when the stream ends.
func (c *cluster) openWatch(ctx context.Context) (*watch, error) {
	conn, err := c.lab.Client.Dial(ctx, "tcp", netip.AddrPortFrom(c.vip.Addr(), frontendPort).String())
	if err != nil {
		return nil, err
	}
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	fmt.Fprintf(tc, "GET /api/v1/pods?watch=1 HTTP/1.1\r\nHost: kubernetes\r\n\r\n")
	r := bufio.NewReader(tc)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	var ev struct {
		Object struct {
			Server string `json:"server"`
		} `json:"object"`
	}
	dec := json.NewDecoder(resp.Body)
	if err := dec.Decode(&ev); err != nil {
		conn.Close()
		return nil, err
	}
	w := &watch{server: ev.Object.Server, ended: make(chan struct{})}
	go func() {
		defer close(w.ended)
		defer conn.Close()
		go func() { <-ctx.Done(); conn.Close() }()
		for dec.Decode(&ev) == nil {
		}
	}()
	return w, nil
}

// TestProxyClosesConnectionsOfFailedBackend: the watches on an apiserver
// that fails its checks are closed (clients reconnect instead of hanging),
// while the others keep streaming.
func TestProxyClosesConnectionsOfFailedBackend(t *testing.T) {
	c := newCluster(t, clusterOptions{apiservers: true})
	c.waitOneHolder(5 * time.Second)
	hc := c.apiClient()
	lab.WaitFor(t, 5*time.Second, "the VIP answers", func() bool { _, err := c.whoami(hc); return err == nil })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var watches []*watch
	for i := 0; i < 9; i++ {
		w, err := c.openWatch(ctx)
		if err != nil {
			t.Fatalf("watch %d: %v", i, err)
		}
		watches = append(watches, w)
	}
	on := map[string]int{}
	for _, w := range watches {
		on[w.server]++
	}
	t.Logf("9 watches: %v", on)
	if on["node0"] == 0 {
		t.Fatalf("no watch on node0 to test with: %v", on)
	}

	c.setMode(0, "fail")
	deadline := time.After(markedDown + 2*time.Second)
	for _, w := range watches {
		if w.server != "node0" {
			continue
		}
		select {
		case <-w.ended:
		case <-deadline:
			t.Fatalf("a watch on failed node0 is still open %v after the failure", markedDown+2*time.Second)
		}
	}
	for _, w := range watches {
		if w.server == "node0" {
			continue
		}
		select {
		case <-w.ended:
			t.Errorf("a watch on healthy %s was closed", w.server)
		default:
		}
	}
}

// TestProxyRebalance: with --rebalance, when an apiserver comes back, the
// oldest watches on the busiest ones are closed gently until the spread is
// even; reconnecting clients land on the returned one.
func TestProxyRebalance(t *testing.T) {
	c := newCluster(t, clusterOptions{apiservers: true, configure: func(c *config.Config) { c.Proxy.Rebalance = true }})
	c.waitOneHolder(5 * time.Second)
	hc := c.apiClient()
	lab.WaitFor(t, 5*time.Second, "the VIP answers", func() bool { _, err := c.whoami(hc); return err == nil })
	c.setMode(2, "fail")
	time.Sleep(markedDown + 300*time.Millisecond)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	on := map[string]int{}
	var reconnects atomic.Int64
	var wg sync.WaitGroup
	const clients = 12
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() { // a client that re-opens its watch whenever it ends
			defer wg.Done()
			for ctx.Err() == nil {
				w, err := c.openWatch(ctx)
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				mu.Lock()
				on[w.server]++
				mu.Unlock()
				<-w.ended
				mu.Lock()
				on[w.server]--
				mu.Unlock()
				reconnects.Add(1)
			}
		}()
	}
	snapshot := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		m := map[string]int{}
		for k, v := range on {
			m[k] = v
		}
		return m
	}
	lab.WaitFor(t, 10*time.Second, "12 watches open on node0 and node1", func() bool {
		s := snapshot()
		return s["node0"]+s["node1"] == clients && s["node2"] == 0
	})
	t.Logf("node2 down: %v", snapshot())

	c.setMode(2, "ok")
	start := time.Now()
	lab.WaitFor(t, 20*time.Second, "an even spread", func() bool {
		s := snapshot()
		return s["node0"] == 4 && s["node1"] == 4 && s["node2"] == 4
	})
	t.Logf("node2 back: even spread %v after %v, %d reconnects", snapshot(), time.Since(start).Round(time.Millisecond), reconnects.Load())
	if r := reconnects.Load(); r > 2*clients/3+2 {
		t.Errorf("%d watches were closed; rebalancing 12 watches onto a third backend needs about 4", r)
	}
	cancel()
	wg.Wait()
}

// TestProxyFailoverUnderLoad: clients hammering the VIP while its holder
// is SIGKILLed resume within the failover time.
func TestProxyFailoverUnderLoad(t *testing.T) {
	c := newCluster(t, clusterOptions{apiservers: true})
	holder, _ := c.waitOneHolder(5 * time.Second)
	hc := c.apiClient()
	lab.WaitFor(t, 5*time.Second, "the VIP answers", func() bool { _, err := c.whoami(hc); return err == nil })

	ctx, cancel := context.WithCancel(context.Background())
	type stats struct {
		ok, failed int
		lastOK     time.Time
		longestGap time.Duration
	}
	const clients = 4
	results := make([]stats, clients)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func(s *stats) {
			defer wg.Done()
			hc := c.apiClient()
			hc.Timeout = 500 * time.Millisecond
			s.lastOK = time.Now()
			for ctx.Err() == nil {
				if _, err := c.whoami(hc); err != nil {
					s.failed++
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if gap := time.Since(s.lastOK); gap > s.longestGap {
					s.longestGap = gap
				}
				s.ok++
				s.lastOK = time.Now()
				time.Sleep(10 * time.Millisecond)
			}
		}(&results[i])
	}
	time.Sleep(time.Second)
	if err := c.kill(c.index(holder), syscall.SIGKILL); err == nil {
		t.Fatal("SIGKILL: hapod exited cleanly?")
	}
	next, took := c.waitOneHolder(3*time.Second, holder)
	time.Sleep(2 * time.Second)
	cancel()
	wg.Wait()
	t.Logf("SIGKILL of %s: %s holds the VIP after %v", holder.Name, next.Name, took)
	for i, s := range results {
		t.Logf("client %d: %d ok, %d failed, longest gap %v", i, s.ok, s.failed, s.longestGap.Round(time.Millisecond))
		if time.Since(s.lastOK) > time.Second+500*time.Millisecond {
			t.Errorf("client %d did not resume after the failover", i)
		}
		if s.longestGap > 2*time.Second {
			t.Errorf("client %d waited %v: more than the failover time", i, s.longestGap)
		}
	}
}

// TestProxyLimits: the connection limit refuses excess clients cleanly
// and counts them; file-descriptor exhaustion makes accept fail, which is
// counted and backed off from (the proxy does not spin on a listener that
// stays readable); both serve again once the pressure is gone.
func TestProxyLimits(t *testing.T) {
	// 48 descriptors: hapod's own sockets plus a few proxied connections.
	c := newCluster(t, clusterOptions{nodes: 1, apiservers: true,
		configure: func(c *config.Config) { c.Proxy.MaxConns = 10 }, wrap: []string{"prlimit", "--nofile=48:48"}})
	c.waitOneHolder(5 * time.Second)
	hc := c.apiClient()
	lab.WaitFor(t, 5*time.Second, "the VIP answers", func() bool { _, err := c.whoami(hc); return err == nil })
	target := netip.AddrPortFrom(c.vip.Addr(), frontendPort).String()
	sc := &statusCluster{cluster: c}

	// Connection limit: 10 held, the next ones are closed at once.
	var held []net.Conn
	for i := 0; i < 10; i++ {
		conn, err := c.lab.Client.Dial(context.Background(), "tcp", target)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, conn)
	}
	sc.waitMetric(0, "hapod_proxy_active_connections", "= 10", func(v float64) bool { return v == 10 })
	before := sc.mustMetrics(0)[`hapod_proxy_refused_connections_total{reason="max_conns"}`]
	refused := 0
	for i := 0; i < 5; i++ {
		conn, err := c.lab.Client.Dial(context.Background(), "tcp", target)
		if err != nil {
			refused++
			continue
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
			refused++
		}
		conn.Close()
	}
	if refused != 5 {
		t.Errorf("%d of 5 connections over --max-conns=10 were refused", refused)
	}
	if got := sc.mustMetrics(0)[`hapod_proxy_refused_connections_total{reason="max_conns"}`] - before; got != 5 {
		t.Errorf("refused_connections_total{reason=max_conns} grew by %v, want 5", got)
	}
	for _, conn := range held {
		conn.Close()
	}
	lab.WaitFor(t, 5*time.Second, "the proxy serves after the limit", func() bool { _, err := c.whoami(hc); return err == nil })

	// Descriptor exhaustion: with --max-conns raised past what 48
	// descriptors allow, accept hits EMFILE; the proxy backs off and
	// serves again once clients leave.
	c.kill(0, syscall.SIGTERM)
	c.args[0] = append(c.args[0], "--max-conns=1000")
	c.start(0)
	c.waitOneHolder(5 * time.Second)
	lab.WaitFor(t, 5*time.Second, "the VIP answers", func() bool { _, err := c.whoami(hc); return err == nil })
	pid := c.procs[0].Pid()
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || strings.TrimSpace(string(comm)) != "hapod" {
		t.Fatalf("pid %d is %q (%v), not hapod: the CPU reading would measure something else", pid, comm, err)
	}
	if n := sc.mustMetrics(0)["hapod_proxy_accept_errors_total"]; n != 0 {
		t.Fatalf("accept_errors_total %v before any pressure", n)
	}
	held = nil
	defer func() {
		for _, conn := range held {
			conn.Close()
		}
	}()
	for i := 0; i < 40; i++ {
		conn, err := c.lab.Client.Dial(context.Background(), "tcp", target)
		if err != nil {
			break
		}
		held = append(held, conn)
	}
	// Proxied clients take descriptors two at a time (client and backend
	// socket); one left over would be taken by each accept and given back
	// when the backend socket fails, and accept itself would never fail.
	// Idle connections to the status server take the last ones, one each
	// (its ReadHeaderTimeout, 5s, outlasts the window below).
	for i := 0; i < 20; i++ {
		conn, err := c.lab.Nodes[0].Dial(context.Background(), "tcp", "127.0.0.1:10270")
		if err != nil {
			break
		}
		held = append(held, conn)
	}
	// Clients keep arriving for 2s while no descriptor is free.
	cpu0, wall0 := cpuTicks(t, pid), time.Now()
	for time.Since(wall0) < 2*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		if conn, err := c.lab.Client.Dial(ctx, "tcp", target); err == nil {
			held = append(held, conn)
		}
		cancel()
		time.Sleep(20 * time.Millisecond)
	}
	cpu, wall := cpuTicks(t, pid)-cpu0, time.Since(wall0)
	// /proc counts in USER_HZ, 100 per second on Linux.
	busy := float64(cpu) / 100 / wall.Seconds()
	t.Logf("exhausted for %v with %d client connections: hapod used %.0f%% of a core", wall.Round(time.Millisecond), len(held), 100*busy)
	if busy > 0.5 {
		t.Errorf("hapod used %.0f%% of a core while out of descriptors: spinning on accept?", 100*busy)
	}
	for _, conn := range held {
		conn.Close()
	}
	held = nil
	lab.WaitFor(t, 10*time.Second, "the proxy serves after descriptor exhaustion", func() bool { _, err := c.whoami(hc); return err == nil })
	m := sc.mustMetrics(0)
	t.Logf("after: accept_errors_total %v, refused{no_backend} %v, accepted %v", m["hapod_proxy_accept_errors_total"],
		m[`hapod_proxy_refused_connections_total{reason="no_backend"}`], m["hapod_proxy_accepted_connections_total"])
	if m["hapod_proxy_accept_errors_total"] == 0 {
		t.Errorf("no accept error counted while out of descriptors:\n%s", lastLines(c.procs[0].Log(), 10))
	}
	// Every client is still served, one new connection each.
	got := c.spread(hc, 20)
	t.Logf("20 requests after the pressure: %v", got)
}

// cpuTicks is the user plus system CPU time of process pid, in USER_HZ
// ticks, from /proc/PID/stat.
func cpuTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name may hold spaces: fields count from after its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %v %v", pid, err1, err2)
	}
	return utime + stime
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
