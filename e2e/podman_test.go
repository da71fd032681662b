package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
)

// TestPodmanKubePlay builds the image with `make image`, generates the
// manifest with `hapod manifest` inside a node, and runs it with `podman
// kube play` in that node's namespace: the pod must hold the VIP and proxy
// the client to a backend, with only the capabilities the manifest grants.
func TestPodmanKubePlay(t *testing.T) {
	lab.Tool(t, "podman", "podman")
	lab.Tool(t, "runc", "runc") // podman's runtime here (crun fails: see DESIGN.md)
	l := lab.New(t, 1)
	node := l.Nodes[0]
	image := "localhost/hapod:e2e-" + l.ID

	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	if out, err := exec.Command("make", "-C", root, "image", "IMAGE="+image).CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("podman", "rmi", "-f", image).Run() })

	backend := netip.AddrPortFrom(node.IPv4, backendPort)
	node.ServeTCP(t, backend)
	vip := l.VIP4Prefix(0)
	podYAML := node.Run(t, hapodBin, "manifest", "--vip="+vip.String(), "--interface="+node.Iface,
		fmt.Sprintf("--port=%d", frontendPort), "--image="+image, "--backend="+backend.String(), "--health-check=tcp",
		// Its hostPath mounts (kubelet.conf, the state directory) would
		// be created on this machine: no kubelet here to discover with.
		"--discover=false")
	path := filepath.Join(t.TempDir(), "hapod.yaml")
	if err := os.WriteFile(path, []byte(podYAML), 0o600); err != nil {
		t.Fatal(err)
	}

	podman := func(ctx context.Context, args ...string) *exec.Cmd {
		// nsenter, not `ip netns exec`: the latter remounts /sys and hides
		// the cgroup tree podman needs.
		return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + node.NetNSPath(), "podman"}, args...)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := podman(ctx, "kube", "play", path).CombinedOutput(); err != nil {
		t.Fatalf("podman kube play: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := podman(ctx, "kube", "down", path).CombinedOutput(); err != nil {
			t.Logf("podman kube down: %v\n%s", err, out)
		}
	})

	t.Cleanup(func() {
		if t.Failed() {
			out, _ := podman(context.Background(), "logs", "hapod-hapod").CombinedOutput()
			ps, _ := podman(context.Background(), "ps", "-a").CombinedOutput()
			t.Logf("podman ps -a:\n%s\ncontainer log:\n%s", ps, out)
		}
	})
	lab.WaitFor(t, 20*time.Second, "the pod holds the VIP", func() bool { return node.HasAddr(vip.Addr()) })
	reachCtx, cancelReach := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelReach()
	var served string
	var err error
	for reachCtx.Err() == nil {
		if served, err = l.Client.WhoServes(reachCtx, netip.AddrPortFrom(vip.Addr(), frontendPort)); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if served != node.Name {
		t.Fatalf("client through the pod's proxy: %q, %v", served, err)
	}

	// The container runs with exactly the manifest's security settings.
	out, err := podman(ctx, "inspect", "--format",
		"{{.EffectiveCaps}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.Privileged}} {{.State.Running}}",
		"hapod-hapod").CombinedOutput()
	if err != nil {
		t.Fatalf("podman inspect: %v\n%s", err, out)
	}
	got := strings.TrimSpace(string(out))
	// Exactly NET_ADMIN and NET_RAW: the manifest drops ALL others.
	if want := "[CAP_NET_ADMIN CAP_NET_RAW] true false true"; got != want {
		t.Errorf("container capabilities, read-only root, privileged, running = %q, want %q", got, want)
	}
	logs, _ := podman(ctx, "logs", "hapod-hapod").CombinedOutput()
	t.Logf("pod served the client through the VIP; container: %s\n%s", got, lastLines(string(logs), 5))

	// The instance lock is per network namespace: a `hapod run` on the
	// host (a debug run, a second manifest) sees the pod's and leaves the
	// VIP alone, though the pod has its own PID and mount namespaces.
	second, err := node.Command(ctx, hapodBin, runArgs(hapodConfig(vip, node, backend))...).CombinedOutput()
	if err == nil || !strings.Contains(string(second), "already runs for VIP "+vip.Addr().String()+" on this host") {
		t.Errorf("hapod run on the host next to the pod: %v\n%s", err, second)
	}
	if !node.HasAddr(vip.Addr()) {
		t.Error("the pod lost the VIP to a second hapod run on the host")
	}
	t.Logf("hapod run on the host next to the pod: %s", strings.TrimSpace(string(second)))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
