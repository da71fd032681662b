package e2e

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/config"
)

// The failover benchmark (`make bench-failover`): hapod and Debian's
// keepalived side by side on identical three-node groups, the same faults
// injected into both, the outage measured from a client. It prints numbers
// and fails only when something is broken (the VIP never comes back, a
// process does not exit), never on a time bound.

// benchRunsDefault is the number of runs per (case, implementation, fault);
// HAPOD_BENCH_RUNS overrides it. The hard failure at the default interval
// runs hardDefaultFactor times as often so that its p95 means something.
const (
	benchRunsDefault  = 10
	hardDefaultFactor = 3
)

// benchTargetPort is the TCP target served on the VIP by every node: the
// same Node.ServeTCP for both implementations, so the proxy is not part of
// the measurement.
const benchTargetPort = 7000

// benchPriority is every node's priority: equal, as hapod's defaults have it.
const benchPriority = 100

// benchCase is one VRRP setting measured for both implementations.
type benchCase struct {
	name     string
	version  int
	interval time.Duration
	// hardFactor multiplies the run count for the hard failure.
	hardFactor int
	// dualStack gives every group an IPv6 VIP beside the IPv4 one (issue
	// 22): hapod runs a virtual router per family, keepalived an instance
	// per family in one process, and the client probes both VIPs.
	dualStack bool
}

var benchCases = []benchCase{
	{"v3 100ms (default)", 3, 100 * time.Millisecond, hardDefaultFactor, false},
	{"v3 100ms dual-stack", 3, 100 * time.Millisecond, hardDefaultFactor, true},
	{"v3 1s", 3, time.Second, 1, false},
	{"v2 1s", 2, time.Second, 1, false},
}

// faultKind is how the holder is taken away.
type faultKind int

const (
	// faultHard is a host crash: the holder's port leaves the bridge (no
	// frame in or out, as a dead host) and its VRRP process is SIGKILLed.
	// SIGKILL alone would leave the VIP on the node's interface and the
	// node's kernel answering the client (the target is served by the test
	// process, not by the VRRP daemon), so the client would see no outage.
	faultHard faultKind = iota + 1
	// faultGraceful is SIGTERM to the holder: a priority-0 advert.
	faultGraceful
)

// short is the fault's subtest name: -run 'TestBenchFailover/v3_1s/graceful'.
func (f faultKind) short() string {
	switch f {
	case faultHard:
		return "hard"
	case faultGraceful:
		return "graceful"
	default:
		return f.String()
	}
}

func (f faultKind) String() string {
	switch f {
	case faultHard:
		return "hard (host crash)"
	case faultGraceful:
		return "graceful (SIGTERM)"
	default:
		return fmt.Sprintf("fault(%d)", int(f))
	}
}

// benchGroup is three VRRP routers of one implementation on one lab, with
// the TCP target on every VIP on every node.
type benchGroup struct {
	impl string
	lab  *lab.Lab
	// vips are the VIPs the routers hold: the IPv4 one, then the IPv6 one
	// in a dual-stack case. Both implementations give both families the
	// VRID hapod derives from the first.
	vips []netip.Prefix
	c    benchCase
	// start (re)starts the router on node i and returns its process.
	start func(i int) *lab.Process
	// backupMark is the log line fragment that shows a router settled as
	// a backup.
	backupMark string
	// kill hard-stops node i's VRRP work with no goodbye.
	kill  func(i int) error
	procs []*lab.Process
	kas   []*lab.Keepalived // keepalived only
}

// benchLab is a lab for c with the TCP target on every VIP on every node;
// it returns the VIPs.
func benchLab(t *testing.T, c benchCase) (*lab.Lab, []netip.Prefix) {
	t.Helper()
	l := lab.New(t, 3)
	vips := []netip.Prefix{l.VIP4Prefix(0)}
	if c.dualStack {
		vips = append(vips, l.VIP6Prefix(0))
	}
	for _, n := range l.Nodes {
		for _, v := range vips {
			n.ServeTCP(t, netip.AddrPortFrom(v.Addr(), benchTargetPort))
		}
		n.ServeTCP(t, netip.AddrPortFrom(n.IPv4, backendPort))
	}
	return l, vips
}

func newHapodGroup(t *testing.T, c benchCase) *benchGroup {
	t.Helper()
	l, vips := benchLab(t, c)
	var backends []netip.AddrPort
	for _, m := range l.Nodes {
		backends = append(backends, netip.AddrPortFrom(m.IPv4, backendPort))
	}
	return startHapodGroup(t, l, vips, c, backends, nil)
}

// startHapodGroup runs hapod on every node of l, holding vips with c's
// settings in front of backends; configure, if set, changes each node's
// Config last.
func startHapodGroup(t *testing.T, l *lab.Lab, vips []netip.Prefix, c benchCase, backends []netip.AddrPort, configure func(*config.Config)) *benchGroup {
	t.Helper()
	g := &benchGroup{impl: "hapod", lab: l, vips: vips, c: c, backupMark: "to=Backup"}
	g.start = func(i int) *lab.Process {
		n := l.Nodes[i]
		cfg := hapodConfig(vips[0], n, backends...)
		cfg.VIP.Prefixes = vips
		cfg.VRRP.Priority = benchPriority
		cfg.VRRP.Version = c.version
		cfg.VRRP.AdvertInterval = c.interval
		if configure != nil {
			configure(&cfg)
		}
		return n.Start(t, hapodBin, runArgs(cfg)...)
	}
	g.kill = func(i int) error { return g.procs[i].Signal(syscall.SIGKILL) }
	for i := range l.Nodes {
		g.procs = append(g.procs, g.start(i))
	}
	return g
}

func newKeepalivedGroup(t *testing.T, c benchCase) *benchGroup {
	t.Helper()
	l, vips := benchLab(t, c)
	return startKeepalivedGroup(t, "keepalived", l, vips, c)
}

// startKeepalivedGroup runs keepalived on every node of l, holding vips
// with c's settings, one vrrp_instance per VIP (of its own family, each
// electing on its own); impl names the group in the report.
func startKeepalivedGroup(t *testing.T, impl string, l *lab.Lab, vips []netip.Prefix, c benchCase) *benchGroup {
	t.Helper()
	g := &benchGroup{impl: impl, lab: l, vips: vips, c: c, backupMark: "Entering BACKUP STATE"}
	g.kas = make([]*lab.Keepalived, len(l.Nodes))
	g.start = func(i int) *lab.Process {
		n := l.Nodes[i]
		// keepalived's defaults otherwise (state BACKUP, preempt, two GARP
		// bursts), as hapod runs with its own defaults.
		var instances []lab.KeepalivedConfig
		for _, v := range vips {
			instances = append(instances, lab.KeepalivedConfig{
				Interface: n.Iface, VRID: defaultVRID(vips[0].Addr()), Priority: benchPriority,
				Interval: c.interval, Version: c.version, VIP: v, Preempt: true,
			})
		}
		g.kas[i] = n.StartKeepalived(t, instances...)
		return g.kas[i].Process
	}
	g.kill = func(i int) error { return g.kas[i].KillVRRP() }
	for i := range l.Nodes {
		g.procs = append(g.procs, g.start(i))
	}
	return g
}

// defaultVRID is hapod's default VRID for vip (its last byte), given to
// keepalived explicitly so both groups speak for the same router ID.
func defaultVRID(vip netip.Addr) uint8 {
	b := vip.AsSlice()
	if v := b[len(b)-1]; v != 0 {
		return v
	}
	return 1
}

// settleTimeout bounds every wait for the protocol: start-up and failover
// take a few intervals; the rest is slack for a loaded machine.
func (g *benchGroup) settleTimeout() time.Duration { return 10*g.c.interval + 10*time.Second }

// holders are the nodes holding the first VIP, leaving out skip (-1:
// none).
func (g *benchGroup) holders(skip int) []int { return g.holdersOf(g.vips[0], skip) }

// holdersOf are the nodes holding vip, leaving out skip (-1: none).
func (g *benchGroup) holdersOf(vip netip.Prefix, skip int) []int {
	var out []int
	for i, n := range g.lab.Nodes {
		if i != skip && n.HasAddr(vip.Addr()) {
			out = append(out, i)
		}
	}
	return out
}

// settled waits until exactly one node holds each VIP and every router has
// logged that it runs (as backup or, for the holder, beyond), and returns
// the first VIP's holder's index. In a dual-stack group the families'
// holders may differ: hapod's IPv6 router follows its IPv4 one, but
// keepalived's instances elect apart, and with equal priorities the
// backups' timers expire together, so which one wins is a race run again
// for each family.
func (g *benchGroup) settled(t *testing.T) int {
	t.Helper()
	holder := -1
	lab.WaitFor(t, g.settleTimeout(), g.impl+": one holder per VIP, every router started", func() bool {
		h := g.holders(-1)
		if len(h) != 1 {
			return false
		}
		for _, v := range g.vips[1:] {
			if len(g.holdersOf(v, -1)) != 1 {
				return false
			}
		}
		for _, p := range g.procs {
			select {
			case <-p.Done():
				t.Fatalf("%s exited: %v\n%s", g.impl, p.Wait(time.Second), p.Log())
			default:
			}
			if !strings.Contains(p.Log(), g.backupMark) {
				return false
			}
		}
		holder = h[0]
		return true
	})
	return holder
}

// fault takes node i away.
func (g *benchGroup) fault(t *testing.T, i int, f faultKind) {
	t.Helper()
	var err error
	switch f {
	case faultHard:
		g.lab.Partition(t, g.lab.Nodes[i])
		err = g.kill(i)
	case faultGraceful:
		err = g.procs[i].Signal(syscall.SIGTERM)
	}
	if err != nil {
		t.Fatalf("%s on %s: %v: %v", g.impl, g.lab.Nodes[i].Name, f, err)
	}
}

// restore brings node i back as a backup after fault f: the process has
// exited, the VIP a crashed router left behind is removed before the node
// is plugged back in, and the router restarts.
func (g *benchGroup) restore(t *testing.T, i int, f faultKind) {
	t.Helper()
	n := g.lab.Nodes[i]
	err := g.procs[i].Wait(10 * time.Second)
	if errors.Is(err, lab.ErrWaitTimeout) {
		t.Fatalf("%s on %s did not exit after %v: %v", g.impl, n.Name, f, err)
	}
	if f == faultGraceful && g.impl == "hapod" && err != nil {
		t.Errorf("hapod on %s: SIGTERM did not end in exit 0: %v", n.Name, err)
	}
	if g.kas != nil {
		waitVRRPChildGone(t, g.kas[i])
	}
	for _, v := range g.vips {
		switch f {
		case faultHard:
			delVIP(t, n, v)
		case faultGraceful:
			if n.HasAddr(v.Addr()) {
				t.Errorf("%s on %s kept the VIP %s after a graceful exit", g.impl, n.Name, v.Addr())
				delVIP(t, n, v)
			}
		}
	}
	if f == faultHard {
		g.lab.Heal(t, n)
	}
	g.procs[i] = g.start(i)
}

// waitVRRPChildGone waits for keepalived's VRRP child to be gone and
// removes its pid file, so that no later cleanup signals a recycled PID.
func waitVRRPChildGone(t *testing.T, k *lab.Keepalived) {
	t.Helper()
	pid, err := k.VRRPPid()
	if err != nil {
		return // never written or removed by keepalived: nothing left
	}
	lab.WaitFor(t, 10*time.Second, fmt.Sprintf("keepalived VRRP child %d to exit", pid), func() bool {
		return !processRunning(pid)
	})
	_ = os.Remove(k.VRRPPidFile)
}

// processRunning reports whether pid runs; a zombie counts as gone.
func processRunning(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// delVIP removes vip from n's interface if it is there.
func delVIP(t *testing.T, n *lab.Node, vip netip.Prefix) {
	t.Helper()
	if !n.HasAddr(vip.Addr()) {
		return
	}
	out, err := exec.Command("ip", "-n", n.NS, "addr", "del", vip.String(), "dev", n.Iface).CombinedOutput()
	if err != nil && n.HasAddr(vip.Addr()) {
		t.Fatalf("%s: remove the VIP left behind: %v: %s", n.Name, err, out)
	}
}

// runResult is one measured failover.
type runResult struct {
	// tcp and icmp are the outages as the brief defines them: from the
	// fault to the first success after it, 0 if no probe failed.
	tcp, icmp time.Duration
	// gap is how long the client really went without a TCP success (last
	// success before the failures to first success after): a blip at the
	// takeover shows as a short gap but a long tcp outage.
	gap time.Duration
	// failed counts the failed TCP probes.
	failed int
	// hit says the VIP was on the node the fault took away; a VIP held
	// elsewhere (keepalived's instances elect apart) was not failed over.
	hit bool
}

// measure injects f into the current holder of the first VIP with the
// client probing the target on every VIP, waits until the client is served
// again on each, and puts the group back together. It returns a result per
// VIP.
func (g *benchGroup) measure(t *testing.T, f faultKind) []runResult {
	t.Helper()
	h := g.settled(t)
	hit := make([]bool, len(g.vips))
	for i, v := range g.vips {
		hit[i] = g.lab.Nodes[h].HasAddr(v.Addr())
	}
	var probes []*lab.Probe
	for _, v := range g.vips {
		target := netip.AddrPortFrom(v.Addr(), benchTargetPort)
		probe, err := lab.StartProbeConfig(t.Context(), g.lab.Client, lab.ProbeConfig{Target: target, ICMP: true})
		if err != nil {
			t.Fatal(err)
		}
		defer probe.Stop()
		probes = append(probes, probe)
	}
	capture := g.startCapture(t)
	lab.WaitFor(t, 5*time.Second, g.impl+": the client reaches the target before the fault", func() bool {
		for _, p := range probes {
			r := p.Snapshot()
			if s, ok := r.LastSample(); !ok || !s.OK || r.Attempts < 5 {
				return false
			}
		}
		return true
	})
	// A random phase between the last advert and the fault: detection
	// takes between 3 and 4 intervals depending on it.
	time.Sleep(rand.N(g.c.interval))
	at := time.Now()
	g.fault(t, h, f)

	// Served again: another node holds the VIP and a connect that started
	// after it was seen holding succeeded, for every VIP.
	for i, v := range g.vips {
		var seen time.Time
		lab.WaitFor(t, g.settleTimeout(), fmt.Sprintf("%s: the client is served on %s again after %v of %s", g.impl, v.Addr(), f, g.lab.Nodes[h].Name), func() bool {
			if seen.IsZero() {
				if len(g.holdersOf(v, h)) == 0 {
					return false
				}
				seen = time.Now()
			}
			for _, s := range slices.Backward(probes[i].Snapshot().Samples) {
				if s.At.Before(seen) {
					return false
				}
				if s.OK {
					return true
				}
			}
			return false
		})
	}
	// A little longer, so the ICMP probe recovers too and a relapse
	// (the old holder answering again) would show.
	time.Sleep(max(200*time.Millisecond, 2*g.c.interval))
	var out []runResult
	var worst time.Duration
	for i, p := range probes {
		res := p.Stop()
		r := runResult{tcp: res.OutageAfter(at), hit: hit[i]}
		if o, ok := res.OutageAt(at); ok {
			if !o.Recovered {
				t.Fatalf("%s: the target on %s did not recover after %v: %v", g.impl, g.vips[i].Addr(), f, res)
			}
			r.gap, r.failed = o.Duration, o.Failures
		}
		if res.ICMP != nil {
			r.icmp = res.ICMP.OutageAfter(at)
		}
		out = append(out, r)
		worst = max(worst, r.tcp)
	}
	capture.finish(t, worst, h)
	g.restore(t, h, f)
	return out
}

// runCapture is tcpdump on the client during one run (HAPOD_BENCH_PCAP).
type runCapture struct {
	g    *benchGroup
	cmd  *exec.Cmd
	path string
}

// startCapture starts tcpdump on the client when HAPOD_BENCH_PCAP names a
// directory: ARP, VRRP and the probes' SYNs and RSTs, and for IPv6 VRRP,
// ICMPv6 (Neighbor Discovery) and the probes' packets (BPF reads no TCP
// flags past an IPv6 header). Nil otherwise.
func (g *benchGroup) startCapture(t *testing.T) *runCapture {
	t.Helper()
	dir := os.Getenv("HAPOD_BENCH_PCAP")
	if dir == "" {
		return nil
	}
	c := &runCapture{g: g, path: fmt.Sprintf("%s/%s-%d.pcap", dir, g.impl, time.Now().UnixNano())}
	c.cmd = g.lab.Client.Command(t.Context(), "tcpdump", "-i", "any", "-n", "--immediate-mode", "-U", "-w", c.path,
		"arp or vrrp or (tcp port 7000 and tcp[tcpflags] & (tcp-syn|tcp-rst) != 0) or ip6 proto 112 or icmp6 or (ip6 and tcp port 7000)")
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("tcpdump: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // tcpdump attaches
	return c
}

// finish stops the capture and keeps it only for a slow run (an outage
// past four intervals and half a second), logging the routers' last lines
// with it.
func (c *runCapture) finish(t *testing.T, outage time.Duration, holder int) {
	t.Helper()
	if c == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	_ = c.cmd.Wait()
	if outage < 4*c.g.c.interval+500*time.Millisecond {
		_ = os.Remove(c.path)
		return
	}
	t.Logf("slow run kept in %s (holder was %s); routers' last lines:", c.path, c.g.lab.Nodes[holder].Name)
	for i, p := range c.g.procs {
		t.Logf("%s:\n%s", c.g.lab.Nodes[i].Name, tail(p.Log(), 10))
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// benchRow is the summary of one (case, fault, VIP) for both
// implementations.
type benchRow struct {
	c benchCase
	f faultKind
	// family is the VIP's family in a dual-stack case, "" otherwise.
	family config.Family
	// missed counts, per implementation, the runs in which the fault
	// did not hit this VIP (held by another node than the first VIP):
	// they are left out of the outages.
	missed  map[string]int
	tcp     map[string][]time.Duration
	icmp    map[string][]time.Duration
	gap     map[string][]time.Duration
	runs    int
	elapsed time.Duration
}

// TestBenchFailover measures the client-observed outage of hapod and
// keepalived for hard and graceful failures (see the file comment). Set
// HAPOD_BENCH=1 to run it; HAPOD_BENCH_RUNS sets the run count and
// HAPOD_BENCH_OUT a file for the Markdown table; HAPOD_BENCH_PCAP a
// directory for client captures of slow runs.
func TestBenchFailover(t *testing.T) {
	if os.Getenv("HAPOD_BENCH") != "1" {
		t.Skip("a benchmark: set HAPOD_BENCH=1 (make bench-failover)")
	}
	lab.Tool(t, "keepalived", "keepalived")
	runs := benchRuns(t)
	var rows []*benchRow
	for _, c := range benchCases {
		t.Run(c.name, func(t *testing.T) {
			// Both groups exist side by side for the whole case, so both
			// see the same machine and the same background noise.
			groups := []*benchGroup{newHapodGroup(t, c), newKeepalivedGroup(t, c)}
			for _, f := range []faultKind{faultHard, faultGraceful} {
				t.Run(f.short(), func(t *testing.T) {
					rows = append(rows, measureRows(t, groups, c, f, runs)...)
				})
			}
		})
	}
	table := renderBenchTable(rows)
	fmt.Print(table)
	t.Log("\n" + table)
	if out := os.Getenv("HAPOD_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(table), 0o644); err != nil {
			t.Errorf("HAPOD_BENCH_OUT: %v", err)
		}
	}
}

// measureRows measures fault f runs times on each group, alternating which
// implementation goes first, and returns a row per VIP.
func measureRows(t *testing.T, groups []*benchGroup, c benchCase, f faultKind, runs int) []*benchRow {
	var rows []*benchRow
	for _, v := range groups[0].vips {
		row := &benchRow{c: c, f: f, runs: runs, missed: map[string]int{},
			tcp: map[string][]time.Duration{}, icmp: map[string][]time.Duration{}, gap: map[string][]time.Duration{}}
		if c.dualStack {
			row.family = config.FamilyOf(v.Addr())
		}
		if f == faultHard {
			row.runs = runs * c.hardFactor
		}
		rows = append(rows, row)
	}
	start := time.Now()
	for r := range rows[0].runs {
		order := groups
		if r%2 == 1 {
			order = []*benchGroup{groups[1], groups[0]}
		}
		for _, g := range order {
			for i, res := range g.measure(t, f) {
				row := rows[i]
				if !res.hit {
					row.missed[g.impl]++
					t.Logf("%s %s run %d %s %s: held by another node than %s, not failed over (outage %v)", c.name, f, r+1, g.impl, g.vips[i].Addr(),
						g.vips[0].Addr(), res.tcp.Round(time.Millisecond))
					continue
				}
				row.tcp[g.impl] = append(row.tcp[g.impl], res.tcp)
				row.icmp[g.impl] = append(row.icmp[g.impl], res.icmp)
				row.gap[g.impl] = append(row.gap[g.impl], res.gap)
				t.Logf("%s %s run %d %s %s: tcp outage %v (gap %v, %d probes failed), icmp outage %v", c.name, f, r+1, g.impl, g.vips[i].Addr(),
					res.tcp.Round(time.Millisecond), res.gap.Round(time.Millisecond), res.failed, res.icmp.Round(time.Millisecond))
			}
		}
	}
	elapsed := time.Since(start)
	for _, row := range rows {
		row.elapsed = elapsed
	}
	t.Logf("%s %s: %d runs per implementation in %v", c.name, f, rows[0].runs, elapsed.Round(time.Second))
	return rows
}

// benchRuns is HAPOD_BENCH_RUNS or benchRunsDefault.
func benchRuns(t *testing.T) int {
	s := os.Getenv("HAPOD_BENCH_RUNS")
	if s == "" {
		return benchRunsDefault
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("HAPOD_BENCH_RUNS=%q: want a positive number", s)
	}
	return n
}

// durationStats summarises a sample of outages.
type durationStats struct {
	n                       int
	min, med, p95, p99, max time.Duration
	zero                    int // runs without any failed probe
}

func statsOf(d []time.Duration) durationStats {
	if len(d) == 0 {
		return durationStats{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	st := durationStats{n: len(s), min: s[0], max: s[len(s)-1]}
	if len(s)%2 == 1 {
		st.med = s[len(s)/2]
	} else {
		st.med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	// Nearest rank: with fewer than 20 runs (p99: 100) this is the
	// maximum.
	st.p95 = s[int(math.Ceil(0.95*float64(len(s))))-1]
	st.p99 = s[int(math.Ceil(0.99*float64(len(s))))-1]
	for _, x := range s {
		if x == 0 {
			st.zero++
		}
	}
	return st
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 0, 64)
}

func (s durationStats) triple() string {
	if s.n == 0 {
		return "n/a"
	}
	return ms(s.min) + " / " + ms(s.med) + " / " + ms(s.max)
}

// pair is "h / k" of d for two samples, n/a for an empty one.
func pair(h, k durationStats, d func(durationStats) time.Duration) string {
	one := func(s durationStats) string {
		if s.n == 0 {
			return "n/a"
		}
		return ms(d(s))
	}
	return one(h) + " / " + one(k)
}

// renderBenchTable is the Markdown report. The TCP probe is the headline;
// the ICMP probe's medians are a column (both probes start on the same
// ticks, so equal numbers are expected). A dual-stack case has a row per
// VIP, its family beside the case's name, over the runs whose fault hit
// that VIP's holder; a note under the table counts the others.
func renderBenchTable(rows []*benchRow) string {
	var b, notes strings.Builder
	b.WriteString("\nClient-observed outage (ms) from the fault to the first success after it: TCP connect to VIP:7000 every 10 ms; 0 = no probe failed.\n")
	b.WriteString("Gap: the longest time the client went without a success (last success before to first after).\n\n")
	b.WriteString("| case | fault | runs | hapod min / median / max | keepalived min / median / max | ratio of medians h/k | p95 h / k | p99 h / k | runs without outage h / k | gap max h / k | ICMP median h / k |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		h, k := statsOf(r.tcp["hapod"]), statsOf(r.tcp["keepalived"])
		ih, ik := statsOf(r.icmp["hapod"]), statsOf(r.icmp["keepalived"])
		gh, gk := statsOf(r.gap["hapod"]), statsOf(r.gap["keepalived"])
		ratio := "n/a"
		if k.med > 0 {
			ratio = strconv.FormatFloat(float64(h.med)/float64(k.med), 'f', 2, 64)
		}
		name := r.c.name + map[config.Family]string{config.IPv4: ", IPv4 VIP", config.IPv6: ", IPv6 VIP"}[r.family]
		runs := strconv.Itoa(h.n)
		if h.n != k.n {
			runs = fmt.Sprintf("%d / %d", h.n, k.n)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %d / %d | %s | %s |\n",
			name, r.f, runs, h.triple(), k.triple(), ratio,
			pair(h, k, func(s durationStats) time.Duration { return s.p95 }),
			pair(h, k, func(s durationStats) time.Duration { return s.p99 }), h.zero, k.zero,
			pair(gh, gk, func(s durationStats) time.Duration { return s.max }),
			pair(ih, ik, func(s durationStats) time.Duration { return s.med }))
		for _, impl := range []string{"hapod", "keepalived"} {
			if n := r.missed[impl]; n > 0 {
				fmt.Fprintf(&notes, "- %s, %s, %s: in %d of %d runs the faulted node did not hold this VIP (the families' holders differed); left out above.\n",
					name, r.f, impl, n, r.runs)
			}
		}
	}
	if notes.Len() > 0 {
		b.WriteString("\n" + notes.String())
	}
	return b.String()
}
