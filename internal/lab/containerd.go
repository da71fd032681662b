package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Containerd is a throwaway containerd inside a node's network namespace,
// with its own root, state and sockets in the test's temporary directory;
// the lab kills it by PID. Its CRI plugin answers kubelet's questions, and
// the native snapshotter leaves no overlay mounts behind.
type Containerd struct {
	// Socket is its gRPC (and CRI) socket, a path.
	Socket string
	node   *Node
	proc   *Process
}

// StartContainerd starts a containerd on the node and waits until it
// answers.
func (n *Node) StartContainerd(t T) *Containerd {
	t.Helper()
	dir := t.TempDir()
	c := &Containerd{Socket: filepath.Join(dir, "containerd.sock"), node: n}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
# /opt/containerd and the snapshotters that need special filesystems stay off.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Socket, c.Socket+".ttrpc")
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	c.proc = n.StartNetOnly(t, "containerd", "--config", path)
	WaitFor(t, 30*time.Second, "containerd answers", func() bool {
		_, err := c.Ctr(context.Background(), "version")
		return err == nil
	})
	return c
}

// Ctr runs ctr against this containerd, in the node's network namespace and
// containerd's namespace k8s.io (the one kubelet uses), and returns its
// combined output.
func (c *Containerd) Ctr(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + c.node.NetNSPath(), "ctr", "--address", c.Socket, "--namespace", "k8s.io"}, args...)...)
	cmd.Env = append(os.Environ(), "CONTAINERD_SNAPSHOTTER=native")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Log is containerd's own log so far.
func (c *Containerd) Log() string { return c.proc.Log() }
