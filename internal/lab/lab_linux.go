package lab

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// namePrefix starts every namespace of every lab, so a leftover is easy to
// recognise in `ip netns list`.
const namePrefix = "hlab-"

// New builds a lab with the given number of nodes plus one client and tears
// it down in t.Cleanup, also when the test fails: processes in its
// namespaces are killed, then the namespaces (the hub's takes the bridge
// with it) are deleted. Labs left behind by a killed test (whose owner
// process is gone) are torn down first. Without root or `ip` it ends the
// test with Unavailable: a skip, or a failure under CI.
func New(t T, nodes int) *Lab {
	t.Helper()
	return NewWith(t, Options{Nodes: nodes})
}

// NewWith is New with the options o.
func NewWith(t T, o Options) *Lab {
	t.Helper()
	RequireRoot(t)
	Tool(t, "ip", "iproute2")
	if err := o.check(); err != nil {
		t.Fatalf("lab: %v", err)
	}
	if err := removeStaleLabs(); err != nil {
		t.Logf("lab: %v", err)
	}
	var l *Lab
	for {
		var err error
		if l, err = newLab(o); err != nil {
			t.Fatalf("lab: %v", err)
		}
		// Another test may hold this random ID (2^24 of them): draw again.
		if _, err := os.Stat(l.hubPath()); errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	if err := claim(l.ID); err != nil {
		t.Fatalf("lab %s: %v", l.ID, err)
	}
	t.Cleanup(func() {
		if err := l.teardown(); err != nil {
			t.Errorf("lab %s teardown: %v", l.ID, err)
		}
		release(l.ID)
	})
	if err := l.build(); err != nil {
		t.Fatalf("lab %s: %v", l.ID, err)
	}
	t.Logf("lab %s: hub %s, %d nodes, %s, %s", l.ID, l.Hub, o.Nodes, l.Prefix4, l.Prefix6)
	return l
}

// newLab picks the random names and, unless o fixes them, prefixes;
// nothing is created yet.
func newLab(o Options) (*Lab, error) {
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%02x%02x%02x", r[0], r[1], r[2])
	// 198.18.0.0/15 holds 512 /24s; labs have separate bridges, so a shared
	// prefix would still work, a distinct one only makes captures readable.
	n := binary.BigEndian.Uint16(r[:2])
	p4 := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18 + byte(n>>8&1), byte(n), 0}), 24)
	var a6 [16]byte
	copy(a6[:], []byte{0x20, 0x01, 0x0d, 0xb8, r[1], r[2], 0, 0})
	p6 := netip.PrefixFrom(netip.AddrFrom16(a6), 64)
	if o.Prefix4.IsValid() {
		p4 = o.Prefix4.Masked()
	}
	if o.Prefix6.IsValid() {
		p6 = o.Prefix6.Masked()
	}
	l := &Lab{
		ID:      id,
		Hub:     namePrefix + id + "-hub",
		Bridge:  "br-" + id,
		Prefix4: p4,
		Prefix6: p6,
	}
	mk := func(name, short string, idx, host int) *Node {
		return &Node{
			Name:     name,
			NS:       namePrefix + id + "-" + short,
			Iface:    "eth0",
			HostVeth: "v" + id + short,
			IPv4:     hostAddr(p4, host),
			IPv6:     hostAddr(p6, host),
			MAC:      net.HardwareAddr{0x02, r[0], r[1], r[2], 0, byte(idx)},
			lab:      l,
		}
	}
	for i := range o.Nodes {
		l.Nodes = append(l.Nodes, mk(fmt.Sprintf("node%d", i), fmt.Sprintf("n%d", i), i+1, nodeBase+i))
	}
	l.Client = mk("client", "cl", 0xfe, clientHost)
	return l, nil
}

// build creates the hub with its bridge, then every host.
func (l *Lab) build() error {
	if err := ipCmd("netns", "add", l.Hub); err != nil {
		return err
	}
	// No IPv6 on the hub: the bridge and hub-side veths would otherwise
	// send router solicitations and MLD reports into the lab.
	if err := setSysctls(l.hubPath(), map[string]string{
		"net/ipv6/conf/all/disable_ipv6":     "1",
		"net/ipv6/conf/default/disable_ipv6": "1",
	}); err != nil {
		return fmt.Errorf("hub sysctls: %w", err)
	}
	// mcast_snooping 0: otherwise the bridge filters VRRP adverts to ff02::12.
	if err := ipCmd("-n", l.Hub, "link", "add", l.Bridge, "type", "bridge",
		"mcast_snooping", "0", "stp_state", "0", "forward_delay", "0"); err != nil {
		return err
	}
	if err := ipCmd("-n", l.Hub, "link", "set", l.Bridge, "up"); err != nil {
		return err
	}
	for _, n := range l.Hosts() {
		if err := n.build(); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
	}
	return nil
}

func (l *Lab) hubPath() string { return filepath.Join("/run/netns", l.Hub) }

// build creates the node's namespace and its veth pair, then configures
// addresses.
func (n *Node) build() error {
	if err := ipCmd("netns", "add", n.NS); err != nil {
		return err
	}
	// "default" before the veth exists, so eth0 inherits it; "all" because
	// the kernel uses max(all, dev) for rp_filter and OR for accept_dad.
	// ip_nonlocal_bind stays 0 so tests prove that the proxy uses IP_FREEBIND.
	if err := setSysctls(n.NetNSPath(), map[string]string{
		"net/ipv4/conf/all/rp_filter":      "0",
		"net/ipv4/conf/default/rp_filter":  "0",
		"net/ipv6/conf/all/accept_dad":     "0",
		"net/ipv6/conf/default/accept_dad": "0",
		"net/ipv4/ip_nonlocal_bind":        "0",
		"net/ipv6/ip_nonlocal_bind":        "0",
	}); err != nil {
		return fmt.Errorf("sysctls: %w", err)
	}
	if err := ipCmd("-n", n.NS, "link", "set", "lo", "up"); err != nil {
		return err
	}
	return n.createLink()
}

// createLink creates the node's veth pair, plugs it into the bridge, sets
// both ends up and adds the node's own addresses.
func (n *Node) createLink() error {
	l := n.lab
	steps := [][]string{
		{"-n", l.Hub, "link", "add", n.HostVeth, "type", "veth",
			"peer", "name", n.Iface, "netns", n.NS, "address", n.MAC.String()},
		{"-n", l.Hub, "link", "set", n.HostVeth, "master", l.Bridge},
		{"-n", l.Hub, "link", "set", n.HostVeth, "up"},
		{"-n", n.NS, "link", "set", n.Iface, "up"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return err
		}
	}
	return n.addOwnAddrs()
}

// teardown kills what runs in the lab's namespaces and deletes them. It
// tolerates a half-built lab.
func (l *Lab) teardown() error {
	var errs []error
	nss := []string{l.Hub}
	for _, n := range l.Hosts() {
		nss = append(nss, n.NS)
	}
	for _, ns := range nss {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
			continue
		}
		killNamespacePids(ns)
		if err := ipCmd("netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killNamespacePids SIGKILLs the processes left in ns (keepalived's VRRP
// child, commands a test started with Command and didn't wait for). Every
// one of them was started by this test; our own PID is skipped because a
// goroutine's locked thread may be inside ns just now.
func killNamespacePids(ns string) {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid == os.Getpid() {
			continue
		}
		pids = append(pids, pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// Give the kernel a moment to reap them so their sockets go away with
	// the namespace; these are not our children, so we can't wait(2).
	deadline := time.Now().Add(2 * time.Second)
	for _, pid := range pids {
		for Alive(pid) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// Addrs lists the addresses on the node's interface.
func (n *Node) Addrs() ([]netip.Prefix, error) {
	ns, err := netns.GetFromPath(n.NetNSPath())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("%s: netlink: %w", n.Name, err)
	}
	defer h.Close()
	link, err := h.LinkByName(n.Iface)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	list, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	out := make([]netip.Prefix, 0, len(list))
	for _, a := range list {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		bits, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), bits))
	}
	return out, nil
}

// HasAddr reports whether a is on the node's interface. An error reading the
// addresses counts as "no".
func (n *Node) HasAddr(a netip.Addr) bool {
	list, err := n.Addrs()
	if err != nil {
		return false
	}
	for _, p := range list {
		if p.Addr() == a.Unmap() {
			return true
		}
	}
	return false
}

// setSysctls writes /proc/sys entries from a thread inside the namespace at
// nsPath: /proc/sys/net resolves to the writer's network namespace.
func setSysctls(nsPath string, kv map[string]string) error {
	return inNS(nsPath, func() error {
		for k, v := range kv {
			if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0); err != nil {
				return err
			}
		}
		return nil
	})
}

// Alive reports whether pid runs. A zombie (dead, not yet reaped by its
// parent, often init after its own parent died) counts as gone.
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name, which may itself
	// contain spaces or parentheses.
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}
