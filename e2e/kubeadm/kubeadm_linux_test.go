package kubeadm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
)

// TestKubeadmMulticast is the README's quick start on real kubeadm, with
// multicast VRRP (hapod's default) and flags everywhere, on the plain
// listener (--port 8443, kubeadm's HA guide's port): `hapod init --vip
// --port 8443` (no --backend) and `kubeadm init` on node 1, the printed
// `hapod join` line and `kubeadm join VIP:8443 --control-plane ...` on
// nodes 2 and 3; the node identity's access to the apiserver lists, every
// node discovering the other two apiservers, a node removed and joined
// again; then the cluster's lifecycle: `kubeadm upgrade apply` on node 1, and on the VIP
// holder a hapod upgrade, `hapod reset` + `kubeadm reset` and re-join, and
// re-join after hapod was SIGKILLed. Each step runs on the cluster the previous one left.
func TestKubeadmMulticast(t *testing.T) {
	s := prerequisites(t)
	c := newCluster(t, s, false, false)
	steps := []struct {
		name string
		run  func(*testing.T)
	}{
		{"init", func(t *testing.T) { c.initFirst(t, false) }},
		{"join", func(t *testing.T) { c.joinOthers(t, false) }},
		{"node-identity-access", c.nodeAccess},
		{"discovered", c.discovered},
		{"remove-node-and-rejoin", c.removedAndRejoined},
		{"kubeadm-upgrade-apply", c.kubeadmUpgradeApply},
		{"hapod-upgrade-on-holder", c.upgradeOnHolder},
		{"reset-holder-and-rejoin", c.resetHolder},
		{"rejoin-after-sigkill", c.rejoinAfterKill},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.run) {
			t.FailNow() // later steps need this one's cluster
		}
	}
}

// TestKubeadmUnicast is the kubeadm-config form with unicast VRRP, on
// kubeadm's own endpoint: controlPlaneEndpoint is the bare VIP (6443),
// the kube-apiservers keep their default bind and no patch, and VIP:6443
// reaches hapod through its nftables redirect (issue 21). `hapod init
// --kubeadm-config` (+ --peer) before `kubeadm init --config`,
// `hapod join --kubeadm-config join.yaml` (apiServerEndpoint VIP:6443) on
// node 2 (which must write what the printed line would) and the printed
// line on node 3, each before `kubeadm join --config`, preflight ignoring
// nothing but what this machine forces; then the VIP holder crashes and
// kubectl keeps working.
func TestKubeadmUnicast(t *testing.T) {
	s := prerequisites(t)
	c := newCluster(t, s, true, true)
	steps := []struct {
		name string
		run  func(*testing.T)
	}{
		{"init", func(t *testing.T) { c.initFirst(t, true) }},
		{"join", func(t *testing.T) { c.joinOthers(t, true) }},
		{"holder-crash", c.holderCrash},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.run) {
			t.FailNow()
		}
	}
}

// initFirst is scenario 1: `hapod init` then `kubeadm init` on node 1. The
// pod starts as hapod wrote it, the VIP is up before kube-apiserver first
// answers, kubectl works through the VIP and the mirror pod appears.
func (c *cluster) initFirst(t *testing.T, viaConfig bool) {
	n1 := c.nodes[0]
	cfg := n1.writeFile(t, "kubeadm.yaml", c.initConfig(n1))
	args := []string{"init"}
	if viaConfig {
		args = append(args, "--kubeadm-config="+cfg)
	} else {
		args = append(args, "--vip="+c.vip.String())
		if !c.redirect {
			args = append(args, fmt.Sprintf("--port=%d", listenerPort))
		}
	}
	if viaConfig {
		args = append(args, c.backendFlags()...)
	} else {
		// No --backend: node 1's apiserver first, the others discovered;
		// a short grace, which the printed join line carries, so that a
		// removal shows within the test.
		args = append(args, "--member-grace="+memberGrace.String())
	}
	args = append(append(args, c.peerFlags(n1)...), "--image="+c.s.image)
	out := c.hapod(t, n1, args...)
	mode := "hapod: endpoint " + c.endpoint().String() + ": the proxy listens there itself"
	if c.redirect {
		mode = "hapod: endpoint " + c.endpoint().String() + ": redirected by hapod's nftables rule to the proxy on port 9445"
	}
	if !strings.Contains(out, mode) {
		t.Errorf("hapod init does not say %q", mode)
	}
	c.printedHapodJoin = printedJoin(t, out)
	written := readFile(t, n1.hostPath("/etc/kubernetes/manifests/hapod.yaml"))

	w := c.watchVIPAndAPIServer(n1)
	start := time.Now()
	out = c.kubeadm(t, n1, "init", "--config="+cfg, "--upload-certs")
	initTook := time.Since(start)
	c.joinCommand = printedKubeadmJoin(t, out)
	vipAt, apiAt := w.wait(t)
	if !vipAt.Before(apiAt) {
		t.Errorf("kube-apiserver answered at %s, the VIP came up at %s: want the VIP first", apiAt.Format("15:04:05.000"), vipAt.Format("15:04:05.000"))
	}
	t.Logf("kubeadm init took %v; VIP %s up on %s at %s, kube-apiserver first answered at %s: VIP %v earlier",
		initTook.Round(100*time.Millisecond), c.vip.Addr(), n1.name, vipAt.Format("15:04:05.000"), apiAt.Format("15:04:05.000"), apiAt.Sub(vipAt).Round(time.Millisecond))
	// The same order in the containers' own logs, as `crictl logs` shows them.
	acquired := n1.podLogTime(t, "hapod", "hapod", `msg="VIP acquired"`)
	serving := n1.podLogTime(t, "kube-apiserver", "kube-apiserver", "Serving securely on")
	if !acquired.Before(serving) {
		t.Errorf("logs: hapod's \"VIP acquired\" at %s, kube-apiserver's \"Serving securely\" at %s: want the VIP first",
			acquired.Format("15:04:05.000"), serving.Format("15:04:05.000"))
	}
	t.Logf("logs: hapod \"VIP acquired\" at %s, kube-apiserver \"Serving securely on\" at %s (%v later)",
		acquired.Format("15:04:05.000"), serving.Format("15:04:05.000"), serving.Sub(acquired).Round(time.Millisecond))

	if got := readFile(t, n1.hostPath("/etc/kubernetes/manifests/hapod.yaml")); !bytes.Equal(got, written) {
		t.Errorf("hapod.yaml changed during kubeadm init:\n%s", got)
	}
	admin := string(readFile(t, n1.hostPath("/etc/kubernetes/admin.conf")))
	if want := "server: https://" + c.endpoint().String(); !strings.Contains(admin, want) {
		t.Errorf("admin.conf does not name the VIP (%s):\n%s", want, admin)
	}
	nodes := c.waitKubectl(t, n1, time.Minute, "kubectl get nodes through the VIP", func(string) bool { return true }, "get", "nodes", "-o", "wide")
	t.Logf("%s$ kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o wide   (server https://%s)\n%s", n1.name, c.endpoint(), indent(nodes))

	// kubelet's first attempt at node 1's mirror pod is refused (the
	// PriorityClass system-node-critical does not exist yet) and retried on
	// its resync, up to a minute later: joinOthers collects it.
	c.firstMirror = c.watchMirrorPod(n1, c.s.image, 3*time.Minute)
}

// watchMirrorPod polls, in the background, for n's mirror pod to be
// Running with image and ready; the channel gets how long it took, or an
// error at the timeout.
func (c *cluster) watchMirrorPod(n *node, image string, timeout time.Duration) <-chan mirrorResult {
	done := make(chan mirrorResult, 1)
	start := time.Now()
	go func() {
		want := image + " Running true"
		for time.Since(start) < timeout {
			out, err := c.kubectl(context.Background(), n, "get", "pod", "-n", "kube-system", "hapod-"+n.name,
				"-o", "jsonpath={.spec.containers[0].image} {.status.phase} {.status.containerStatuses[0].ready}")
			if err == nil && strings.TrimSpace(out) == want {
				done <- mirrorResult{took: time.Since(start)}
				return
			}
			time.Sleep(2 * time.Second)
		}
		done <- mirrorResult{err: fmt.Errorf("no mirror pod kube-system/hapod-%s %s after %v", n.name, want, timeout)}
	}()
	return done
}

// mirrorResult is how long a mirror pod took to appear, or why it didn't.
type mirrorResult struct {
	took time.Duration
	err  error
}

// joinOthers is scenario 2: nodes 2 and 3 run the `hapod join` line that
// init printed (node 2 the `--kubeadm-config` form when viaConfig, which
// must write the same manifest), then `kubeadm join`: with init's printed
// flags, or with a JoinConfiguration when viaConfig.
func (c *cluster) joinOthers(t *testing.T, viaConfig bool) {
	for i, n := range c.nodes[1:] {
		joinFile := ""
		if viaConfig {
			joinFile = n.writeFile(t, "join.yaml", c.joinConfig(t, n))
		}
		if viaConfig && i == 0 {
			// What the printed line would write, then the file form.
			want, err := n.output(t, hapodBin, append(slices.Clone(c.printedHapodJoin), "--dry-run")...)
			if err != nil {
				t.Fatalf("%v\n%s", err, want)
			}
			args := append(append([]string{"join", "--kubeadm-config=" + joinFile}, c.backendFlags()...), c.peerFlags(n)...)
			c.hapod(t, n, append(args, "--image="+c.s.image)...)
			if got := readFile(t, n.hostPath("/etc/kubernetes/manifests/hapod.yaml")); string(got) != want {
				t.Errorf("%s: hapod join --kubeadm-config wrote a different manifest than the printed line would:\n%s\nprinted line's:\n%s", n.name, got, want)
			}
		} else if viaConfig {
			// Node 3 has no hapod binary: hapod comes from the image
			// archive its containerd imported, run as the README's Install
			// section shows.
			c.hapodFromImage(t, n, c.printedHapodJoin...)
		} else {
			c.hapod(t, n, c.printedHapodJoin...)
		}
		start := time.Now()
		if viaConfig {
			c.kubeadm(t, n, "join", "--config="+joinFile)
		} else {
			// The printed command plus what a host's own kubelet settings
			// (/etc/default/kubelet) and this lab need.
			n.setKubeletExtraArgs("--cgroup-root="+n.cgroupRoot, "--node-ip="+n.IPv4.String())
			c.kubeadm(t, n, append(slices.Clone(c.joinCommand), "--apiserver-advertise-address="+n.IPv4.String(),
				"--ignore-preflight-errors="+strings.Join(preflightIgnored, ","))...)
		}
		t.Logf("%s joined the control plane through the VIP in %v", n.name, time.Since(start).Round(100*time.Millisecond))
	}
	m := <-c.firstMirror
	if m.err != nil {
		t.Fatal(m.err)
	}
	t.Logf("mirror pod kube-system/hapod-%s Running %v after kubeadm init returned (kubelet's first attempt is refused before the PriorityClass system-node-critical exists; it retries on its resync)",
		c.nodes[0].name, m.took.Round(time.Second))
	for _, n := range c.nodes[1:] {
		c.waitMirrorPod(t, c.nodes[0], c.s.image, 3*time.Minute, n)
	}
	out := c.waitKubectl(t, c.nodes[0], time.Minute, "three nodes", func(s string) bool {
		return strings.Count(s, "\ncp") == 3
	}, "get", "nodes", "-o", "wide")
	t.Logf("%s$ kubectl get nodes -o wide\n%s", c.nodes[0].name, indent(out))
	pods, _ := c.kubectl(t.Context(), c.nodes[0], "get", "pods", "-n", "kube-system", "-o", "wide")
	t.Logf("%s$ kubectl get pods -n kube-system -o wide\n%s", c.nodes[0].name, indent(pods))
	t.Logf("VIP on %s", names(c.holders()))
	if c.redirect {
		// Every node's hapod, running in its pod with the manifest's
		// capabilities, holds its redirect.
		for _, n := range c.nodes {
			c.checkRedirect(t, n)
		}
		out, _ := c.nodes[0].output(t, hapodBin, "status")
		t.Logf("%s$ hapod status\n%s", c.nodes[0].name, indent(out))
	}
}

// ctrRun is the README's "No binary on the host" command in node n:
// `ctr -n k8s.io run --rm --net-host` of hapod's image (the one imported
// from the archive) with /etc/kubernetes and containerd's socket
// bind-mounted, running /hapod with args.
func (c *cluster) ctrRun(t *testing.T, n *node, id string, args ...string) (string, error) {
	t.Helper()
	return n.run(t.Context(), "ctr", append([]string{"-n", "k8s.io", "run", "--rm", "--net-host",
		"--mount", "type=bind,src=/etc/kubernetes,dst=/etc/kubernetes,options=rbind:rw",
		"--mount", "type=bind,src=/run/containerd/containerd.sock,dst=/var/run/containerd/containerd.sock,options=bind:rw",
		c.s.image, id, "/hapod"}, args...)...)
}

// hapodFromImage runs `hapod args` on node n, which has no hapod binary,
// from the image with ctrRun. First the image check with an --image the
// node does not have (a localhost/ tag never imported): exit status 1, one
// line naming the import command, no manifest written. Then args as given
// (their image is on the node): the check passes and the manifest is
// written. Records args for later re-runs like hapod does.
func (c *cluster) hapodFromImage(t *testing.T, n *node, args ...string) string {
	t.Helper()
	if out, err := n.run(t.Context(), "sh", "-c", "command -v hapod"); err == nil {
		t.Fatalf("%s has a hapod binary on its PATH: %s", n.name, out)
	}
	manifestPath := n.hostPath("/etc/kubernetes/manifests/hapod.yaml")
	before := tree(t, n.hostPath("/etc/kubernetes"))
	absent := c.s.image + "-absent"
	var bad []string
	for _, a := range args {
		if !strings.HasPrefix(a, "--image=") {
			bad = append(bad, a)
		}
	}
	bad = append(bad, "--image="+absent)
	out, err := c.ctrRun(t, n, "hapod-absent", bad...)
	var ee *exec.ExitError
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || len(lines) != 1 ||
		!strings.Contains(out, "--image "+absent+": not on this node") || !strings.Contains(out, "import it first: ctr -n k8s.io images import ") {
		t.Fatalf("%s: hapod %s from the image with an image the node lacks: %v\n%s\nwant exit status 1 and one line naming ctr import", n.name, strings.Join(bad, " "), err, out)
	}
	if after := tree(t, n.hostPath("/etc/kubernetes")); !slices.Equal(after, before) {
		t.Fatalf("%s: hapod with a missing image wrote into /etc/kubernetes: %q, before %q", n.name, after, before)
	}
	t.Logf("%s (no hapod binary)$ ctr -n k8s.io run --rm --net-host --mount ...etc/kubernetes... --mount ...containerd.sock... %s hapod-absent /hapod %s\n%s   exit status %d, no manifest written",
		n.name, c.s.image, strings.Join(bad, " "), indent(out), ee.ExitCode())

	out, err = c.ctrRun(t, n, "hapod-"+args[0], args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "is on this node (unix:///var/run/containerd/containerd.sock)") {
		t.Errorf("%s: hapod from the image did not find its image on the node:\n%s", n.name, out)
	}
	if _, err := os.Stat(manifestPath); err != nil {
		t.Fatalf("%s: hapod from the image wrote no manifest: %v", n.name, err)
	}
	c.hapodArgs[n] = args
	t.Logf("%s (no hapod binary)$ ctr -n k8s.io run --rm --net-host --mount ... %s hapod-%s /hapod %s\n%s", n.name, c.s.image, args[0], strings.Join(args, " "), indent(out))
	return out
}

// tree lists the files and directories under dir, with their sizes.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var list []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		list = append(list, fmt.Sprintf("%s %d", p, info.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// holderCrash is scenario 3: the VIP holder dies (kubelet, containerd and
// every container SIGKILLed, link down). The VIP moves, and a client that
// GETs https://VIP:8443/readyz every 100 ms sees the endpoint come back.
// HAPOD_CRASH_RUNS=N (default 1) crashes the holder N times, bringing the
// crashed node back in between, and logs the outages' p50 / p99 / max.
func (c *cluster) holderCrash(t *testing.T) {
	runs := 1
	if v := os.Getenv("HAPOD_CRASH_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("HAPOD_CRASH_RUNS=%q: want a positive number", v)
		}
		runs = n
	}
	var outages []time.Duration
	for r := range runs {
		if r > 0 {
			c.recoverCrashed(t)
		}
		outages = append(outages, c.crashOnce(t, r+1))
	}
	if runs > 1 {
		s := slices.Sorted(slices.Values(outages))
		rank := func(q float64) time.Duration { return s[max(0, int(math.Ceil(q*float64(len(s))))-1)] }
		t.Logf("client-observed outage over %d holder crashes: p50 %v, p99 %v, max %v (all: %v)",
			runs, rank(0.5).Round(time.Millisecond), rank(0.99).Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond), outages)
	}
}

// crashOnce crashes the holder and returns the client-observed outage.
func (c *cluster) crashOnce(t *testing.T, run int) time.Duration {
	h := c.holder(t)
	p := c.startReadyzProbe(t)
	// The control: the surviving apiservers asked directly, not through
	// the VIP. A request that fails there too failed in the apiserver
	// (etcd electing a new leader when the crashed node led it), not in
	// the failover.
	direct := map[*node]*readyzProbe{}
	for _, n := range c.nodes {
		if n != h {
			direct[n] = c.startReadyzProbeTo(t, netip.AddrPortFrom(n.IPv4, apiserverPort))
		}
	}
	lab.WaitFor(t, 30*time.Second, "a successful readyz through the VIP", func() bool {
		r := p.snapshot()
		last, ok := r.LastSample()
		return ok && last.OK
	})
	time.Sleep(2 * time.Second)
	at := time.Now()
	h.crash(t)
	c.crashed = h
	var moved time.Time
	var to *node
	lab.WaitFor(t, 30*time.Second, "another node to take the VIP", func() bool {
		for _, n := range c.holders() {
			if n != h {
				moved, to = time.Now(), n
				return true
			}
		}
		return false
	})
	// Recovered: ten successes in a row (one second) after the crash.
	lab.WaitFor(t, time.Minute, "the endpoint to answer again", func() bool {
		r := p.snapshot()
		ok := 0
		for _, s := range slices.Backward(r.Samples) {
			if !s.OK || s.At.Before(at) {
				break
			}
			ok++
		}
		return ok >= 10
	})
	time.Sleep(time.Second)
	r := p.stop()
	o, found := r.OutageAt(at)
	if found && !o.Recovered {
		c.logHapod(t, 40)
		t.Fatalf("the endpoint did not recover after %s crashed: %s", h.name, report(r))
	}
	outage := r.OutageAfter(at)
	t.Logf("run %d: %s (VIP holder) crashed at %s; VIP on %s %v later; client-observed outage %v after the crash: %s",
		run, h.name, at.Format("15:04:05.000"), to.name, moved.Sub(at).Round(time.Millisecond), outage.Round(time.Millisecond), report(r))
	for _, s := range r.Samples {
		if !s.OK && !s.At.Before(at) {
			t.Logf("run %d: request sent %v after the crash (%v after the VIP moved) failed: %v",
				run, s.At.Sub(at).Round(time.Millisecond), s.At.Sub(moved).Round(time.Millisecond), s.Err)
		}
	}
	for n, dp := range direct {
		dr := dp.stop()
		var failed []string
		for _, s := range dr.Samples {
			if !s.OK && !s.At.Before(at) {
				failed = append(failed, s.At.Sub(at).Round(time.Millisecond).String())
			}
		}
		t.Logf("run %d: control, %s's kube-apiserver asked directly: %d of %d requests after the crash failed %v",
			run, n.name, len(failed), len(dr.Samples), failed)
	}
	out := c.waitKubectl(t, to, time.Minute, "kubectl get nodes through the VIP after the crash", func(string) bool { return true }, "get", "nodes")
	t.Logf("run %d: %s$ kubectl get nodes   (server https://%s, %s crashed)\n%s", run, to.name, c.endpoint(), h.name, indent(out))
	if c.redirect {
		c.checkRedirect(t, to)
	}
	return outage
}

// recoverCrashed brings the node crashOnce crashed back as a host that
// rebooted: the VIP its downed link kept is gone (a reboot clears it),
// the link is up, containerd and kubelet start and restart the static
// pods. It returns once that node's kube-apiserver answers and the
// holder's hapod checks it up and no longer suspects it.
func (c *cluster) recoverCrashed(t *testing.T) {
	n := c.crashed
	c.crashed = nil
	start := time.Now()
	addrs, err := n.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if a.Addr() != c.vip.Addr() {
			continue
		}
		if out, err := exec.Command("ip", "-n", n.NS, "addr", "del", a.String(), "dev", n.Iface).CombinedOutput(); err != nil {
			t.Fatalf("%s: remove the VIP its crash left: %v: %s", n.name, err, out)
		}
	}
	n.LinkUp(t)
	if err := n.startContainerd(t.Context()); err != nil {
		t.Fatal(err)
	}
	n.startKubelet()
	direct := httpClient(c.lab.Client, nil, time.Second)
	url := "https://" + netip.AddrPortFrom(n.IPv4, apiserverPort).String() + "/readyz"
	lab.WaitFor(t, 3*time.Minute, n.name+"'s kube-apiserver ready again", func() bool {
		return attempt(direct, url, time.Now()).OK
	})
	h := c.holder(t)
	backend := netip.AddrPortFrom(n.IPv4, apiserverPort)
	var failures uint64
	lab.WaitFor(t, time.Minute, h.name+"'s hapod to check "+n.name+"'s apiserver up, not suspect", func() bool {
		rep, err := h.hapodStatus(t.Context())
		if err != nil {
			return false
		}
		for _, b := range rep.Backends {
			if b.Address == backend {
				failures = b.ConnectFailures
				return b.Health == "up" && !b.Suspect
			}
		}
		return false
	})
	t.Logf("%s back after %v; the holder %s's proxy failed %d dials to it since that hapod started",
		n.name, time.Since(start).Round(100*time.Millisecond), h.name, failures)
}

// checkRedirect fails unless `hapod status` on n says VIP:6443 goes to
// the proxy through the redirect.
func (c *cluster) checkRedirect(t *testing.T, n *node) {
	t.Helper()
	// The table's columns are as wide as their widest cell.
	want := regexp.MustCompile(`\nREDIRECT +` + regexp.QuoteMeta(c.endpoint().String()) + ` +to the proxy on :9445 \(serving\)`)
	lab.WaitFor(t, 30*time.Second, n.name+"'s redirect serving", func() bool {
		out, _ := n.output(t, hapodBin, "status")
		return want.MatchString(out)
	})
}

// waitMirrorPod waits until kube-system/hapod-<node> (of each given node,
// default n itself) is Running with image and its container ready, asking
// through n's admin.conf.
func (c *cluster) waitMirrorPod(t *testing.T, n *node, image string, timeout time.Duration, of ...*node) {
	t.Helper()
	if len(of) == 0 {
		of = []*node{n}
	}
	for _, m := range of {
		want := image + " Running true"
		c.waitKubectl(t, n, timeout, "mirror pod kube-system/hapod-"+m.name+" "+want, func(s string) bool {
			return strings.TrimSpace(s) == want
		}, "get", "pod", "-n", "kube-system", "hapod-"+m.name, "-o", "jsonpath={.spec.containers[0].image} {.status.phase} {.status.containerStatuses[0].ready}")
	}
}

// vipWatch records when the VIP appears on a node and when its
// kube-apiserver first answers HTTPS at all.
type vipWatch struct {
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	vipAt time.Time
	apiAt time.Time
}

// watchVIPAndAPIServer polls every 20 ms, from the lab's client, until both
// happened.
func (c *cluster) watchVIPAndAPIServer(n *node) *vipWatch {
	w := &vipWatch{stop: make(chan struct{}), done: make(chan struct{})}
	client := httpClient(c.lab.Client, nil, 200*time.Millisecond)
	url := fmt.Sprintf("https://%s:%d/livez", n.IPv4, apiserverPort)
	go func() {
		defer close(w.done)
		for {
			now := time.Now()
			w.mu.Lock()
			needVIP, needAPI := w.vipAt.IsZero(), w.apiAt.IsZero()
			w.mu.Unlock()
			if needVIP && n.HasAddr(c.vip.Addr()) {
				w.mu.Lock()
				w.vipAt = now
				w.mu.Unlock()
			}
			if needAPI {
				if resp, err := client.Get(url); err == nil {
					resp.Body.Close()
					w.mu.Lock()
					w.apiAt = now
					w.mu.Unlock()
				}
			}
			if !needVIP && !needAPI {
				return
			}
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return w
}

// wait returns both times, failing the test if one never happened.
func (w *vipWatch) wait(t *testing.T) (vipAt, apiAt time.Time) {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(time.Minute):
		close(w.stop)
		<-w.done
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.vipAt.IsZero() || w.apiAt.IsZero() {
		t.Fatalf("VIP up at %v, kube-apiserver answered at %v: one never happened", w.vipAt, w.apiAt)
	}
	return w.vipAt, w.apiAt
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// joinArgs is node n's `hapod join` command line: the one it was set up
// with, as `join` (node 1's `init` flags work for join too, as the README's
// upgrade procedure says), with image instead of the original one when not
// empty, and extra flags appended.
func (c *cluster) joinArgs(n *node, image string, extra ...string) []string {
	args := []string{"join"}
	for _, a := range c.hapodArgs[n][1:] {
		if image != "" && strings.HasPrefix(a, "--image=") {
			continue
		}
		args = append(args, a)
	}
	if image != "" {
		args = append(args, "--image="+image)
	}
	return append(args, extra...)
}

// waitReadyz waits for the probe's latest request to have succeeded, then
// lets it run for a baseline of two seconds.
func waitReadyz(t *testing.T, p *readyzProbe) {
	t.Helper()
	lab.WaitFor(t, time.Minute, "a successful readyz through the VIP", func() bool {
		last, ok := p.snapshot().LastSample()
		return ok && last.OK
	})
	time.Sleep(2 * time.Second)
}

// upgradeOnHolder is scenario 4: on the node holding the VIP, the README's
// upgrade, `hapod join ...same flags... --image NEW --force`. kubelet
// replaces the pod; the old one hands the VIP over before it lets go. No
// client request may fail.
func (c *cluster) upgradeOnHolder(t *testing.T) {
	h := c.holder(t)
	p := c.startReadyzProbe(t)
	waitReadyz(t, p)
	start := time.Now()
	c.hapod(t, h, c.joinArgs(h, c.s.imageNew, "--force")...)
	c.waitMirrorPod(t, h, c.s.imageNew, 2*time.Minute)
	took := time.Since(start)
	time.Sleep(3 * time.Second)
	r := p.stop()
	if r.Failures != 0 {
		t.Errorf("%d client requests failed during the upgrade on the VIP holder: %s", r.Failures, report(r))
		c.logHapod(t, 40)
	}
	t.Logf("upgrade on the VIP holder %s: new pod (%s) Running %v after hapod join; VIP now on %s; client: %s",
		h.name, c.s.imageNew, took.Round(100*time.Millisecond), names(c.holders()), report(r))
}

// upgradeIgnored are the `kubeadm upgrade apply` preflight errors the test
// ignores, each forced by the lab rather than by hapod.
var upgradeIgnored = []string{
	// cgroup v1 (hybrid) machine, as for init and join.
	"SystemVerification",
	// CoreDNS was never installed (addon/coredns skipped: no CNI): these
	// read its ConfigMap and Deployment.
	"CoreDNSUnsupportedPlugins", "CoreDNSMigration",
	// No CNI, so nodes stay NotReady and the check's Job pod never runs.
	"CreateJob", "ControlPlaneNodesReady",
}

// kubeadmUpgradeApply is scenario 6: `kubeadm upgrade apply` on node 1
// leaves hapod.yaml byte for byte as it was, and no client request fails.
func (c *cluster) kubeadmUpgradeApply(t *testing.T) {
	n1 := c.nodes[0]
	manifest := n1.hostPath("/etc/kubernetes/manifests/hapod.yaml")
	before := readFile(t, manifest)
	p := c.startReadyzProbe(t)
	waitReadyz(t, p)
	out := c.kubeadm(t, n1, "upgrade", "apply", c.s.version, "--yes", "--ignore-preflight-errors="+strings.Join(upgradeIgnored, ","))
	var steps []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "[upgrade/staticpods]") || strings.Contains(line, "[upgrade/etcd]") {
			steps = append(steps, line)
		}
	}
	t.Logf("what kubeadm did to the static pods:\n%s", indent(strings.Join(steps, "\n")))
	time.Sleep(3 * time.Second)
	r := p.stop()
	if after := readFile(t, manifest); !bytes.Equal(after, before) {
		t.Errorf("kubeadm upgrade apply changed hapod.yaml:\n%s", after)
	}
	if r.Failures != 0 {
		t.Errorf("%d client requests failed during kubeadm upgrade apply: %s", r.Failures, report(r))
		c.logHapod(t, 40)
	}
	t.Logf("kubeadm upgrade apply %s on %s: hapod.yaml unchanged (%d bytes); client: %s", c.s.version, n1.name, len(before), report(r))
}

// resetHolder is scenario 5: on the VIP holder, as on a real host, `hapod
// reset` (hands the VIP over and removes hapod.yaml), kubelet stopped, then
// `kubeadm reset -f`. No node keeps a stale VIP, clients keep working, and
// the node joins again.
func (c *cluster) resetHolder(t *testing.T) {
	h := c.holder(t)
	p := c.startReadyzProbe(t)
	waitReadyz(t, p)
	out := h.must(t, hapodBin, "reset")
	t.Logf("%s$ hapod reset\n%s", h.name, indent(out))
	h.stopKubelet()
	resetAt := time.Now()
	c.kubeadm(t, h, "reset", "-f")
	time.Sleep(3 * time.Second)
	held := c.holders()
	r := p.stop()
	if len(held) != 1 || held[0] == h {
		t.Errorf("after hapod reset and kubeadm reset on %s the VIP is on %s: want exactly one other node", h.name, names(held))
	}
	for _, n := range c.nodes {
		addrs, err := n.Addrs()
		t.Logf("%s eth0: %v %v", n.name, addrs, err)
	}
	// kubeadm reset kills the node's kube-apiserver without a grace period
	// (CRI StopPodSandbox): a request that another node's proxy had sent
	// there just then is cut, and no L4 proxy can save it. Every other
	// failure (refused, timed out, cut during hapod's handover, ...) is the
	// endpoint's.
	if cut, other := splitCut(r, resetAt); other != 0 {
		t.Errorf("%d client requests failed during hapod reset + kubeadm reset on the VIP holder (%d more were cut in flight): %s", other, cut, report(r))
		c.logHapod(t, 40)
	} else if cut != 0 {
		t.Logf("%d requests were in flight to %s's kube-apiserver when kubeadm reset killed it (EOF or reset after connecting)", cut, h.name)
	}
	t.Logf("reset of the VIP holder %s: VIP now on %s; client: %s", h.name, names(held), report(r))
	c.rejoin(t, h, nil)
}

// rejoin joins a reset node again: kubelet started (systemctl start
// kubelet), `hapod join` with its flags, `kubeadm join` with init's
// printed command. afterHapod, when not nil, gets hapod join's output
// before kubeadm runs.
func (c *cluster) rejoin(t *testing.T, n *node, afterHapod func(out string)) {
	t.Helper()
	n.startKubelet()
	args := c.hapodArgs[n]
	if args[0] != "join" {
		args = c.joinArgs(n, "")
	}
	out := c.hapod(t, n, args...)
	if afterHapod != nil {
		afterHapod(out)
	}
	n.setKubeletExtraArgs("--cgroup-root="+n.cgroupRoot, "--node-ip="+n.IPv4.String())
	start := time.Now()
	c.kubeadm(t, n, append(slices.Clone(c.joinCommand), "--apiserver-advertise-address="+n.IPv4.String(),
		"--ignore-preflight-errors="+strings.Join(preflightIgnored, ","))...)
	c.waitMirrorPod(t, n, c.hapodImage(n), 3*time.Minute)
	t.Logf("%s joined again in %v; VIP on %s", n.name, time.Since(start).Round(100*time.Millisecond), names(c.holders()))
}

// splitCut counts a probe's failures in two: requests cut after they were
// connected (EOF, connection reset: their backend died under them) that
// were still running at since (they take at most the probe's 1 s timeout),
// and every other failure.
func splitCut(r lab.ProbeResult, since time.Time) (cut, other int) {
	for _, s := range r.Samples {
		switch {
		case s.OK:
		case !s.At.Before(since.Add(-time.Second)) && (errors.Is(s.Err, io.EOF) || errors.Is(s.Err, syscall.ECONNRESET)):
			cut++
		default:
			other++
		}
	}
	return cut, other
}

// hapodImage is the image of node n's last hapod command.
func (c *cluster) hapodImage(n *node) string {
	for _, a := range slices.Backward(c.hapodArgs[n]) {
		if v, ok := strings.CutPrefix(a, "--image="); ok {
			return v
		}
	}
	return c.s.image
}

// rejoinAfterKill: `kubeadm reset` without `hapod reset` first SIGKILLs
// hapod (CRI stops pods without a grace period) and leaves the VIP on the
// node while another node takes it too. Re-running `hapod join` there
// removes that stale VIP, saying so, instead of refusing.
func (c *cluster) rejoinAfterKill(t *testing.T) {
	h := c.holder(t)
	p := c.startReadyzProbe(t)
	waitReadyz(t, p)
	h.stopKubelet()
	c.kubeadm(t, h, "reset", "-f")
	if !h.HasAddr(c.vip.Addr()) {
		t.Fatalf("kubeadm reset on %s left no VIP behind: this check's premise (hapod SIGKILLed keeps its address) does not hold", h.name)
	}
	lab.WaitFor(t, 30*time.Second, "another node to take the VIP", func() bool { return len(c.holders()) == 2 })
	t.Logf("after kubeadm reset on %s (hapod SIGKILLed) the VIP is on %s", h.name, names(c.holders()))
	c.rejoin(t, h, func(out string) {
		if h.HasAddr(c.vip.Addr()) {
			t.Errorf("hapod join on %s left the stale VIP: VIP on %s", h.name, names(c.holders()))
		}
		if !strings.Contains(out, "removed the stale VIP") {
			t.Errorf("hapod join on %s did not say it removed the stale VIP", h.name)
		}
	})
	r := p.stop()
	t.Logf("VIP on %s; client from kubeadm reset to the re-join: %s", names(c.holders()), report(r))
}
