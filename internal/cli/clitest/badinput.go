// Package clitest holds the bad-input table of 'hapod init', so that the
// in-process CLI test and the test of the built binary run the same cases
// and cannot drift apart. Only tests import it.
package clitest

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Case is one bad 'hapod init' command line.
type Case struct {
	// Name names the case in test output.
	Name string
	// Args follow "hapod init --manifest-dir DIR"; a later --manifest-dir
	// in Args is the one used.
	Args []string
	// Want is a substring of the error, or, with a leading "=", the whole
	// error (without main's "hapod: " prefix).
	Want string
	// FakeHost says the case depends on the in-process test's fake host:
	// node 1 of the lab, 198.18.0.11/24 and 2001:db8::11/64 on eth0 (the
	// route to 2001:db8:99::/48 leads to eth1), whose DHCP server leases
	// 198.18.0.164/24. The binary asks the real host
	// and network, so it skips these.
	FakeHost bool
}

// KubeadmConflict is a kubeadm config whose frontend port (6443, from
// controlPlaneEndpoint) is kube-apiserver's, with no bind-address.
const KubeadmConflict = `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 198.18.0.11
  bindPort: 6443
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
controlPlaneEndpoint: 198.18.0.10:6443
`

// Kubeadm is a good kubeadm config: VIP 198.18.0.10, frontend port 8443,
// this node 198.18.0.11:6443.
const Kubeadm = `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 198.18.0.11
  bindPort: 6443
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.34.0
controlPlaneEndpoint: 198.18.0.10:8443
`

// KubeadmDualStack is a good dual-stack kubeadm config: VIP 198.18.0.10
// (controlPlaneEndpoint, port 6443), this node 198.18.0.11:6443 and
// 2001:db8::11 (kubelet's node-ip pair), subnets of both families.
const KubeadmDualStack = `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 198.18.0.11
nodeRegistration:
  kubeletExtraArgs:
  - name: node-ip
    value: 198.18.0.11,2001:db8::11
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
controlPlaneEndpoint: 198.18.0.10
networking:
  podSubnet: 198.19.0.0/16,2001:db8:42::/56
`

// BadInput writes the files the cases read into dir (which must exist)
// and returns the cases. No case may change anything under dir.
func BadInput(dir string) ([]Case, error) {
	files := map[string]string{
		"pass":          "secret\n",
		"file":          "", // a file where a directory is wanted
		"conflict.yaml": KubeadmConflict,
		// One kubeadm config per --vip dhcp case, so that a case
		// changing its file cannot hide another case's change.
		"dhcp-conflict.yaml":  KubeadmConflict,
		"dhcp-checks.yaml":    Kubeadm,
		"dhcp-write.yaml":     Kubeadm,
		"unknown.yaml":        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfigurationX\n",
		"dns.yaml":            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: api.example.com:8443\n",
		"other.yaml":          "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: 198.18.0.99:8443\n",
		"advertise-only.yaml": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 198.18.0.10\n",
		"dual.yaml":           KubeadmDualStack,
		"node-ip-pair.yaml":   "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  kubeletExtraArgs:\n  - name: node-ip\n    value: 198.18.0.11,198.18.0.12\n",
		"vip-is-node.yaml": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 198.18.0.10\n---\n" +
			"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: 198.18.0.10:8443\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return nil, err
		}
	}
	// Input files that must fail at once, not exhaust memory or block
	// (issue 19, item 9).
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "not-pem.crt"), []byte("-----BEGIN NOTHING-----\n"), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "huge.yaml"), bytes.Repeat([]byte("# padding\n"), 420_000), 0o600); err != nil {
		return nil, err
	}
	f := func(name string) string { return filepath.Join(dir, name) }
	ok := func(more ...string) []string {
		return append([]string{"--vip", "198.18.0.10/24", "--backend", "198.18.0.11:6443"}, more...)
	}
	const vipIsNode = ": VIP is also this node's own address: VIP 198.18.0.10 is the localAPIEndpoint.advertiseAddress; the VIP must be an unused address, distinct from every node's"
	const oneInterface = "each address family's virtual router sends from this node's own address of that family, on the one interface of all the VIPs"
	const portConflict = ": frontend port conflicts with kube-apiserver: the proxy would listen on port 6443, kube-apiserver's port (localAPIEndpoint.bindPort), and kube-apiserver listens on all addresses (no apiServer extraArgs bind-address), so one of them cannot bind: " +
		"leave --listen-port out (the endpoint's port then reaches the proxy through hapod's nftables redirect), or use a port of its own (e.g. --port 8443 and controlPlaneEndpoint VIP:8443); apiServer extraArgs bind-address is no way out: it is cluster-wide, so every joining control-plane node would bind the first node's address and fail preflight Port-6443"
	return []Case{
		{Name: "bad ip", Args: []string{"--vip", "198.18.0.300", "--backend", "198.18.0.11:6443"}, Want: "--vip 198.18.0.300: not an IP address"},
		{Name: "no vip", Args: []string{"--backend", "198.18.0.11:6443"}, Want: "--vip: required"},
		{Name: "vip is node address", Args: []string{"--vip", "198.18.0.11/24", "--backend", "198.18.0.12:6443"}, Want: "--vip 198.18.0.11: already an address of eth0", FakeHost: true},
		{Name: "vrid 0", Args: ok("--vrid", "0"), Want: "--vrid 0: must be a whole number from 1 to 255"},
		{Name: "vrid 256", Args: ok("--vrid", "256"), Want: "--vrid 256"},
		{Name: "priority 255", Args: ok("--priority", "255"), Want: "--priority 255: 255 is reserved"},
		{Name: "v3 interval too long", Args: ok("--advert-interval", "50s"), Want: "--advert-interval 50s: VRRPv3 allows 10ms to 40.95s"},
		{Name: "v2 interval too short", Args: ok("--vrrp-version", "2", "--advert-interval", "100ms"), Want: "--advert-interval 100ms: VRRPv2 allows 1s"},
		{Name: "v2 with ipv6", Args: []string{"--vip", "2001:db8::10/64", "--backend", "[2001:db8::11]:6443", "--vrrp-version", "2"}, Want: "--vrrp-version 2: VRRPv2 is IPv4 only"},
		{Name: "auth with v3", Args: ok("--auth-pass-file", f("pass")), Want: "--auth-pass-file " + f("pass") + ": VRRPv3 has no authentication"},
		{Name: "missing password file", Args: ok("--vrrp-version", "2", "--auth-pass-file", f("nope")), Want: "--auth-pass-file " + f("nope") + ": no such file"},
		// The port-share warning must not come out before a later error.
		{Name: "port shared, then missing password file", Args: []string{"--vip", "198.18.0.10/24", "--port", "6443", "--backend", "198.18.0.11:6443", "--vrrp-version", "2", "--auth-pass-file", f("nope")},
			Want: "--auth-pass-file " + f("nope") + ": no such file"},
		{Name: "backend without port", Args: []string{"--vip", "198.18.0.10", "--backend", "198.18.0.11"}, Want: "--backend 198.18.0.11: missing port"},
		{Name: "no backend, no discovery", Args: []string{"--vip", "198.18.0.10", "--discover=false"}, Want: "--backend: at least one"},
		{Name: "bad advertise address", Args: []string{"--vip", "198.18.0.10", "--apiserver-advertise-address", "node1"}, Want: "--apiserver-advertise-address node1: not an IP address"},
		{Name: "bad bind port", Args: []string{"--vip", "198.18.0.10", "--apiserver-bind-port", "70000"}, Want: "--apiserver-bind-port 70000: not a port"},
		{Name: "peer is self", Args: ok("--peer", "198.18.0.11"), Want: "--peer 198.18.0.11: is this host's own address", FakeHost: true},
		{Name: "unreadable kubeadm config", Args: ok("--kubeadm-config", f("missing.yaml")), Want: f("missing.yaml")},
		{Name: "unknown kind", Args: []string{"--backend", "198.18.0.11:6443", "--kubeadm-config", f("unknown.yaml")}, Want: "ResetConfigurationX"},
		{Name: "dns endpoint", Args: []string{"--backend", "198.18.0.11:6443", "--kubeadm-config", f("dns.yaml")}, Want: "api.example.com"},
		{Name: "dns endpoint, --vip, --port differs", Args: ok("--kubeadm-config", f("dns.yaml"), "--port", "9443"),
			Want: "=--port 9443: differs from the port of ClusterConfiguration.controlPlaneEndpoint api.example.com:8443 in " + f("dns.yaml") + ": clients would reach the VIP on a port nobody listens on"},
		{Name: "vip disagrees with kubeadm", Args: ok("--kubeadm-config", f("other.yaml")),
			Want: "=" + f("other.yaml") + ": VIP disagrees with the kubeadm endpoint: --vip 198.18.0.10 but ClusterConfiguration.controlPlaneEndpoint is 198.18.0.99:8443; make them the same address"},
		{Name: "kubeadm VIP is advertiseAddress", Args: []string{"--kubeadm-config", f("vip-is-node.yaml"), "--backend", "198.18.0.11:6443"}, Want: "=" + f("vip-is-node.yaml") + vipIsNode},
		{Name: "kubeadm VIP is advertiseAddress, backend from kubeadm", Args: []string{"--kubeadm-config", f("vip-is-node.yaml")}, Want: "=" + f("vip-is-node.yaml") + vipIsNode},
		{Name: "--vip is kubeadm advertiseAddress", Args: ok("--kubeadm-config", f("advertise-only.yaml")), Want: "=" + f("advertise-only.yaml") + vipIsNode},
		{Name: "port conflict", Args: []string{"--kubeadm-config", f("conflict.yaml"), "--listen-port", "6443"}, Want: "=" + f("conflict.yaml") + portConflict},
		{Name: "unwritable dir", Args: ok("--manifest-dir", f("file/sub")),
			Want: "=read existing manifest: stat " + filepath.Join(f("file/sub"), "hapod.yaml") + ": not a directory"},
		// --vip dhcp leases first, and init sets the leased endpoint in the
		// kubeadm config only once everything else has passed: a failure
		// leaves the file as it was, with no backup made.
		{Name: "dhcp, kubeadm config, bad setting", Args: []string{"--vip", "dhcp", "--kubeadm-config", f("dhcp-checks.yaml"), "--health-timeout", "3s"},
			Want: "=--health-timeout 3s: must be at least 10ms and at most --health-interval (2s)", FakeHost: true},
		{Name: "dhcp, kubeadm port conflict", Args: []string{"--vip", "dhcp", "--kubeadm-config", f("dhcp-conflict.yaml"), "--listen-port", "6443"},
			Want: "=" + f("dhcp-conflict.yaml") + portConflict, FakeHost: true},
		{Name: "dhcp, kubeadm config, unwritable dir", Args: []string{"--vip", "dhcp", "--kubeadm-config", f("dhcp-write.yaml"), "--manifest-dir", f("file/sub")},
			Want: "=read existing manifest: stat " + filepath.Join(f("file/sub"), "hapod.yaml") + ": not a directory", FakeHost: true},
		// Input bounds (issue 19, item 12): each error names the flag.
		{Name: "vip /0", Args: []string{"--vip", "198.18.0.10/0", "--backend", "198.18.0.11:6443"}, Want: "=--vip 198.18.0.10/0: prefix /0 is shorter than /8: the prefix is the VIP's subnet, routed to its interface; give the LAN's prefix or none (/32)"},
		{Name: "broadcast backend", Args: []string{"--vip", "198.18.0.10/24", "--backend", "198.18.0.255:6443"}, Want: "=--backend 198.18.0.255:6443: the broadcast address of the VIP's /24, not a node's"},
		{Name: "limited broadcast peer", Args: ok("--peer", "255.255.255.255"), Want: "=--peer 255.255.255.255: the broadcast address, not a node's"},
		{Name: "link-local backend", Args: []string{"--vip", "2001:db8::10/64", "--backend", "[fe80::11]:6443"}, Want: "--backend [fe80::11]:6443: an IPv6 link-local address"},
		{Name: "link-local peer", Args: []string{"--vip", "2001:db8::10/64", "--backend", "[2001:db8::11]:6443", "--peer", "fe80::12"}, Want: "--peer fe80::12: an IPv6 link-local address"},
		{Name: "control character in image", Args: ok("--image", "ghcr.io/hapod/hapod:dev\nevil: 1"), Want: `=--image "ghcr.io/hapod/hapod:dev\nevil: 1": control character '\n'`},
		{Name: "bad image", Args: ok("--image", "ghcr.io/Hapod/hapod"), Want: "=--image ghcr.io/Hapod/hapod: not an image reference ([REGISTRY/]REPOSITORY[:TAG][@DIGEST], repository in lower case)"},
		{Name: "control character in health path", Args: ok("--health-path", "/readyz\r\nHost: evil"), Want: `=--health-path "/readyz\r\nHost: evil": control character '\r'`},
		{Name: "health interval 1ns", Args: ok("--health-interval", "1ns", "--health-timeout", "1ns"), Want: "=--health-interval 1ns: must be at least 100ms"},
		{Name: "idle timeout 1ns", Args: ok("--idle-timeout", "1ns"), Want: "=--idle-timeout 1ns: must be at least 1s"},
		{Name: "too many peers", Args: ok(manyPeers(65)...), Want: "=--peer: at most 64 peers, got 65 (every peer receives every advert)"},
		{Name: "status address is the VIP", Args: ok("--status-addr", "198.18.0.10:10270"), Want: "--status-addr 198.18.0.10:10270: is a VIP"},
		{Name: "kubeadm config is a FIFO", Args: ok("--kubeadm-config", f("fifo")), Want: "=kubeadm config: read " + f("fifo") + ": not a regular file (a FIFO)"},
		{Name: "kubeadm config is /dev/zero", Args: ok("--kubeadm-config", "/dev/zero"), Want: "=kubeadm config: read /dev/zero: not a regular file (a character device)"},
		{Name: "kubeadm config is a directory", Args: ok("--kubeadm-config", dir), Want: "=kubeadm config: read " + dir + ": not a regular file (a directory)"},
		{Name: "kubeadm config over 4 MiB", Args: ok("--kubeadm-config", f("huge.yaml")), Want: "=kubeadm config: read " + f("huge.yaml") + ": file too large: hapod reads at most 4 MiB"},
		{Name: "password file is a FIFO", Args: ok("--vrrp-version", "2", "--auth-pass-file", f("fifo")), Want: "=--auth-pass-file " + f("fifo") + ": not a regular file (a FIFO)"},
		{Name: "password file is /dev/zero", Args: ok("--vrrp-version", "2", "--auth-pass-file", "/dev/zero"), Want: "=--auth-pass-file /dev/zero: not a regular file (a character device)"},
		// What 'hapod run' would fail on at start fails init too (issue
		// 19, item 7): the binary runs these with one of this host's own
		// interfaces, the in-process test with the fake host's eth0.
		{Name: "status address not on this host", Args: ok("--status-addr", "198.18.0.12:10270"),
			Want: "=--status-addr 198.18.0.12:10270: not an address of this host: the status server could not listen there, and kubelet's liveness probe would restart hapod forever; use an address this node always has (default 127.0.0.1:10270)"},
		{Name: "CA file without a certificate", Args: ok("--health-ca-file", f("not-pem.crt")),
			Want: "=--health-ca-file " + f("not-pem.crt") + ": no PEM certificate found: want the cluster CA in PEM, e.g. /etc/kubernetes/pki/ca.crt"},
		{Name: "CA file missing", Args: ok("--health-ca-file", f("missing.crt")), Want: "=--health-ca-file " + f("missing.crt") + ": no such file or directory"},
		{Name: "CA file is a FIFO", Args: ok("--health-ca-file", f("fifo")), Want: "=--health-ca-file " + f("fifo") + ": not a regular file (a FIFO)"},
		{Name: "interface without an address", Args: ok("--interface", "hapodnone0"), Want: "=--interface hapodnone0: has no IPv4 address of its own to send VRRP adverts from"},
		// Issue 22: each family's virtual router needs this node's own
		// address of its family on the VIPs' one interface.
		{Name: "dual-stack, interface without addresses", Args: []string{"--vip", "198.18.0.10/24", "--vip", "2001:db8::10/64", "--backend", "198.18.0.11:6443", "--interface", "hapodnone0"},
			Want: "=--interface hapodnone0: has no IPv4 address of its own to send VRRP adverts from, for the VIP 198.18.0.10/24: " + oneInterface},
		{Name: "dual-stack, VIPs routed to different interfaces", Args: []string{"--vip", "198.18.0.10/24", "--vip", "2001:db8:99::10/64", "--backend", "198.18.0.11:6443"},
			Want: "=--interface: not given, and the VIPs are on different interfaces: 198.18.0.10 is routed to eth0, 2001:db8:99::10 is routed to eth1; hapod holds all its VIPs on one interface: pass --interface, one with an address of each VIP's family", FakeHost: true},
		{Name: "VIP given twice", Args: []string{"--vip", "2001:db8::10/64", "--vip", "2001:db8::10", "--backend", "198.18.0.11:6443"}, Want: "=--vip 2001:db8::10/128: given twice"},
		// Issue 22: a dual-stack kubeadm config with VIPs of both families.
		{Name: "kubeadm dual-stack, --vip of the other family only", Args: []string{"--kubeadm-config", f("dual.yaml"), "--vip", "2001:db8::10/64"},
			Want: "=" + f("dual.yaml") + ": VIP disagrees with the kubeadm endpoint: ClusterConfiguration.controlPlaneEndpoint is 198.18.0.10:6443, and no --vip is 198.18.0.10 (--vip 2001:db8::10); give it as one of them: the other VIPs reach the same kube-apiservers beside it"},
		{Name: "kubeadm dual-stack, a VIP is the node-ip", Args: []string{"--kubeadm-config", f("dual.yaml"), "--vip", "198.18.0.10/24", "--vip", "2001:db8::11/64"},
			Want: "=" + f("dual.yaml") + ": VIP is also this node's own address: VIP 2001:db8::11 is this node's kubelet node-ip (nodeRegistration.kubeletExtraArgs); the VIP must be an unused address, distinct from every node's"},
		{Name: "kubeadm node-ip pair of one family", Args: ok("--kubeadm-config", f("node-ip-pair.yaml")),
			Want: "=" + f("node-ip-pair.yaml") + ": InitConfiguration.nodeRegistration.kubeletExtraArgs node-ip \"198.18.0.11,198.18.0.12\": malformed IP address: kubelet takes one address, or a dual-stack pair of one IPv4 and one IPv6 address"},
		{Name: "positional argument", Args: ok("extra"), Want: "unexpected arguments: extra"},
		{Name: "unknown flag", Args: ok("--vipp", "x"), Want: "flag provided but not defined: -vipp"},
	}, nil
}

// manyPeers returns --peer flags for n distinct addresses in 198.18.1.0/24.
func manyPeers(n int) []string {
	var args []string
	for i := range n {
		args = append(args, "--peer", fmt.Sprintf("198.18.1.%d", i+1))
	}
	return args
}

// Snapshot maps every file and directory under root to its mode and
// content, to show that a failed run changed nothing.
func Snapshot(root string) (map[string]string, error) {
	files := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		content := ""
		if d.Type().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			content = string(data)
		}
		files[path] = fmt.Sprintf("%v %q", info.Mode(), content)
		return nil
	})
	return files, err
}
