// Package lab builds a small layer-2 network out of Linux network namespaces
// for hapod's end-to-end tests: N node namespaces and one client namespace,
// each with one veth interface ("eth0") plugged into one bridge, with IPv4
// and IPv6 addresses taken only from 198.18.0.0/15 and 2001:db8::/32.
//
// The bridge lives in its own "hub" namespace rather than in the host's, so
// the host's firewall (br_netfilter and a FORWARD policy of DROP, as Docker
// installs) can never filter lab traffic, nothing of the lab is visible in the
// host's link list, and deleting the hub namespace removes the bridge and
// every hub-side veth at once.
//
// Everything needs root. New skips the test when the process is not root or
// when the ip command is missing, so `go test ./...` stays green elsewhere.
//
// The lab takes a T, which a *testing.T satisfies; a program (the demo, run
// with `go run`) passes a Script instead, whose Close and signal handler run
// the same cleanups.
//
// Processes started in the lab (Node.Start, Node.StartKeepalived) are killed
// by PID and waited for in t.Cleanup, before the namespaces are deleted.
//
// Sockets in a node from this Go process (Node.Dial, Node.Listen,
// Node.ServeTCP, the Probe): a network namespace belongs to a thread, and a
// socket stays in the namespace it was created in. A fresh goroutine locks
// its OS thread (runtime.LockOSThread), setns(2)es it into the node's
// namespace with github.com/vishvananda/netns, creates the socket, switches
// back and unlocks. If switching back fails it exits still locked, and the Go
// runtime kills that thread instead of reusing it. Reads and writes then work
// from any goroutine. No child process is needed, so a probe can connect
// every 10 ms.
package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
)

// ErrUnsupported is returned by the namespace operations on systems other
// than Linux.
var ErrUnsupported = errors.New("lab: network namespaces need Linux")

// Lab is one isolated layer-2 segment: a bridge, the hapod nodes and a client.
type Lab struct {
	// ID is the random suffix shared by every name of this lab.
	ID string
	// Hub is the network namespace that holds the bridge and the hub side of
	// every veth pair.
	Hub string
	// Bridge is the bridge's name inside Hub.
	Bridge string
	// Nodes are the hapod (or keepalived) hosts, in creation order.
	Nodes []*Node
	// Client is an extra host used to probe the VIP from outside the nodes.
	Client *Node
	// Prefix4 is the lab's IPv4 subnet, a /24 inside 198.18.0.0/15.
	Prefix4 netip.Prefix
	// Prefix6 is the lab's IPv6 subnet, a /64 inside 2001:db8::/32.
	Prefix6 netip.Prefix
}

// Node is one host of the lab: a network namespace with one interface.
type Node struct {
	// Name is the node's short name ("node0", "node1", ..., "client"); the
	// TCP servers of ServeTCP greet with it.
	Name string
	// NS is the network namespace's name (a file in /run/netns).
	NS string
	// Iface is the interface's name inside NS.
	Iface string
	// HostVeth is the peer of Iface, plugged into the bridge; it lives in the
	// lab's Hub namespace, not in the host's.
	HostVeth string
	// IPv4 is the node's own address in Prefix4.
	IPv4 netip.Addr
	// IPv6 is the node's own address in Prefix6.
	IPv6 netip.Addr
	// MAC is Iface's hardware address (locally administered, fixed at creation).
	MAC net.HardwareAddr

	lab *Lab
}

// NetNSPath is the node's namespace file, for `nsenter --net=PATH` (podman
// needs nsenter: `ip netns exec` remounts /sys and hides /sys/fs/cgroup).
func (n *Node) NetNSPath() string { return filepath.Join("/run/netns", n.NS) }

// Prefix4 is the node's IPv4 address with the lab's prefix length.
func (n *Node) Prefix4() netip.Prefix {
	return netip.PrefixFrom(n.IPv4, n.lab.Prefix4.Bits())
}

// Prefix6 is the node's IPv6 address with the lab's prefix length.
func (n *Node) Prefix6() netip.Prefix {
	return netip.PrefixFrom(n.IPv6, n.lab.Prefix6.Bits())
}

// Addr is the node's own address of the family of like: IPv6 when like is an
// IPv6 address, IPv4 otherwise. Tests written once for both families use it.
func (n *Node) Addr(like netip.Addr) netip.Addr {
	if like.Is6() && !like.Is4In6() {
		return n.IPv6
	}
	return n.IPv4
}

// Host addresses inside the lab prefixes: nodes count up from nodeBase, VIPs
// count up from vipBase, the client sits at clientHost. The ranges can't
// overlap for any node count New accepts.
const (
	nodeBase   = 1
	vipBase    = 200
	clientHost = 254
	maxNodes   = 99
)

// The lab's address ranges: every prefix a lab uses lies inside them.
var (
	labRange4 = netip.MustParsePrefix("198.18.0.0/15")
	labRange6 = netip.MustParsePrefix("2001:db8::/32")
)

// Options shape a lab beyond its node count (NewWith).
type Options struct {
	// Nodes is the number of nodes besides the client, 1 to 99.
	Nodes int
	// Prefix4 and Prefix6, when valid, are the lab's subnets instead of
	// random ones: a /24 inside 198.18.0.0/15 and a /64 inside
	// 2001:db8::/32. For tests whose expected bytes carry addresses, such
	// as a pinned capture. Labs with one prefix never meet: each has its
	// own bridge.
	Prefix4, Prefix6 netip.Prefix
}

// check enforces the lab's address rules on o.
func (o Options) check() error {
	if o.Nodes < 1 || o.Nodes > maxNodes {
		return fmt.Errorf("%d nodes, want 1..%d", o.Nodes, maxNodes)
	}
	if p := o.Prefix4; p.IsValid() && (p.Bits() != 24 || !p.Addr().Is4() || !labRange4.Contains(p.Addr())) {
		return fmt.Errorf("prefix %s: want a /24 inside %s", p, labRange4)
	}
	if p := o.Prefix6; p.IsValid() && (p.Bits() != 64 || !p.Addr().Is6() || !labRange6.Contains(p.Addr())) {
		return fmt.Errorf("prefix %s: want a /64 inside %s", p, labRange6)
	}
	return nil
}

// VIP4 is a free IPv4 address of the lab prefix for a virtual IP (the n-th;
// n from 0 to 53).
func (l *Lab) VIP4(n int) netip.Addr { return hostAddr(l.Prefix4, vipBase+n) }

// VIP6 is a free IPv6 address of the lab prefix for a virtual IP (the n-th).
func (l *Lab) VIP6(n int) netip.Addr { return hostAddr(l.Prefix6, vipBase+n) }

// VIP4Prefix is VIP4(n) with the lab's prefix length, as a VRRP speaker
// configures it.
func (l *Lab) VIP4Prefix(n int) netip.Prefix {
	return netip.PrefixFrom(l.VIP4(n), l.Prefix4.Bits())
}

// VIP6Prefix is VIP6(n) with the lab's prefix length.
func (l *Lab) VIP6Prefix(n int) netip.Prefix {
	return netip.PrefixFrom(l.VIP6(n), l.Prefix6.Bits())
}

// Hosts is every host of the lab: the nodes, then the client.
func (l *Lab) Hosts() []*Node {
	return append(append([]*Node(nil), l.Nodes...), l.Client)
}

// Holders is the nodes (client included) whose interface holds a. A healthy
// VRRP group has exactly one.
func (l *Lab) Holders(a netip.Addr) []*Node {
	var out []*Node
	for _, n := range l.Hosts() {
		if n.HasAddr(a) {
			out = append(out, n)
		}
	}
	return out
}

// hostAddr sets the low bits of p's address to host (host < 256 fits the
// last byte, which is all the lab needs).
func hostAddr(p netip.Prefix, host int) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	b[len(b)-1] = byte(host)
	a, _ := netip.AddrFromSlice(b)
	return a
}
