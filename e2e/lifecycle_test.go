package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/manifest"
)

// joined is a cluster whose nodes run exactly what `hapod join` wrote into
// each node's manifest directory (as kubelet would), from the same join
// command on every node and without --interface.
type joined struct {
	*cluster
	join []string // `hapod join` and its flags, without --manifest-dir
	dirs []string // each node's manifest directory
}

func newJoinedCluster(t *testing.T, ipv6 bool) *joined {
	t.Helper()
	l := lab.New(t, 3)
	j := &joined{cluster: &cluster{t: t, lab: l, vip: l.VIP4Prefix(0)}}
	if ipv6 {
		j.vip = l.VIP6Prefix(0)
	}
	// The test binary is not a release build: it needs --image.
	j.join = []string{"join", "--vip=" + j.vip.String(), fmt.Sprintf("--port=%d", frontendPort), "--image=example.test/hapod:e2e", "--health-check=tcp",
		"--health-interval=500ms", "--health-timeout=400ms", "--health-rise=2", "--health-fall=2"}
	for _, n := range l.Nodes {
		a := netip.AddrPortFrom(n.Addr(j.vip.Addr()), backendPort)
		n.ServeTCP(t, a)
		j.join = append(j.join, "--backend="+a.String())
	}
	for i, n := range l.Nodes {
		j.dirs = append(j.dirs, filepath.Join(t.TempDir(), "manifests"))
		if out, err := j.hapod(i, j.join...); err != nil {
			t.Fatalf("hapod join on %s: %v\n%s", n.Name, err, out)
		}
		j.args = append(j.args, append([]string{hapodBin}, j.manifestArgs(i)...))
		j.procs = append(j.procs, nil)
	}
	for i := range l.Nodes { // together, as newCluster does
		j.start(i)
	}
	return j
}

// hapod runs the hapod command on node i with its --manifest-dir, and
// returns its combined output.
func (j *joined) hapod(i int, args ...string) (string, error) {
	args = append(append([]string{}, args...), "--manifest-dir="+j.dirs[i])
	out, err := j.lab.Nodes[i].Command(j.t.Context(), hapodBin, args...).CombinedOutput()
	return string(out), err
}

// manifestArgs is the args of the pod in node i's manifest.
func (j *joined) manifestArgs(i int) []string {
	j.t.Helper()
	data, err := os.ReadFile(filepath.Join(j.dirs[i], manifest.FileName))
	if err != nil {
		j.t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(data, &pod); err != nil {
		j.t.Fatal(err)
	}
	return pod.Spec.Containers[0].Args
}

// probe starts a client connecting to VIP:port every 10 ms, each connect
// given timeout.
func (j *joined) probe(timeout time.Duration) *lab.Probe {
	p, err := lab.StartProbeConfig(context.Background(), j.lab.Client, lab.ProbeConfig{
		Target: netip.AddrPortFrom(j.vip.Addr(), frontendPort), Interval: 10 * time.Millisecond, Timeout: timeout})
	if err != nil {
		j.t.Fatal(err)
	}
	return p
}

// patientProbe is for tests where the VIP must not move at all: a VIP
// removed stays removed (nothing re-adds it), while a connect a loaded
// machine delays by a few hundred milliseconds is no failure.
const patientProbe = time.Second

// Defect 5: on the node holding the VIP the route to it goes over lo, and
// `hapod join` refused without --interface. The README's upgrade procedure
// (same flags, --image NEW --force) and a plain re-run must work there, and
// write what the node got before it held the VIP, leaving the VIP alone.
func TestJoinOnHolder(t *testing.T) {
	j := newJoinedCluster(t, false)
	holder := j.stableOneHolder(500 * time.Millisecond)
	i := j.index(holder)
	j.reach(3 * time.Second)
	path := filepath.Join(j.dirs[i], manifest.FileName)
	before, _ := os.ReadFile(path)
	p := j.probe(patientProbe)

	out, err := j.hapod(i, j.join...)
	if err != nil || !strings.Contains(out, "hapod: unchanged "+path) {
		t.Fatalf("re-run of the same join on holder %s: %v\n%s", holder.Name, err, out)
	}
	out, err = j.hapod(i, append(j.join, "--image=example.test/hapod:new", "--force")...)
	if err != nil || !strings.Contains(out, "hapod: updated "+path) {
		t.Fatalf("upgrade on holder %s (same flags, --image NEW --force): %v\n%s", holder.Name, err, out)
	}
	after, _ := os.ReadFile(path)
	if d := strings.TrimSpace(manifest.Diff(string(before), string(after))); !strings.HasSuffix(d, "+    image: example.test/hapod:new") || strings.Count(d, "\n") != 1 {
		t.Errorf("the upgrade changed more than the image:\n%s", d)
	}
	time.Sleep(200 * time.Millisecond)
	res := p.Stop()
	t.Logf("join on holder %s: unchanged, then updated with --image --force; client: %d of %d connects failed", holder.Name, res.Failures, res.Attempts)
	if res.Failures > 0 {
		t.Errorf("clients failed during join on the holder:\n%s", res)
	}
	if h := j.holders(); len(h) != 1 || h[0] != holder {
		t.Errorf("holders after join on the holder: %v, want %s", names(h), holder.Name)
	}
}

// Defect 2: a second `hapod run` for the same VIP on the holder (a copy of
// the manifest, a debug run) removed the live VIP as "stale" before failing
// to bind its ports. It must exit non-zero with one line naming the running
// instance, and leave the VIP and the clients alone.
func TestSecondRunLeavesVIPAlone(t *testing.T) {
	j := newJoinedCluster(t, false)
	holder := j.stableOneHolder(500 * time.Millisecond)
	i := j.index(holder)
	j.reach(3 * time.Second)
	p := j.probe(patientProbe)
	time.Sleep(100 * time.Millisecond)

	second := holder.Start(t, hapodBin, j.args[i][1:]...)
	err := second.Wait(10 * time.Second)
	if errors.Is(err, lab.ErrWaitTimeout) || err == nil {
		t.Fatalf("second hapod run on %s: %v, want a non-zero exit", holder.Name, err)
	}
	log := strings.TrimSpace(second.Log())
	want := fmt.Sprintf("hapod: hapod (pid %d) already runs for VIP %s on this host", j.procs[i].Pid(), j.vip.Addr())
	if strings.Count(log, "\n") != 0 || !strings.HasPrefix(log, want) {
		t.Errorf("second run said:\n%s\nwant one line starting %q", log, want)
	}
	if h := j.stableOneHolder(time.Second); h != holder {
		t.Errorf("VIP moved from %s to %s", holder.Name, h.Name)
	}
	res := p.Stop()
	t.Logf("second hapod run on holder %s: %q; client: %d of %d connects failed", holder.Name, log, res.Failures, res.Attempts)
	if res.Failures > 0 {
		t.Errorf("clients failed while the second instance ran:\n%s", res)
	}
	if _, _, err := j.status(i, "/healthz"); err != nil {
		t.Errorf("the first instance's status server: %v", err)
	}
}

// Defect 4, the graceful half: `hapod reset` on the holder, the step before
// `kubeadm reset` (which SIGKILLs hapod), removes the manifest, has the
// running hapod hand the VIP over and exit, and says so; run again it has
// nothing to do.
// handedOver waits for a node other than old to hold the VIP alone, checks
// that old gave it up, lets the probe run 300 ms more and stops it. It
// returns the new holder, the probe's result and the client outage that
// began at or after start (zero when there was none).
func (j *joined) handedOver(old *lab.Node, p *lab.Probe, start time.Time) (*lab.Node, lab.ProbeResult, time.Duration) {
	j.t.Helper()
	next, _ := j.waitOneHolder(3*time.Second, old)
	if old.HasAddr(j.vip.Addr()) {
		j.t.Errorf("%s still has the VIP", old.Name)
	}
	time.Sleep(300 * time.Millisecond)
	res := p.Stop()
	var outage time.Duration
	if o, ok := res.OutageAt(start); ok {
		outage = o.Duration
	}
	return next, res, outage
}

func TestResetHandsOver(t *testing.T) {
	j := newJoinedCluster(t, false)
	holder := j.stableOneHolder(500 * time.Millisecond)
	i := j.index(holder)
	j.reach(3 * time.Second)
	p := j.probe(lab.DefaultProbeTimeout) // resolves the handover's outage
	time.Sleep(200 * time.Millisecond)

	start := time.Now()
	out, err := j.hapod(i, "reset")
	took := time.Since(start)
	if err != nil {
		t.Fatalf("hapod reset on holder %s: %v\n%s", holder.Name, err, out)
	}
	path := filepath.Join(j.dirs[i], manifest.FileName)
	for _, want := range []string{
		"hapod: removed " + path + ": kubelet will not start hapod again\n",
		fmt.Sprintf("hapod: hapod (pid %d) for VIP %s (active) handed the VIP over to ", j.procs[i].Pid(), j.vip.Addr()),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("reset output lacks %q:\n%s", want, out)
		}
	}
	if err := j.procs[i].Wait(time.Second); err != nil {
		t.Errorf("hapod on %s after reset: %v, want exited 0", holder.Name, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there after reset: %v", path, err)
	}
	next, res, outage := j.handedOver(holder, p, start)
	t.Logf("hapod reset on holder %s took %v; %s took over; client outage %v (%d of %d connects failed)\n%s",
		holder.Name, took.Round(time.Millisecond), next.Name, outage, res.Failures, res.Attempts, strings.TrimSpace(out))
	// A hard failover costs 300 ms or more here (the master-down timer:
	// three 100 ms adverts and the skew); the handover costs nothing, but
	// on the loaded machine one connect may take longer than the probe's
	// 50 ms timeout and read as an outage of up to ~75 ms.
	if outage > 3*gracefulGoal {
		t.Errorf("client outage %v: not a graceful handover (goal %v)\n%s", outage, gracefulGoal, res)
	}

	out, err = j.hapod(i, "reset")
	if err != nil || !strings.HasPrefix(out, "hapod: nothing to do") {
		t.Errorf("second reset: %v\n%s", err, out)
	}

	// A backup leaves without a word on the wire; the holder keeps the VIP.
	for k, n := range j.lab.Nodes {
		if n == holder || n == next {
			continue
		}
		out, err := j.hapod(k, "reset")
		if err != nil || !strings.Contains(out, "(backup) was a backup and stopped") {
			t.Errorf("reset on backup %s: %v\n%s", n.Name, err, out)
		}
		if err := j.procs[k].Wait(time.Second); err != nil {
			t.Errorf("hapod on %s after reset: %v, want exited 0", n.Name, err)
		}
	}
	if h := j.stableOneHolder(300 * time.Millisecond); h != next {
		t.Errorf("holder after the backup's reset: %s, want %s", h.Name, next.Name)
	}
}

// Defect 4, the hard half: a holder killed with SIGKILL (as kubeadm reset
// stops pods) leaves its VIP on the interface. `hapod join` there removed
// nothing and refused; now it removes the stale VIP, saying so, and so does
// `hapod reset` when the manifest is gone too. IPv6 too: there the stale
// VIP is told from the node's own addresses by its preferred lifetime 0.
func TestStaleVIPAfterSIGKILL(t *testing.T) {
	for _, ipv6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "IPv4", true: "IPv6"}[ipv6], func(t *testing.T) { staleVIPAfterSIGKILL(t, ipv6) })
	}
}

func staleVIPAfterSIGKILL(t *testing.T, ipv6 bool) {
	j := newJoinedCluster(t, ipv6)
	first := j.stableOneHolder(500 * time.Millisecond)
	i := j.index(first)
	if err := j.kill(i, syscall.SIGKILL); err == nil {
		t.Fatal("SIGKILLed hapod exited 0")
	}
	second, _ := j.waitOneHolder(5*time.Second, first)
	if !first.HasAddr(j.vip.Addr()) {
		t.Fatalf("%s lost the VIP with SIGKILL; nothing to test", first.Name)
	}
	out, err := j.hapod(i, j.join...)
	if err != nil {
		t.Fatalf("hapod join after SIGKILL on %s: %v\n%s", first.Name, err, out)
	}
	path := filepath.Join(j.dirs[i], manifest.FileName)
	for _, want := range []string{
		fmt.Sprintf("hapod: removed the stale VIP %s from eth0: no hapod holds it", j.vip),
		"hapod: unchanged " + path,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("join after SIGKILL: output lacks %q:\n%s", want, out)
		}
	}
	if first.HasAddr(j.vip.Addr()) {
		t.Errorf("%s still has the stale VIP after join", first.Name)
	}
	j.start(i)
	t.Logf("SIGKILL of %s, %s took over; hapod join on %s:\n%s", first.Name, second.Name, first.Name, strings.TrimSpace(out))

	// kubeadm reset on the new holder without `hapod reset` first: the
	// pod is SIGKILLed and every manifest deleted.
	k := j.index(second)
	if err := j.kill(k, syscall.SIGKILL); err == nil {
		t.Fatal("SIGKILLed hapod exited 0")
	}
	os.Remove(filepath.Join(j.dirs[k], manifest.FileName))
	third, _ := j.waitOneHolder(5*time.Second, second)
	out, err = j.hapod(k, "reset", "--vip="+j.vip.String())
	want := fmt.Sprintf("hapod: removed the stale VIP %s from eth0: no hapod was running to release it", j.vip)
	if err != nil || strings.TrimSpace(out) != want {
		t.Errorf("hapod reset --vip after SIGKILL on %s: %v\n%s\nwant %q", second.Name, err, out, want)
	}
	if second.HasAddr(j.vip.Addr()) {
		t.Errorf("%s still has the stale VIP after reset", second.Name)
	}
	// The two left may tie for a moment before the higher address wins
	// (RFC 9568): one holder, not necessarily the first seen.
	j.waitOneHolder(3 * time.Second)
	t.Logf("SIGKILL of %s, %s took over; hapod reset --vip on %s: %s", second.Name, third.Name, second.Name, strings.TrimSpace(out))
}

// With kubelet running, removing hapod.yaml makes kubelet stop the pod
// (SIGTERM) while `hapod reset` asks it to hand over: whichever comes
// first, the VIP moves gracefully, reset exits 0 and says what happened.
func TestResetWhileKubeletStopsHapod(t *testing.T) {
	j := newJoinedCluster(t, false)
	holder := j.stableOneHolder(500 * time.Millisecond)
	i := j.index(holder)
	j.reach(3 * time.Second)
	p := j.probe(lab.DefaultProbeTimeout)
	time.Sleep(200 * time.Millisecond)

	start := time.Now()
	if err := j.procs[i].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	out, err := j.hapod(i, "reset")
	if err != nil {
		t.Fatalf("hapod reset on %s while it stops: %v\n%s", holder.Name, err, out)
	}
	said := false
	for _, what := range []string{"handed the VIP over to", "was stopping already", "had exited already"} {
		said = said || strings.Contains(out, what)
	}
	if !said || strings.Contains(out, "was a backup") {
		t.Errorf("reset does not say what became of the running holder:\n%s", out)
	}
	if err := j.procs[i].Wait(time.Second); err != nil {
		t.Errorf("hapod on %s: %v, want exited 0", holder.Name, err)
	}
	next, res, outage := j.handedOver(holder, p, start)
	t.Logf("SIGTERM and hapod reset on holder %s together: %s took over; client outage %v (%d of %d connects failed)\n%s",
		holder.Name, next.Name, outage, res.Failures, res.Attempts, strings.TrimSpace(out))
	if outage > 3*gracefulGoal { // see TestResetHandsOver
		t.Errorf("client outage %v: not a graceful handover (goal %v)\n%s", outage, gracefulGoal, res)
	}
}
