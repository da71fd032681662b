package kubeadm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
)

// privateDirs are the host directories a node gets its own copy of (bind
// mounts from its state directory): everything kubeadm, kubelet, etcd and
// containerd write.
var privateDirs = []string{
	"/etc/kubernetes", "/etc/containerd", "/etc/cni/net.d", "/opt/cni",
	"/var/lib/kubelet", "/var/lib/etcd", "/var/lib/containerd", "/var/lib/cni", "/var/lib/hapod",
	"/run/containerd", "/run/kubelet", "/var/log/pods", "/var/log/containers",
}

// nodeSysctls are the global (not per network namespace) sysctls kubelet
// sets at start when they differ from what it wants. Each node gets its own
// file bind-mounted over the /proc/sys entry, holding the host's value, so
// kubelet changes only that file: the tests never change the host's kernel
// settings.
var nodeSysctls = []string{
	"kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory",
	"vm/panic_on_oom", "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// node is one Kubernetes host of the lab: a lab node's network namespace
// plus private mount and UTS namespaces (held by an anchor process), with
// its own containerd and a kubelet supervisor.
type node struct {
	*lab.Node
	// name is the hostname and the Kubernetes node name.
	name string
	// cgroupRoot is kubelet's --cgroup-root: nodes of one machine must not
	// share it (kubelet owns everything below it).
	cgroupRoot string
	// state is the host directory behind the node's private directories.
	state  string
	s      settings
	anchor *lab.Process

	mu sync.Mutex
	// kubeletExtraArgs is what /etc/default/kubelet (KUBELET_EXTRA_ARGS)
	// gives kubelet on a host.
	kubeletExtraArgs []string
	containerd       *daemon
	kubelet          *supervisor
}

// pathEnv is the PATH of commands in a node: the Kubernetes binaries first
// (kubeadm runs `kubelet --version`), then the system's.
func (n *node) pathEnv() string {
	return "PATH=" + n.s.binDir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

// newNode turns a lab node into a Kubernetes host: namespaces, mounts,
// cgroup root, containerd with the images imported. Everything is undone in
// t.Cleanup, by PID. hosts is the /etc/hosts every node gets.
func newNode(t *testing.T, s settings, ln *lab.Node, name, labID, stateDir, hosts string) *node {
	t.Helper()
	n := &node{Node: ln, name: name, cgroupRoot: "/" + cgroupPrefix + labID + "-" + name, state: filepath.Join(stateDir, name), s: s}
	if err := n.prepareFiles(hosts); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	created, err := mountpoints()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	// `ip netns exec` (lab's Start) gives the anchor the node's sysfs;
	// unshare makes private mount and UTS namespaces and execs sleep in
	// place, so the PID is the anchor's.
	n.anchor = ln.Start(t, "unshare", "--mount", "--uts", "--propagation", "private", "sleep", "infinity")
	t.Cleanup(func() {
		n.teardown(t)
		for _, d := range slices.Backward(created) {
			_ = os.Remove(d) // only if empty: another node or test may use it
		}
	})
	lab.WaitFor(t, 10*time.Second, name+"'s anchor in its namespaces", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", n.anchor.Pid()))
		return strings.TrimSpace(string(b)) == "sleep"
	})
	script, err := n.setupScript()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if out, err := n.run(t.Context(), "sh", "-ec", script); err != nil {
		t.Fatalf("%s: setting up the node's mounts: %v\n%s", name, err, out)
	}
	if err := n.makeCgroupRoot(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}

// prepareFiles creates the state directory: one directory per private
// directory, the per-node /etc/hosts and /etc/resolv.conf, the sysctl files
// and containerd's config.
func (n *node) prepareFiles(hosts string) error {
	for _, d := range privateDirs {
		if err := os.MkdirAll(filepath.Join(n.state, d), 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{
		"hosts": hosts,
		// kubeadm resolves the node name; nothing may reach the machine's
		// own resolver from the lab.
		"resolv.conf":                "nameserver 127.0.0.1\n",
		"etc/containerd/config.toml": containerdConfig(n.s.repo),
	}
	for _, k := range nodeSysctls {
		b, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err != nil {
			return err
		}
		files[filepath.Join("sysctl", strings.ReplaceAll(k, "/", "."))] = string(b)
	}
	for name, content := range files {
		p := filepath.Join(n.state, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return os.MkdirAll(filepath.Join(n.state, "logs"), 0o755)
}

// containerdConfig is containerd 1.6's config for a node: cgroupfs (kubelet's
// driver here, no systemd), restrict_oom_score_adj (the tests lack
// CAP_SYS_RESOURCE in the sense containerd checks), the local pause image.
func containerdConfig(repo string) string {
	return `version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "` + repo + `/pause:3.10.2"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
`
}

// mountpoints creates the private directories' mount points on the host
// where missing and returns those it created (removed again, when empty,
// after the test).
func mountpoints() ([]string, error) {
	var created []string
	for _, d := range privateDirs {
		for p := d; p != "/"; p = filepath.Dir(p) {
			if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
				created = append(created, p)
			}
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return created, err
		}
	}
	// Parents were appended after children: order parents first.
	slices.SortFunc(created, func(a, b string) int { return len(a) - len(b) })
	return slices.Compact(created), nil
}

// cgroupMount is one cgroup hierarchy mounted on the host.
type cgroupMount struct {
	dir  string // e.g. /sys/fs/cgroup/cpu
	typ  string // cgroup or cgroup2
	opts string // mount options naming the hierarchy, e.g. "cpu" or "none,name=systemd"
}

// cgroupMounts lists the host's cgroup hierarchies from its mountinfo.
func cgroupMounts() ([]cgroupMount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []cgroupMount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(tail) < 3 || (tail[0] != "cgroup" && tail[0] != "cgroup2") {
			continue
		}
		m := cgroupMount{dir: fields[4], typ: tail[0]}
		if m.typ == "cgroup" {
			var opts []string
			named := true
			for _, o := range strings.Split(tail[2], ",") {
				if o == "rw" || o == "ro" {
					continue
				}
				opts = append(opts, o)
				if !strings.HasPrefix(o, "name=") {
					named = false
				}
			}
			if named {
				// A name-only hierarchy: without "none" the kernel would
				// try to bind every free controller to it.
				opts = append([]string{"none"}, opts...)
			}
			m.opts = strings.Join(opts, ",")
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// setupScript is the shell script that, run inside the node's namespaces,
// sets its hostname, bind-mounts its private directories and files, mounts
// the cgroup hierarchies, and turns on IP forwarding in its network
// namespace (kubeadm's preflight wants it; it is per network namespace).
func (n *node) setupScript() (string, error) {
	cgs, err := cgroupMounts()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "hostname %s\n", n.name)
	for _, d := range privateDirs {
		fmt.Fprintf(&b, "mount --bind %s %s\n", filepath.Join(n.state, d), d)
	}
	// /sys is already the node's own sysfs (`ip netns exec` started the
	// anchor), which has an empty /sys/fs/cgroup.
	b.WriteString("mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup\n")
	for _, c := range cgs {
		fmt.Fprintf(&b, "mkdir -p %s\n", c.dir)
		if c.typ == "cgroup2" {
			fmt.Fprintf(&b, "mount -t cgroup2 cgroup2 %s\n", c.dir)
			continue
		}
		fmt.Fprintf(&b, "mount -t cgroup -o %s cgroup %s\n", c.opts, c.dir)
	}
	fmt.Fprintf(&b, "mount --bind %s /etc/hosts\n", filepath.Join(n.state, "hosts"))
	fmt.Fprintf(&b, "mount --bind %s /etc/resolv.conf\n", filepath.Join(n.state, "resolv.conf"))
	for _, k := range nodeSysctls {
		fmt.Fprintf(&b, "mount --bind %s /proc/sys/%s\n", filepath.Join(n.state, "sysctl", strings.ReplaceAll(k, "/", ".")), k)
	}
	b.WriteString("echo 1 > /proc/sys/net/ipv4/ip_forward\n")
	// A dual-stack node forwards IPv6 too (kubeadm's preflight checks it).
	b.WriteString("echo 1 > /proc/sys/net/ipv6/conf/default/forwarding\n")
	b.WriteString("echo 1 > /proc/sys/net/ipv6/conf/all/forwarding\n")
	return b.String(), nil
}

// makeCgroupRoot creates kubelet's --cgroup-root in every hierarchy
// (kubelet refuses a root that doesn't exist); a cpuset child needs its
// parent's CPUs and memory nodes before tasks can join.
func (n *node) makeCgroupRoot() error {
	cgs, err := cgroupMounts()
	if err != nil {
		return err
	}
	for _, c := range cgs {
		dir := filepath.Join(c.dir, n.cgroupRoot)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if b, err := os.ReadFile(filepath.Join(c.dir, f)); err == nil {
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					return fmt.Errorf("%s: %w", filepath.Join(dir, f), err)
				}
			}
		}
	}
	return nil
}

// command prepares name to run inside all of the node's namespaces.
func (n *node) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(n.anchor.Pid()), "-m", "-n", "-u", "--", name}, args...)...)
	cmd.Env = []string{n.pathEnv(), "HOME=/root", "LANG=C"}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs name in the node to completion and returns its combined output.
func (n *node) run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := n.command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s %s: %w", n.name, name, strings.Join(args, " "), err)
	}
	return string(out), nil
}

// output runs name in the node and returns its standard output alone (the
// error includes standard error).
func (n *node) output(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	var stderr strings.Builder
	cmd := n.command(t.Context(), name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s %s: %w: %s", n.name, name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// must is run that fails the test on error, with the command's output.
func (n *node) must(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := n.run(t.Context(), name, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// hostPath is where the node's path p (inside a private directory) is on
// the host.
func (n *node) hostPath(p string) string { return filepath.Join(n.state, p) }

// daemon is a long-running process in a node (containerd, one kubelet
// run), logging into the node's log directory.
type daemon struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// startDaemon starts name in the node. It gets SIGKILL if the test process
// dies (Pdeathsig); the node's teardown kills it by PID otherwise.
func (n *node) startDaemon(name string, args ...string) (*daemon, error) {
	f, err := os.OpenFile(filepath.Join(n.state, "logs", filepath.Base(name)+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := n.command(context.Background(), name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", n.name, name, err)
	}
	d := &daemon{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(d.done) }()
	return d, nil
}

// kill sends SIGKILL and waits for the exit.
func (d *daemon) kill() {
	_ = d.cmd.Process.Kill()
	<-d.done
}

// logTail is the end of one of the node's daemon logs, for failure reports.
func (n *node) logTail(name string, lines int) string {
	b, err := os.ReadFile(filepath.Join(n.state, "logs", name+".log"))
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// podLogTime is the CRI timestamp of the first line containing what in the
// log of container in the node's static pod kube-system/<pod>-<node>;
// it fails the test when there is none.
func (n *node) podLogTime(t *testing.T, pod, container, what string) time.Time {
	t.Helper()
	logs, _ := filepath.Glob(n.hostPath(fmt.Sprintf("/var/log/pods/kube-system_%s-%s_*/%s/*.log", pod, n.name, container)))
	slices.Sort(logs) // 0.log, 1.log, ...: the first run first
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, what) {
				continue
			}
			stamp, _, _ := strings.Cut(line, " ")
			at, err := time.Parse(time.RFC3339Nano, stamp)
			if err != nil {
				t.Fatalf("%s: %s: %v", n.name, l, err)
			}
			return at
		}
	}
	t.Fatalf("%s: no %q in the logs of %s/%s (%v)", n.name, what, pod, container, logs)
	return time.Time{}
}

// startContainerd starts the node's containerd and imports the image
// archive into its k8s.io namespace (kubelet's).
func (n *node) startContainerd(ctx context.Context) error {
	d, err := n.startDaemon("containerd", "--config", "/etc/containerd/config.toml")
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.containerd = d
	n.mu.Unlock()
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-d.done:
			return fmt.Errorf("%s: containerd exited:\n%s", n.name, n.logTail("containerd", 30))
		default:
		}
		if _, err := n.run(ctx, "ctr", "version"); err == nil {
			break
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%s: containerd does not answer: %w", n.name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := n.run(ctx, "ctr", "-n", "k8s.io", "images", "import", n.s.archive); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}

// supervisor runs kubelet as systemd and kubeadm's 10-kubeadm.conf do on a
// host: once /var/lib/kubelet/config.yaml exists, kubelet with the flags of
// kubeadm-flags.env and KUBELET_EXTRA_ARGS, restarted a second after it
// exits, until stopped.
type supervisor struct {
	n      *node
	quit   chan struct{}
	exited chan struct{}
}

// startKubelet starts the supervisor (systemctl start kubelet).
func (n *node) startKubelet() {
	s := &supervisor{n: n, quit: make(chan struct{}), exited: make(chan struct{})}
	n.mu.Lock()
	n.kubelet = s
	n.mu.Unlock()
	go s.loop()
}

// stopKubelet stops the supervisor and its kubelet (systemctl stop kubelet:
// SIGTERM, as systemd sends first; kubelet exits at once on it).
func (n *node) stopKubelet() {
	n.mu.Lock()
	s := n.kubelet
	n.kubelet = nil
	n.mu.Unlock()
	if s != nil {
		close(s.quit)
		<-s.exited
	}
}

func (s *supervisor) loop() {
	defer close(s.exited)
	for {
		args, err := s.n.kubeletArgs()
		if err == nil {
			d, err := s.n.startDaemon("kubelet", args...)
			if err == nil {
				select {
				case <-d.done:
				case <-s.quit:
					_ = d.cmd.Process.Signal(syscall.SIGTERM)
					select {
					case <-d.done:
					case <-time.After(10 * time.Second):
						d.kill()
					}
					return
				}
			}
		}
		select {
		case <-s.quit:
			return
		case <-time.After(time.Second):
		}
	}
}

// kubeletArgs is kubelet's command line as 10-kubeadm.conf builds it, or an
// error while kubeadm has not written the config yet.
func (n *node) kubeletArgs() ([]string, error) {
	if _, err := os.Stat(n.hostPath("/var/lib/kubelet/config.yaml")); err != nil {
		return nil, err
	}
	args := []string{
		"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
		"--kubeconfig=/etc/kubernetes/kubelet.conf",
		"--config=/var/lib/kubelet/config.yaml",
	}
	env, err := os.ReadFile(n.hostPath("/var/lib/kubelet/kubeadm-flags.env"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, line := range strings.Split(string(env), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "KUBELET_KUBEADM_ARGS="); ok {
			args = append(args, strings.Fields(strings.Trim(v, `"`))...)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return append(args, n.kubeletExtraArgs...), nil
}

// setKubeletExtraArgs sets KUBELET_EXTRA_ARGS for the next kubelet start.
func (n *node) setKubeletExtraArgs(args ...string) {
	n.mu.Lock()
	n.kubeletExtraArgs = args
	n.mu.Unlock()
}

// crash kills the node as a power cut would, seen from the network: its
// kubelet, containerd and every container process die at once (SIGKILL,
// no handover) and its link goes down.
func (n *node) crash(t *testing.T) {
	t.Helper()
	n.killAll(false)
	n.LinkDown(t)
}

// killAll SIGKILLs every process of the node, by PID: the kubelet
// supervisor's kubelet, containerd, and whatever else runs in the node's
// network namespace or below its cgroup root (shims, containers). The
// anchor too when withAnchor.
func (n *node) killAll(withAnchor bool) {
	n.mu.Lock()
	s, d := n.kubelet, n.containerd
	n.kubelet, n.containerd = nil, nil
	n.mu.Unlock()
	if s != nil {
		close(s.quit)
		// Don't wait for a graceful stop: kill first, then reap.
		for _, pid := range n.pids() {
			if pid != n.anchor.Pid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		<-s.exited
	}
	if d != nil {
		d.kill()
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		pids := slices.DeleteFunc(n.pids(), func(p int) bool { return !withAnchor && p == n.anchor.Pid() })
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pids lists the live processes in the node's network namespace or below
// its cgroup root, except this test process.
func (n *node) pids() []int {
	var st syscall.Stat_t
	var nsIno uint64
	if syscall.Stat(n.NetNSPath(), &st) == nil {
		nsIno = st.Ino
	}
	seen := map[int]bool{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var pst syscall.Stat_t
		if nsIno != 0 && syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &pst) == nil && pst.Ino == nsIno && lab.Alive(pid) {
			seen[pid] = true
		}
	}
	if cgs, err := cgroupMounts(); err == nil {
		for _, c := range cgs {
			_ = filepath.WalkDir(filepath.Join(c.dir, n.cgroupRoot), func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
					return nil
				}
				b, _ := os.ReadFile(p)
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() && lab.Alive(pid) {
						seen[pid] = true
					}
				}
				return nil
			})
		}
	}
	out := make([]int, 0, len(seen))
	for pid := range seen {
		out = append(out, pid)
	}
	slices.Sort(out)
	return out
}

// teardown kills everything of the node, by PID, then removes its cgroup
// root. The anchor's death frees the mount namespace and with it every
// mount; lab's cleanup deletes the network namespace afterwards.
func (n *node) teardown(t *testing.T) {
	if t.Failed() {
		for _, name := range []string{"kubelet", "containerd"} {
			t.Logf("%s: last lines of %s's log:\n%s", n.name, name, n.logTail(name, 40))
		}
	}
	n.killAll(true)
	cgs, err := cgroupMounts()
	if err != nil {
		t.Errorf("%s: %v", n.name, err)
		return
	}
	for _, c := range cgs {
		if err := removeCgroupTree(filepath.Join(c.dir, n.cgroupRoot)); err != nil {
			t.Errorf("%s: %v", n.name, err)
		}
	}
}

// removeCgroupTree removes a cgroup directory and its children, deepest
// first; a cgroup whose last task just died may refuse for a moment.
func removeCgroupTree(root string) error {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, d := range slices.Backward(dirs) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := syscall.Rmdir(d)
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("rmdir %s: %w", d, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// cgroupPrefix starts every node's cgroup root: "/hapod-kubeadm-<lab>-<node>".
const cgroupPrefix = "hapod-kubeadm-"

// removeStaleCgroups removes the cgroup roots of nodes whose lab is gone (a
// test binary killed before its cleanup; lab.New has already removed such
// labs' namespaces and processes).
func removeStaleCgroups() error {
	cgs, err := cgroupMounts()
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cgs {
		entries, _ := os.ReadDir(c.dir)
		for _, e := range entries {
			rest, ok := strings.CutPrefix(e.Name(), cgroupPrefix)
			id, _, ok2 := strings.Cut(rest, "-")
			if !ok || !ok2 || !e.IsDir() {
				continue
			}
			if _, err := os.Stat("/run/netns/hlab-" + id + "-hub"); err == nil {
				continue // a live lab
			}
			errs = append(errs, removeCgroupTree(filepath.Join(c.dir, e.Name())))
		}
	}
	return errors.Join(errs...)
}
