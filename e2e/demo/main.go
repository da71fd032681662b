// Command demo shows hapod's main job to a newcomer in about ten seconds:
// three control-plane nodes in network namespaces share a virtual IP, a
// client reaches the stand-in kube-apiservers through it, and the client
// measures its outage when the VIP holder dies (SIGKILL) and when it hands
// over gracefully (SIGTERM).
//
// It runs the binary that `make static` built (bin/hapod-static) and needs
// root for the namespaces:
//
//	sudo make demo                    # builds bin/hapod-static, then runs the demo
//	sudo make demo DEMO_FLAGS=-v      # with the lab's own log lines
//	sudo make demo DEMO_FLAGS='-hapod /path/to/hapod'  # another binary (e2e's TestDemo)
//
// (make finds go even where sudo's PATH lacks it; a plain `sudo go run
// ./e2e/demo` needs go in root's PATH.)
//
// Everything it starts is stopped by PID and its namespaces are deleted at
// the end, on an error and on Ctrl-C.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/health"
)

const (
	// modulePath identifies the repository's go.mod while looking for the root.
	modulePath = "github.com/hapod/hapod"
	// binary is what `make static` builds, relative to the repository root.
	binary = "bin/hapod-static"

	// frontendPort is the cluster endpoint's port on the VIP, kubeadm's
	// default: the stand-in apiservers hold it on every address, as
	// kube-apiserver does, and hapod's nftables rule sends VIP:6443 to its
	// proxy (config.DefaultListenPort).
	frontendPort = 6443
	// backendPort is where each node's stand-in kube-apiserver listens.
	backendPort = 6443
	// probeInterval is how often the client connects during a failover.
	probeInterval = 10 * time.Millisecond
)

func main() {
	verbose := flag.Bool("v", false, "also print the lab's log lines")
	bin := flag.String("hapod", "", "the hapod binary to run (default: "+binary+" of the repository holding the working directory)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "the demo needs root: sudo make demo")
		os.Exit(1)
	}
	if *bin == "" {
		var err error
		if *bin, err = findBinary(); err != nil {
			fmt.Fprintf(os.Stderr, "demo: %v\n", err)
			os.Exit(1)
		}
	}
	s := lab.NewScript(os.Stdout)
	s.Verbose = *verbose
	d := &demo{s: s, out: os.Stdout, bin: *bin, start: time.Now()}
	d.run()
	s.Close()
	if s.Failed() {
		os.Exit(1)
	}
}

// findBinary looks for bin/hapod-static in the repository that holds the
// working directory: `make demo` runs from the root, a user may run from a
// subdirectory.
func findBinary() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isModuleRoot(dir) {
			bin := filepath.Join(dir, binary)
			if _, err := os.Stat(bin); err != nil {
				return "", fmt.Errorf("%s is missing: build it with `make static` (or run `sudo make demo`, which does)", bin)
			}
			return bin, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run me inside the hapod repository (no go.mod of %s above the working directory)", modulePath)
		}
		dir = parent
	}
}

// isModuleRoot reports whether dir holds hapod's go.mod.
func isModuleRoot(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) == 2 && fields[0] == "module" {
			return fields[1] == modulePath
		}
	}
	return false
}

// demo is one run: the lab, hapod on every node, and the story printed.
type demo struct {
	s     *lab.Script
	out   io.Writer
	bin   string
	start time.Time

	lab   *lab.Lab
	vip   netip.Prefix
	args  [][]string // each node's `hapod run` arguments
	procs []*lab.Process
}

// say prints one line of the story, stamped with the time since the start.
func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "%5.1fs  %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demo) run() {
	var built atomic.Pointer[lab.Lab]
	// Registered first, so it runs last: after the lab's own teardown, on
	// every way out (the end, an error, Ctrl-C), it checks what is left.
	d.s.Cleanup(func() { d.reportCleanup(built.Load()) })

	d.say("building a lab: 3 control-plane nodes and a client on one bridge, in network namespaces")
	l := lab.New(d.s, 3)
	built.Store(l)
	d.lab = l
	d.vip = l.VIP4Prefix(0)
	var hosts []string
	for _, n := range l.Hosts() {
		hosts = append(hosts, fmt.Sprintf("%s %s", n.Name, n.IPv4))
	}
	d.say("lab %s ready: %s", l.ID, strings.Join(hosts, ", "))

	// The stand-in kube-apiservers: one per node on 0.0.0.0:6443, as
	// kube-apiserver binds by default, each greeting with its node's
	// name, so the client sees who served it.
	var backends []netip.AddrPort
	for _, n := range l.Nodes {
		n.ServeTCP(d.s, netip.AddrPortFrom(netip.IPv4Unspecified(), backendPort))
		backends = append(backends, netip.AddrPortFrom(n.IPv4, backendPort))
	}
	for _, n := range l.Nodes {
		// `hapod run`'s arguments as the manifest renders them.
		cfg := config.Default()
		cfg.VIP.Prefixes, cfg.VIP.Interface = []netip.Prefix{d.vip}, n.Iface
		cfg.Proxy.Backends = backends // --port: kubeadm's 6443
		cfg.Health.Check = health.KindTCP
		cfg.Health.Interval, cfg.Health.Timeout = 500*time.Millisecond, 200*time.Millisecond
		d.args = append(d.args, append([]string{"run"}, cfg.Args()...))
		d.procs = append(d.procs, nil)
	}
	started := time.Now()
	for i := range l.Nodes {
		d.startHapod(i)
	}
	d.say("on every node: an \"apiserver\" on 0.0.0.0:%d and `hapod run --vip=%s --backend=<each node>:%d` (VIP:%d reaches hapod's proxy through its nftables rule)",
		backendPort, d.vip, backendPort, frontendPort)

	holder := d.waitOneHolder(10*time.Second, nil)
	d.say("%s holds the VIP %s (%s after hapod started)", holder.Name, d.vip.Addr(), ms(time.Since(started)))
	target := netip.AddrPortFrom(d.vip.Addr(), frontendPort)
	first := d.reach(target, 10*time.Second)
	served := []string{first}
	for range 2 {
		served = append(served, d.reach(target, 2*time.Second))
	}
	d.say("client -> %s -> served by %s's apiserver (next connections: %s)", target, first, strings.Join(served[1:], ", "))

	// Hard failure: no goodbye advert; a backup notices the silence.
	killed := d.index(holder)
	probe := lab.StartProbe(d.s.Context(), l.Client, target, probeInterval)
	time.Sleep(300 * time.Millisecond) // a baseline of successful connects
	d.say("SIGKILL hapod on %s, the VIP holder (no goodbye); the client connects to %s every %v",
		holder.Name, target, probeInterval)
	killAt := time.Now()
	if err := d.procs[killed].Signal(syscall.SIGKILL); err != nil {
		d.s.Fatalf("SIGKILL hapod on %s: %v", holder.Name, err)
	}
	_ = d.procs[killed].Wait(5 * time.Second) // "signal: killed" is the point
	// The dead hapod leaves the VIP on its interface (nobody removed it),
	// so the new holder is the one other than the killed node.
	next := d.waitOneHolder(5*time.Second, holder)
	took := time.Since(killAt)
	d.reach(target, 5*time.Second)
	hard := d.stopProbe(probe, killAt)
	d.say("  %s took the VIP over after %s; the client's outage: %s (%s)",
		next.Name, ms(took), ms(hard.OutageAfter(killAt)), failed(hard))

	// The restarted node removes the address its dead predecessor left and
	// joins as a backup: equal priorities never move the VIP back.
	d.startHapod(killed)
	lab.WaitFor(d.s, 5*time.Second, holder.Name+" to drop the stale VIP", func() bool {
		h := l.Holders(d.vip.Addr())
		return len(h) == 1 && h[0] == next
	})
	d.stableHolder(next, time.Second)
	state := vrrpState(d.procs[killed])
	if state != "Backup" {
		d.s.Fatalf("restarted hapod on %s is in state %q, want Backup", holder.Name, state)
	}
	d.say("restarted hapod on %s: it dropped the VIP its killed predecessor left behind and rejoined as %s;", holder.Name, state)
	d.say("  the VIP stays on %s (equal priorities never move it back)", next.Name)

	// Graceful: SIGTERM makes hapod send priority 0, keep serving until a
	// backup holds the VIP, then release it and exit.
	old := next
	stopped := d.index(old)
	probe = lab.StartProbe(d.s.Context(), l.Client, target, probeInterval)
	time.Sleep(300 * time.Millisecond)
	d.say("SIGTERM hapod on %s, the VIP holder (graceful: a priority-0 advert, then serve until a backup holds the VIP)", old.Name)
	termAt := time.Now()
	if err := d.procs[stopped].Signal(syscall.SIGTERM); err != nil {
		d.s.Fatalf("SIGTERM hapod on %s: %v", old.Name, err)
	}
	next = d.waitOneHolder(5*time.Second, old)
	took = time.Since(termAt)
	if err := d.procs[stopped].Wait(5 * time.Second); err != nil {
		d.s.Fatalf("hapod on %s after SIGTERM: %v (want exit status 0)", old.Name, err)
	}
	exited := time.Since(termAt)
	d.reach(target, 5*time.Second)
	time.Sleep(200 * time.Millisecond) // an outage after the exit would show here
	soft := d.stopProbe(probe, termAt)
	d.say("  %s took the VIP over after %s, %s exited 0 after %s; the client's outage: %s (%s)",
		next.Name, ms(took), old.Name, ms(exited), ms(soft.OutageAfter(termAt)), failed(soft))

	d.say("summary: a crashed VIP holder cost the client %s, a graceful handover %s;",
		ms(hard.OutageAfter(killAt)), ms(soft.OutageAfter(termAt)))
	d.say("         hapod = one static pod per node: no keepalived, no haproxy, nothing asked of the API server")
}

// startHapod (re)starts hapod on node i.
func (d *demo) startHapod(i int) {
	d.procs[i] = d.lab.Nodes[i].Start(d.s, d.bin, d.args[i]...)
}

func (d *demo) index(n *lab.Node) int {
	for i, m := range d.lab.Nodes {
		if m == n {
			return i
		}
	}
	d.s.Fatalf("%s is not a node of the lab", n.Name)
	return -1
}

// waitOneHolder waits until exactly one node other than skip holds the VIP.
func (d *demo) waitOneHolder(timeout time.Duration, skip *lab.Node) *lab.Node {
	var holder *lab.Node
	lab.WaitFor(d.s, timeout, "one node to hold "+d.vip.Addr().String(), func() bool {
		var h []*lab.Node
		for _, n := range d.lab.Holders(d.vip.Addr()) {
			if n != skip {
				h = append(h, n)
			}
		}
		if len(h) != 1 {
			return false
		}
		holder = h[0]
		return true
	})
	return holder
}

// stableHolder checks that n alone holds the VIP for d.
func (d *demo) stableHolder(n *lab.Node, dur time.Duration) {
	for end := time.Now().Add(dur); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if h := d.lab.Holders(d.vip.Addr()); len(h) != 1 || h[0] != n {
			d.s.Fatalf("the VIP moved away from %s: held by %s", n.Name, names(h))
		}
	}
}

// reach connects from the client to target until a backend greets it and
// returns that backend's node name.
func (d *demo) reach(target netip.AddrPort, timeout time.Duration) string {
	var name string
	var lastErr error
	lab.WaitFor(d.s, timeout, "the client to reach "+target.String(), func() bool {
		ctx, cancel := context.WithTimeout(d.s.Context(), time.Second)
		defer cancel()
		name, lastErr = d.lab.Client.WhoServes(ctx, target)
		return lastErr == nil
	})
	return name
}

// stopProbe stops a probe once it has recovered from the outage that began
// at fault (or saw none), and returns its result.
func (d *demo) stopProbe(p *lab.Probe, fault time.Time) lab.ProbeResult {
	lab.WaitFor(d.s, 5*time.Second, "the client's connects to succeed again", func() bool {
		r := p.Snapshot()
		o, ok := r.OutageAt(fault)
		return !ok || o.Recovered
	})
	return p.Stop()
}

// vrrpState is the VRRP state hapod last logged ("Backup", "Active"), or
// "" before its first state change. The log is what an operator reads with
// `kubectl logs`; hapod writes a line per change:
//
//	level=INFO msg="vrrp state change" family=ipv4 vrid=200 from=Init to=Backup reason=startup
func vrrpState(p *lab.Process) string {
	state := ""
	for line := range strings.Lines(p.Log()) {
		if !strings.Contains(line, `msg="vrrp state change"`) {
			continue
		}
		for f := range strings.FieldsSeq(line) {
			if v, ok := strings.CutPrefix(f, "to="); ok {
				state = v
			}
		}
	}
	return state
}

// reportCleanup runs after the lab's teardown and says whether any of its
// namespaces survived.
func (d *demo) reportCleanup(l *lab.Lab) {
	if l == nil {
		return
	}
	var left []string
	for _, ns := range l.Namespaces() {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); !errors.Is(err, os.ErrNotExist) {
			left = append(left, ns)
		}
	}
	if len(left) > 0 {
		d.s.Errorf("cleanup left namespaces behind: %s (delete with `ip netns del NAME`)", strings.Join(left, " "))
		return
	}
	d.say("cleaned up: every process stopped by PID, namespaces %s-* deleted", strings.TrimSuffix(l.Hub, "-hub"))
}

// ms prints a duration in milliseconds, the scale of a VRRP failover.
func ms(d time.Duration) string {
	return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds())
}

// failed summarises a probe's counts.
func failed(r lab.ProbeResult) string {
	return fmt.Sprintf("%d of %d connects failed", r.Failures, r.Attempts)
}

func names(ns []*lab.Node) string {
	if len(ns) == 0 {
		return "nobody"
	}
	var s []string
	for _, n := range ns {
		s = append(s, n.Name)
	}
	return strings.Join(s, ", ")
}
