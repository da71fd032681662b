package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/config"
)

// holdPort is where the stand-in apiservers of these tests listen.
const holdPort = 6444

// holdServer greets every connection with its node's name, like
// lab.TCPServer, but then keeps it open until the client closes it, so the
// proxy's active connection counts can be watched.
type holdServer struct {
	node  *lab.Node
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
	done  bool
	wg    sync.WaitGroup
}

func serveHold(t *testing.T, n *lab.Node, addr netip.AddrPort) *holdServer {
	t.Helper()
	network := "tcp4"
	if addr.Addr().Is6() {
		network = "tcp6"
	}
	ln, err := n.Listen(network, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	s := &holdServer{node: n, ln: ln, conns: make(map[net.Conn]bool)}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

func (s *holdServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.done {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			fmt.Fprintf(c, "%s\n", s.node.Name)
			_, _ = c.Read(make([]byte, 1)) // until the client closes (or Close)
		}()
	}
}

// Close stops listening and closes every connection: the apiserver is gone.
func (s *holdServer) Close() {
	s.mu.Lock()
	s.done = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	_ = s.ln.Close()
	s.wg.Wait()
}

// statusCluster is a cluster whose backends are holdServers the test can
// stop.
type statusCluster struct {
	*cluster
	servers  []*holdServer
	backends []netip.AddrPort
}

func newStatusCluster(t *testing.T, nodes int) *statusCluster {
	t.Helper()
	l := lab.New(t, nodes)
	c := &statusCluster{cluster: &cluster{t: t, lab: l, vip: l.VIP4Prefix(0)}}
	for _, n := range l.Nodes {
		a := netip.AddrPortFrom(n.IPv4, holdPort)
		c.servers = append(c.servers, serveHold(t, n, a))
		c.backends = append(c.backends, a)
	}
	for _, n := range l.Nodes {
		cfg := hapodConfig(c.vip, n, c.backends...)
		cfg.Health.Interval, cfg.Health.Timeout = 300*time.Millisecond, 200*time.Millisecond
		cfg.VRRP.AdvertInterval = 100 * time.Millisecond
		// The binary first: cluster.start runs args[0].
		args := append([]string{hapodBin}, runArgs(cfg)...)
		c.args = append(c.args, args)
		c.procs = append(c.procs, nil)
	}
	for i := range l.Nodes {
		c.start(i)
	}
	return c
}

// metrics scrapes node i's /metrics into series -> value, where a series
// is written as in the exposition format: name{l1="v1",l2="v2"}.
func (c *statusCluster) metrics(i int) (map[string]float64, error) {
	code, body, err := c.status(i, "/metrics")
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("node%d /metrics: HTTP %d", i, code)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[k+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("node%d /metrics: %q: %w", i, line, err)
		}
		out[line[:k]] = v
	}
	return out, nil
}

func (c *statusCluster) mustMetrics(i int) map[string]float64 {
	c.t.Helper()
	m, err := c.metrics(i)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// waitMetric waits until cond holds for node i's metric series.
func (c *statusCluster) waitMetric(i int, series string, what string, cond func(float64) bool) {
	c.t.Helper()
	var last map[string]float64
	lab.WaitFor(c.t, 10*time.Second, fmt.Sprintf("node%d %s %s (last %v)", i, series, what, func() any {
		if last == nil {
			return "none"
		}
		return last[series]
	}()), func() bool {
		m, err := c.metrics(i)
		if err != nil {
			return false
		}
		last = m
		v, ok := m[series]
		return ok && cond(v)
	})
}

func sumPrefix(m map[string]float64, prefix string) float64 {
	var s float64
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			s += v
		}
	}
	return s
}

// series names a series of the virtual router carrying c's VIP (these
// clusters run one): name{family="ipv4",labels...}, labels in the
// exposition's order (sorted by name, all after family).
func (c *cluster) series(name string, labels ...string) string {
	family := `family="` + string(config.FamilyOf(c.vip.Addr())) + `"`
	return name + "{" + strings.Join(append([]string{family}, labels...), ",") + "}"
}

// vipSeries names a series of c's VIP: name{family="ipv4",vip="VIP/LEN"}.
func (c *cluster) vipSeries(name string) string {
	return c.series(name, `vip="`+c.vip.String()+`"`)
}

func backendSeries(name string, b netip.AddrPort) string {
	return fmt.Sprintf(`%s{backend="%s"}`, name, b)
}

// openThroughVIP opens n connections from the client to VIP:port and
// reads each greeting; the caller closes them.
func (c *statusCluster) openThroughVIP(n int) []net.Conn {
	c.t.Helper()
	target := netip.AddrPortFrom(c.vip.Addr(), frontendPort).String()
	var conns []net.Conn
	deadline := time.Now().Add(5 * time.Second)
	for len(conns) < n {
		// Retried: right after a failover the client's ARP entry may
		// still name the old holder for a moment.
		conn, err := c.greet(target)
		if err != nil {
			if time.Now().After(deadline) {
				c.t.Fatalf("connect through the VIP: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		conns = append(conns, conn)
	}
	c.t.Cleanup(func() {
		for _, conn := range conns {
			conn.Close()
		}
	})
	return conns
}

// greet connects from the client to target and reads the greeting.
func (c *statusCluster) greet(target string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn, err := c.lab.Client.Dial(ctx, "tcp4", target)
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := bufio.NewReader(conn).ReadString('\n'); err != nil {
		conn.Close()
		return nil, fmt.Errorf("greeting through the VIP: %w", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, nil
}

// TestMetricsDuringFailover scrapes /metrics while the cluster serves,
// loses a backend, hears a stranger's adverts and fails over.
func TestMetricsDuringFailover(t *testing.T) {
	c := newStatusCluster(t, 3)
	holder := c.stableOneHolder(500 * time.Millisecond)
	h := c.index(holder)
	for i := range c.lab.Nodes {
		c.waitMetric(i, "hapod_proxy_healthy_backends", "= 3", func(v float64) bool { return v == 3 })
		m := c.mustMetrics(i)
		state := "backup"
		if i == h {
			state = "active"
		}
		if m[c.series("hapod_vrrp_state", `state="`+state+`"`)] != 1 || m[c.vipSeries("hapod_vrrp_vip_held")] != b2f(i == h) {
			t.Errorf("node%d: state %s: %v", i, state, filterPrefix(m, "hapod_vrrp_state", "hapod_vrrp_vip_held"))
		}
		if m[c.series("hapod_vrrp_transitions_total", `reason="startup"`, `to="backup"`)] != 1 {
			t.Errorf("node%d: startup transition: %v", i, filterPrefix(m, "hapod_vrrp_transitions_total"))
		}
		for _, b := range c.backends {
			if m[backendSeries("hapod_health_backend_up", b)] != 1 {
				t.Errorf("node%d: backend %v not up", i, b)
			}
		}
		if m[`hapod_health_check_duration_seconds_count{backend="`+c.backends[0].String()+`",result="ok"}`] < 1 {
			t.Errorf("node%d: no check latency observed", i)
		}
	}
	if m := c.mustMetrics(h); m[c.series("hapod_vrrp_transitions_total", `reason="master_down"`, `to="active"`)] != 1 || m[c.series("hapod_vrrp_adverts_sent_total")] < 1 {
		t.Errorf("holder %s: %v", holder.Name, filterPrefix(m, "hapod_vrrp_transitions_total", "hapod_vrrp_adverts"))
	}

	// Six clients through the VIP: least-conn spreads them 2/2/2 over the
	// backends, all on the holder's proxy; the backups carry none.
	conns := c.openThroughVIP(6)
	m := c.mustMetrics(h)
	for _, b := range c.backends {
		if v := m[backendSeries("hapod_proxy_backend_active_connections", b)]; v != 2 {
			t.Errorf("holder: %v active connections to %v, want 2", v, b)
		}
	}
	if m["hapod_proxy_active_connections"] != 6 || m["hapod_proxy_accepted_connections_total"] != 6 {
		t.Errorf("holder: %v", filterPrefix(m, "hapod_proxy_active", "hapod_proxy_accepted"))
	}
	for i := range c.lab.Nodes {
		if i != h && sumPrefix(c.mustMetrics(i), "hapod_proxy_backend_connections_total") != 0 {
			t.Errorf("backup node%d proxied connections", i)
		}
	}
	for _, conn := range conns[:3] {
		conn.Close()
	}
	c.waitMetric(h, "hapod_proxy_active_connections", "= 3 after 3 closed", func(v float64) bool { return v == 3 })

	// A backend's apiserver stops: its connections end, checks fail, every
	// node marks it down.
	victim := c.backends[2]
	c.servers[2].Close()
	for i := range c.lab.Nodes {
		c.waitMetric(i, backendSeries("hapod_health_backend_up", victim), "= 0", func(v float64) bool { return v == 0 })
	}
	m = c.mustMetrics(h)
	if m["hapod_proxy_healthy_backends"] != 2 || m[backendSeries("hapod_proxy_backend_active_connections", victim)] != 0 ||
		m[`hapod_health_check_duration_seconds_count{backend="`+victim.String()+`",result="fail"}`] < 1 {
		t.Errorf("after backend %v stopped: %v", victim, filterPrefix(m, "hapod_proxy_healthy", backendSeries("hapod_proxy_backend_active_connections", victim)))
	}

	// A stranger: keepalived on the client with another VRID. Its adverts
	// reach every hapod and are counted as drops, not obeyed.
	c.lab.Client.StartKeepalived(t, lab.KeepalivedConfig{
		Interface: c.lab.Client.Iface, VRID: 99, Priority: 200, Interval: 100 * time.Millisecond,
		Version: 3, VIP: c.lab.VIP4Prefix(1),
	})
	for i := range c.lab.Nodes {
		c.waitMetric(i, c.series("hapod_vrrp_dropped_packets_total", `reason="vrid"`), ">= 3", func(v float64) bool { return v >= 3 })
	}
	if m := c.mustMetrics(h); m[c.series("hapod_vrrp_state", `state="active"`)] != 1 {
		t.Errorf("the holder obeyed another VRID's adverts")
	}

	// Failover: SIGKILL the holder; scrape the others while it happens.
	before := make(map[int]map[string]float64)
	for i := range c.lab.Nodes {
		if i != h {
			before[i] = c.mustMetrics(i)
		}
	}
	if err := c.kill(h, syscall.SIGKILL); err == nil {
		t.Fatal("SIGKILL: hapod exited 0")
	}
	start := time.Now()
	var next int
	seen := map[int][]string{} // state sequence each survivor reported
	lab.WaitFor(t, 5*time.Second, "a survivor reporting state active", func() bool {
		for i := range before {
			m, err := c.metrics(i)
			if err != nil {
				continue
			}
			st := "backup"
			if m[c.series("hapod_vrrp_state", `state="active"`)] == 1 {
				st = "active"
			}
			if s := seen[i]; len(s) == 0 || s[len(s)-1] != st {
				seen[i] = append(seen[i], st)
			}
			if st == "active" {
				next = i
				return true
			}
		}
		return false
	})
	t.Logf("node%d reported active %v after the SIGKILL of node%d; states seen: %v", next, time.Since(start).Round(time.Millisecond), h, seen)
	// Both survivors' down timers may fire together (their tie-break
	// stagger is 10 ms, less than a loaded machine's scheduling delay):
	// both report active for a moment and the lower address yields on
	// the first advert it hears. The new holder is the one left holding.
	settled, _ := c.waitOneHolder(5*time.Second, holder)
	if s := c.index(settled); s != next {
		t.Logf("tie on takeover: node%d reported active first, node%d holds the VIP", next, s)
		next = s
	}
	c.waitMetric(next, c.series("hapod_vrrp_state", `state="active"`), "= 1", func(v float64) bool { return v == 1 })
	m = c.mustMetrics(next)
	// Nodes started together may each have been active for a moment
	// before the highest address won (RFC 9568's tie-break), so count
	// from just before the kill.
	takeovers := c.series("hapod_vrrp_transitions_total", `reason="master_down"`, `to="active"`)
	if m[takeovers]-before[next][takeovers] != 1 || m[c.vipSeries("hapod_vrrp_vip_held")] != 1 {
		t.Errorf("new holder node%d: %v", next, filterPrefix(m, "hapod_vrrp_transitions_total", "hapod_vrrp_vip_held"))
	}
	if inState := m[c.series("hapod_vrrp_time_in_state_seconds")]; inState > time.Since(start).Seconds() {
		t.Errorf("new holder's time in state %v predates the failover", inState)
	}
	if sent := c.series("hapod_vrrp_adverts_sent_total"); m[sent] <= before[next][sent] {
		t.Errorf("new holder sends no adverts")
	}
	for i := range before {
		if i != next {
			received := c.series("hapod_vrrp_adverts_received_total")
			c.waitMetric(i, received, "growing", func(v float64) bool {
				return v > before[i][received]
			})
			if m := c.mustMetrics(i); m[c.series("hapod_vrrp_state", `state="backup"`)] != 1 {
				t.Errorf("node%d left backup", i)
			}
		}
	}

	// The takeover was for silence, so the new holder holds the killed
	// holder's apiserver suspect (a crashed host's would drop SYNs) until
	// a health check started after the takeover passes; here only hapod
	// died, so one does, and the clients that follow the VIP are spread
	// over the two backends left.
	if dead := c.backends[h]; dead != victim {
		c.waitMetric(next, backendSeries("hapod_proxy_backend_suspect", dead), "= 0 once a check passes", func(v float64) bool { return v == 0 })
	}
	c.openThroughVIP(4)
	m = c.mustMetrics(next)
	for _, b := range c.backends[:2] {
		if v := m[backendSeries("hapod_proxy_backend_active_connections", b)]; v != 2 {
			t.Errorf("new holder: %v active connections to %v, want 2", v, b)
		}
	}
	if v := m[backendSeries("hapod_proxy_backend_connections_total", victim)]; v != 0 {
		t.Errorf("new holder sent %v connections to the stopped backend", v)
	}

	// The new holder's log: one line per state change, with its cause,
	// and nothing per advert (hundreds went by) or per connection (ten).
	log := c.procs[next].Log()
	count := func(parts ...string) int {
		got := 0
		for line := range strings.Lines(log) {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				got++
			}
		}
		return got
	}
	checkLine := func(what string, got, want int) {
		t.Helper()
		if got != want {
			t.Errorf("new holder logged %d lines of %s, want %d:\n%s", got, what, want, log)
		}
	}
	const stateChange = `msg="vrrp state change"`
	checkLine("the stopped backend going down", count(`msg="backend down"`, "backend="+victim.String(), "err=", "refused"), 1)
	checkLine("each backend's first verdict", count(`msg="backend up"`), 3)
	checkLine("each takeover", count(stateChange, "to=Active", `reason="master down timer expired"`), int(m[takeovers]))
	// A state change may name the advert that caused it.
	checkLine("adverts", count("advert")-count("advert", stateChange), 0)
	checkLine("connections", count("client"), 0)
	if n := strings.Count(log, "\n"); n > 15 {
		t.Errorf("new holder logged %d lines:\n%s", n, log)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func filterPrefix(m map[string]float64, prefixes ...string) map[string]float64 {
	out := make(map[string]float64)
	for k, v := range m {
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) {
				out[k] = v
			}
		}
	}
	return out
}

// hapodStatus runs `hapod status` in node i and returns its stdout, stderr
// and exit code.
func (c *statusCluster) hapodStatus(i int, args ...string) (string, string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := c.lab.Nodes[i].Command(ctx, hapodBin, append([]string{"status"}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// TestStatusCommandExitCodes checks that `hapod status` exits 0 on healthy
// nodes (active and backup alike), non-zero with one line when every
// backend is down (1), and 3 when the daemon is gone.
func TestStatusCommandExitCodes(t *testing.T) {
	c := newStatusCluster(t, 2)
	holder := c.stableOneHolder(300 * time.Millisecond)
	h := c.index(holder)
	for i := range c.lab.Nodes {
		c.waitMetric(i, "hapod_proxy_healthy_backends", "= 2", func(v float64) bool { return v == 2 })
		out, errOut, code := c.hapodStatus(i)
		if code != 0 {
			t.Errorf("node%d healthy: exit %d\n%s%s", i, code, out, errOut)
		}
		state := map[bool]string{true: "ACTIVE", false: "BACKUP"}[i == h]
		for _, s := range []string{"VRRP ipv4  " + state, c.vip.String(), c.backends[0].String() + "  up", c.backends[1].String() + "  up"} {
			if !strings.Contains(out, s) {
				t.Errorf("node%d output lacks %q:\n%s", i, s, out)
			}
		}
		if i == h {
			t.Logf("hapod status on the holder:\n%s", out)
		}
	}

	// Every apiserver stops.
	for _, s := range c.servers {
		s.Close()
	}
	for i := range c.lab.Nodes {
		var out, errOut string
		var code int
		lab.WaitFor(t, 10*time.Second, fmt.Sprintf("node%d: hapod status failing", i), func() bool {
			out, errOut, code = c.hapodStatus(i)
			return code != 0
		})
		if code != 1 || errOut != "hapod: not healthy: no healthy backend (of 2)\n" || !strings.Contains(out, "down") {
			t.Errorf("node%d with no backend: exit %d, stderr %q\n%s", i, code, errOut, out)
		}
		if i == h {
			t.Logf("hapod status with every backend down:\n%s%s", out, errOut)
		}
	}
	// -o json tells the same.
	out, _, code := c.hapodStatus(h, "-o", "json")
	if code != 1 || !strings.Contains(out, `"healthy": false`) || !strings.Contains(out, `"health": "down"`) {
		t.Errorf("-o json: exit %d\n%s", code, out)
	}

	// The daemon stops: nothing answers.
	if err := c.kill(h, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := c.hapodStatus(h)
	if code != 3 || out != "" || !strings.HasPrefix(errOut, "hapod: status server unreachable at 127.0.0.1:10270: ") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("no daemon: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestStatusPageInChromium renders every node's status page in headless
// Chromium, inside the node's namespace (the status server listens on the
// node's loopback), and checks what a person would see.
func TestStatusPageInChromium(t *testing.T) {
	chromium := lab.Tool(t, "chromium", "chromium")
	c := newStatusCluster(t, 3)
	holder := c.stableOneHolder(500 * time.Millisecond)
	h := c.index(holder)
	for i := range c.lab.Nodes {
		c.waitMetric(i, "hapod_proxy_healthy_backends", "= 3", func(v float64) bool { return v == 3 })
	}
	c.servers[2].Close() // one backend down, so the page shows both kinds
	for i := range c.lab.Nodes {
		c.waitMetric(i, backendSeries("hapod_health_backend_up", c.backends[2]), "= 0", func(v float64) bool { return v == 0 })
	}
	c.openThroughVIP(3)

	for i, n := range c.lab.Nodes {
		dom := runChromium(t, n, chromium, "--dump-dom", "http://127.0.0.1:10270/")
		state := map[bool]string{true: "Active", false: "Backup"}[i == h]
		want := []string{
			`id="state-ipv4">` + state + `<`, c.vip.String(), "Healthy",
			c.backends[0].String(), c.backends[1].String(), c.backends[2].String(),
			"connection refused", "vrrp state change", n.IPv4.String(),
		}
		if i == h {
			want = append(want, "This node holds")
		} else {
			want = append(want, "is held by", holder.IPv4.String())
		}
		for _, s := range want {
			if !strings.Contains(dom, s) {
				t.Errorf("node%d page lacks %q", i, s)
			}
		}
		if t.Failed() {
			t.Logf("node%d DOM:\n%s", i, dom)
		}
	}

	for _, i := range []int{h, (h + 1) % 3} {
		dir := t.TempDir()
		shot := filepath.Join(dir, fmt.Sprintf("node%d.png", i))
		runChromium(t, c.lab.Nodes[i], chromium, "--screenshot="+shot, "--window-size=1200,900", "http://127.0.0.1:10270/")
		img := decodePNG(t, shot)
		if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 900 {
			t.Errorf("screenshot is %v", b)
		}
		// A blank or error page has a handful of colours; this one has
		// text, coloured badges and dots.
		if n := distinctColours(img); n < 100 {
			t.Errorf("node%d screenshot has %d distinct colours: blank?", i, n)
		} else {
			t.Logf("node%d screenshot: %d distinct colours", i, n)
		}
		if d := os.Getenv("HAPOD_E2E_ARTIFACTS"); d != "" {
			data, _ := os.ReadFile(shot)
			if err := os.WriteFile(filepath.Join(d, filepath.Base(shot)), data, 0o644); err != nil {
				t.Error(err)
			}
		}
	}
}

// runChromium runs headless Chromium in node n with args (its URL last)
// and returns its stdout.
func runChromium(t *testing.T, n *lab.Node, chromium string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	cmd := n.Command(ctx, chromium, append(base, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: chromium %v: %v\n%s", n.Name, args, err, errOut.String())
	}
	return out.String()
}

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	return img
}

func distinctColours(img image.Image) int {
	seen := make(map[[4]uint32]bool)
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
		}
	}
	return len(seen)
}
