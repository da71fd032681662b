package lab

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Namespaces is this lab's namespace names, hub first.
func (l *Lab) Namespaces() []string {
	out := []string{l.Hub}
	for _, n := range l.Hosts() {
		out = append(out, n.NS)
	}
	return out
}

// LinkDown sets the node's own interface administratively down, as a dead
// NIC or `ip link set eth0 down` on the node would. Linux drops the
// interface's IPv6 addresses with it; LinkUp puts the node's own back.
func (n *Node) LinkDown(t T) {
	t.Helper()
	n.mustIP(t, "-n", n.NS, "link", "set", n.Iface, "down")
}

// LinkUp brings the node's interface back up and restores its own addresses
// (not VIPs: those belong to whoever holds them).
func (n *Node) LinkUp(t T) {
	t.Helper()
	n.mustIP(t, "-n", n.NS, "link", "set", n.Iface, "up")
	if err := n.addOwnAddrs(); err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
}

// DeleteLink deletes the node's interface (and its peer in the hub), as a
// driver reload or a NIC unplugged does.
func (n *Node) DeleteLink(t T) {
	t.Helper()
	n.mustIP(t, "-n", n.NS, "link", "del", n.Iface)
}

// CreateLink creates the node's interface again after DeleteLink: same
// name and MAC, a new interface index, plugged into the bridge, up, with
// the node's own addresses (not VIPs), as a NIC plugged back in and
// configured by the host's network setup.
func (n *Node) CreateLink(t T) {
	t.Helper()
	if err := n.createLink(); err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
}

// RestoreAddrs adds the node's own addresses again, after `ip addr flush`
// took them away.
func (n *Node) RestoreAddrs(t T) {
	t.Helper()
	if err := n.addOwnAddrs(); err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
}

// CarrierDown sets the hub side of the node's veth down: the node's
// interface stays administratively up with its addresses but loses carrier
// (NO-CARRIER), like a pulled cable.
func (n *Node) CarrierDown(t T) {
	t.Helper()
	n.mustIP(t, "-n", n.lab.Hub, "link", "set", n.HostVeth, "down")
}

// CarrierUp restores the carrier that CarrierDown removed.
func (n *Node) CarrierUp(t T) {
	t.Helper()
	n.mustIP(t, "-n", n.lab.Hub, "link", "set", n.HostVeth, "up")
}

// Partition detaches the node's veth from the bridge: its link stays up with
// carrier, but no frame reaches anyone (a switch port moved to a dead VLAN).
func (l *Lab) Partition(t T, n *Node) {
	t.Helper()
	n.mustIP(t, "-n", l.Hub, "link", "set", n.HostVeth, "nomaster")
}

// Heal plugs a partitioned node back into the bridge. With STP off the port
// forwards at once.
func (l *Lab) Heal(t T, n *Node) {
	t.Helper()
	n.mustIP(t, "-n", l.Hub, "link", "set", n.HostVeth, "master", l.Bridge)
}

func (n *Node) mustIP(t T, args ...string) {
	t.Helper()
	if err := ipCmd(args...); err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
}

// Command prepares name to run inside the node's namespace through
// `ip netns exec`, which also mounts a matching /sys. ip execs the command
// in place, so the returned Cmd's PID is the command's own.
func (n *Node) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.NS, name}, args...)...)
}

// Run runs name inside the namespace to completion and returns its combined
// output; it fails the test, with the output, when the command fails. Call it
// from the test's goroutine.
func (n *Node) Run(t T, name string, args ...string) string {
	t.Helper()
	out, err := n.Command(t.Context(), name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %s %s: %v\n%s", n.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ipCmd runs ip with args in the test process's namespace and returns its
// output in the error.
func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// addOwnAddrs (re)adds the node's own addresses; replace makes it
// idempotent, which LinkUp relies on (an interface set down loses its IPv6
// addresses).
func (n *Node) addOwnAddrs() error {
	if err := ipCmd("-n", n.NS, "addr", "replace", n.Prefix4().String(), "dev", n.Iface); err != nil {
		return err
	}
	return ipCmd("-n", n.NS, "addr", "replace", n.Prefix6().String(), "dev", n.Iface, "nodad")
}

// WaitFor polls cond every 10 ms until it holds, and fails the test naming
// what it waited for when it doesn't within timeout. The timeout is a
// generous bound against hangs, not a speed requirement.
func WaitFor(t T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
