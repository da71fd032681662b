package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	ucli "github.com/urfave/cli/v2"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/hapod/hapod/internal/cli/clitest"
	"github.com/hapod/hapod/internal/hostnet"
	"github.com/hapod/hapod/internal/instance"
	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/dhcpvip"
	"github.com/hapod/hapod/pkg/kubeadm"
	"github.com/hapod/hapod/pkg/manifest"
)

// fakeHost is node 1 of a lab: 198.18.0.11/24 and 2001:db8::11/64 on eth0,
// which the routes lead to but for 2001:db8:99::/48's, on eth1.
func fakeHost(extra ...hostnet.Addr) Host {
	return Host{
		DefaultInterface: func() (string, error) { return "eth0", nil },
		LeaseVIP: func(_ context.Context, cfg dhcpvip.Config) (dhcpvip.Lease, error) {
			if cfg.Interface != "eth0" || cfg.Identity.MAC == nil {
				return dhcpvip.Lease{}, errors.New("bad lease request")
			}
			return dhcpvip.Lease{Prefix: netip.MustParsePrefix("198.18.0.164/24"), Server: netip.MustParseAddr("198.18.0.1"), Duration: time.Hour}, nil
		},
		RouteInterface: func(a netip.Addr) (string, error) {
			for _, e := range extra {
				if e.Prefix.Addr() == a {
					return "", errors.New("the route to " + a.String() + " goes over the loopback interface")
				}
			}
			if netip.MustParsePrefix("2001:db8:99::/48").Contains(a) {
				return "eth1", nil
			}
			return "eth0", nil
		},
		DetectRuntime: func() (string, error) { return "unix:///var/run/containerd/containerd.sock", nil },
		ImagePresent:  func(context.Context, string, string) (bool, error) { return true, nil },
		Addrs: func() ([]hostnet.Addr, error) {
			return append([]hostnet.Addr{
				{Prefix: netip.MustParsePrefix("127.0.0.1/8"), Interface: "lo"},
				{Prefix: netip.MustParsePrefix("198.18.0.11/24"), Interface: "eth0"},
				{Prefix: netip.MustParsePrefix("2001:db8::11/64"), Interface: "eth0"},
				{Prefix: netip.MustParsePrefix("fe80::11/64"), Interface: "eth0"},
			}, extra...), nil
		},
		Instance:   func(netip.Addr) (int, error) { return 0, instance.ErrNotRunning },
		Instances:  func() ([]netip.Addr, error) { return nil, nil },
		Listening:  func(netip.Addr) (bool, error) { return false, nil },
		RemoveAddr: func(a hostnet.Addr) error { return fmt.Errorf("fake host: RemoveAddr(%v) not expected", a) },
		Redirect:   func(netip.Addr) (bool, error) { return false, nil },
		RemoveRedirect: func(vip netip.Addr) error {
			return fmt.Errorf("fake host: RemoveRedirect(%v) not expected", vip)
		},
		Handover: func(context.Context, netip.Addr) (string, string, error) {
			return "", "", instance.ErrNotRunning
		},
	}
}

type result struct {
	stdout, stderr string
	err            error
}

func run(t *testing.T, host Host, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	app := NewApp(&out, &errOut, host)
	err := app.RunContext(context.Background(), append([]string{"hapod"}, args...))
	return result{out.String(), errOut.String(), err}
}

var backends = []string{"--backend", "198.18.0.11:6443", "--backend", "198.18.0.12:6443", "--backend", "198.18.0.13:6443"}

// The acceptance example.
func TestManifestPrintsStrictPod(t *testing.T) {
	r := run(t, fakeHost(), append([]string{"manifest", "--vip", "198.18.0.10/24", "--interface", "eth0"}, backends...)...)
	if r.err != nil {
		t.Fatal(r.err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict([]byte(r.stdout), &pod); err != nil {
		t.Fatalf("strict decode: %v\n%s", err, r.stdout)
	}
	args := pod.Spec.Containers[0].Args
	for _, want := range []string{"run", "--vip=198.18.0.10/24", "--interface=eth0", "--vrid=10", "--backend=198.18.0.13:6443"} {
		if !strings.Contains(strings.Join(args, " "), want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
}

func TestInitWritesOnceThenUnchangedThenRefuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "manifests")
	base := append([]string{"init", "--manifest-dir", dir, "--vip", "198.18.0.10/24"}, backends...)

	r := run(t, fakeHost(), base...)
	if r.err != nil {
		t.Fatal(r.err)
	}
	path := filepath.Join(dir, manifest.FileName)
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"created " + path, "kubeadm init --control-plane-endpoint 198.18.0.10:6443", "hapod join --vip=198.18.0.10/24 --vrid=10 --port=6443 --backend=198.18.0.11:6443",
		"endpoint 198.18.0.10:6443: redirected by hapod's nftables rule to the proxy on port 9445"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("init output lacks %q:\n%s", want, r.stdout)
		}
	}

	r = run(t, fakeHost(), base...)
	if r.err != nil || !strings.Contains(r.stdout, "unchanged "+path) {
		t.Fatalf("second run: %v\n%s", r.err, r.stdout)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, first) {
		t.Error("identical run changed the bytes")
	}

	r = run(t, fakeHost(), append(base, "--priority", "120")...)
	if !errors.Is(r.err, manifest.ErrExists) || !strings.Contains(r.stderr, "+    - --priority=120") {
		t.Fatalf("changed settings without --force: err %v\nstderr:\n%s", r.err, r.stderr)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, first) {
		t.Error("refused run changed the file")
	}

	r = run(t, fakeHost(), append(base, "--priority", "120", "--force")...)
	if r.err != nil || !strings.Contains(r.stdout, "updated "+path) {
		t.Fatalf("--force: %v\n%s", r.err, r.stdout)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "manifests")
	r := run(t, fakeHost(), append([]string{"init", "--dry-run", "--manifest-dir", dir, "--vip", "198.18.0.10"}, backends...)...)
	if r.err != nil || !strings.Contains(r.stderr, "would create") || !strings.Contains(r.stdout, "kind: Pod") {
		t.Fatalf("dry run: %v\n%s\n%s", r.err, r.stdout, r.stderr)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("dry run created %s", dir)
	}
}

// TestDryRunVIPFromDHCP: a dry run with --vip dhcp leases (the manifest
// needs an address), says plainly that the lease is real, and writes
// nothing: no manifest, no kubeadm config change, no backup.
func TestDryRunVIPFromDHCP(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "manifests")
	kcfg := filepath.Join(tmp, "kubeadm.yaml")
	os.WriteFile(kcfg, []byte(kubeadmV1beta4), 0o600)
	host := fakeHost()
	leases := 0
	lease := host.LeaseVIP
	host.LeaseVIP = func(ctx context.Context, cfg dhcpvip.Config) (dhcpvip.Lease, error) {
		leases++
		return lease(ctx, cfg)
	}
	r := run(t, host, "init", "--dry-run", "--manifest-dir", dir, "--vip", "dhcp", "--kubeadm-config", kcfg)
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	if leases != 1 {
		t.Errorf("%d leases, want 1", leases)
	}
	for _, want := range []string{
		"hapod: dry run: leased VIP 198.18.0.164/24 on eth0 from DHCP server 198.18.0.1",
		"this is a real lease, taken to render the manifest",
		"hapod: dry run: would set controlPlaneEndpoint 198.18.0.164:6443 in " + kcfg,
		"hapod: dry run: would create " + filepath.Join(dir, manifest.FileName),
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if !strings.Contains(r.stdout, "- --vip=198.18.0.164/24") {
		t.Errorf("printed manifest lacks the leased VIP:\n%s", r.stdout)
	}
	if k, _ := os.ReadFile(kcfg); string(k) != kubeadmV1beta4 {
		t.Errorf("dry run changed the kubeadm config:\n%s", k)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 1 {
		t.Errorf("dry run left files: %v", entries)
	}
	if h := run(t, host, "init", "--help"); !strings.Contains(h.stdout, "with --vip dhcp it still takes a real lease") {
		t.Errorf("init --help does not say a dry run leases:\n%s", h.stdout)
	}
}

// TestBadInput: every bad input exits with one line naming what is wrong
// (a file once), prints nothing else, and changes no file: the manifest
// directory actually given stays absent and the input files, a kubeadm
// config above all, stay byte-identical. cmd/hapod runs the same table
// through the binary.
func TestBadInput(t *testing.T) {
	tmp := t.TempDir()
	cases, err := clitest.BadInput(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "manifests")
			args := append([]string{"init", "--manifest-dir", dir}, tc.Args...)
			for i, a := range args {
				if a == "--manifest-dir" {
					dir = args[i+1] // the last one given is the one used
				}
			}
			before, err := clitest.Snapshot(tmp)
			if err != nil {
				t.Fatal(err)
			}
			r := run(t, fakeHost(), args...)
			if r.err == nil {
				t.Fatalf("no error; stdout:\n%s", r.stdout)
			}
			msg := r.err.Error()
			if exact, ok := strings.CutPrefix(tc.Want, "="); ok {
				if msg != exact {
					t.Errorf("error:\n%s\nwant:\n%s", msg, exact)
				}
			} else if !strings.Contains(msg, tc.Want) {
				t.Errorf("error %q lacks %q", msg, tc.Want)
			}
			for i, a := range tc.Args {
				if a == "--kubeadm-config" && strings.Count(msg, tc.Args[i+1]) > 1 {
					t.Errorf("error names %s more than once: %q", tc.Args[i+1], msg)
				}
			}
			if m := filepath.Join(dir, manifest.FileName); strings.Count(msg, m) > 1 {
				t.Errorf("error names %s more than once: %q", m, msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			// main prints the error; the command itself says nothing,
			// no warning or note ahead of it.
			if r.stdout != "" || r.stderr != "" {
				t.Errorf("output besides the error:\nstdout: %q\nstderr: %q", r.stdout, r.stderr)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				t.Errorf("manifest dir %s was created", dir)
			}
			if after, err := clitest.Snapshot(tmp); err != nil || !maps.Equal(before, after) {
				t.Errorf("files changed (%v):\nbefore %v\nafter  %v", err, before, after)
			}
		})
	}
}

// TestPortShareWarning: the warning about the proxy listening on the
// apiservers' port itself comes out on success, after the checks; the
// default, the redirect, needs none.
func TestPortShareWarning(t *testing.T) {
	r := run(t, fakeHost(), "init", "--manifest-dir", t.TempDir(), "--vip", "198.18.0.10/24", "--listen-port", "6443", "--backend", "198.18.0.11:6443")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !strings.HasPrefix(r.stderr, "hapod: warning: the proxy listens on VIP:6443, the kube-apiservers' port") {
		t.Errorf("stderr %q lacks the warning", r.stderr)
	}
	r = run(t, fakeHost(), "init", "--manifest-dir", t.TempDir(), "--vip", "198.18.0.10/24", "--backend", "198.18.0.11:6443")
	if r.err != nil || strings.Contains(r.stderr, "warning") {
		t.Errorf("default endpoint: %v, stderr %q", r.err, r.stderr)
	}
}

// TestConfigWarnings: a valid but self-defeating setting (--preempt=false
// with a no-backend weight) succeeds and says so on stderr, one line,
// after the checks; init, join and manifest alike. Without the weight,
// or with a failing check, there is no warning.
func TestConfigWarnings(t *testing.T) {
	const want = "hapod: warning: --preempt=false makes --no-backend-weight 50 useless"
	for _, cmd := range []string{"init", "join", "manifest"} {
		t.Run(cmd, func(t *testing.T) {
			argsFor := func(extra ...string) []string {
				args := []string{cmd, "--vip", "198.18.0.10/24", "--preempt=false"}
				if cmd != "manifest" {
					args = append(args, "--manifest-dir", t.TempDir())
				}
				return append(append(args, backends...), extra...)
			}
			r := run(t, fakeHost(), argsFor()...)
			if r.err != nil {
				t.Fatal(r.err)
			}
			var warnings []string
			for _, l := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
				if strings.Contains(l, "warning:") {
					warnings = append(warnings, l)
				}
			}
			if len(warnings) != 1 || !strings.HasPrefix(warnings[0], want) {
				t.Errorf("warning lines %q, want one starting %q", warnings, want)
			}
			if strings.Contains(r.stdout, "warning") {
				t.Errorf("a warning went to stdout: %q", r.stdout)
			}

			r = run(t, fakeHost(), argsFor("--no-backend-weight=0")...)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if strings.Contains(r.stderr, "warning") {
				t.Errorf("--no-backend-weight=0: stderr %q, want no warning", r.stderr)
			}
		})
	}
	// A failing run prints its error and no warning.
	r := run(t, fakeHost(), append([]string{"manifest", "--vip", "198.18.0.10/24", "--preempt=false", "--health-fall=0"}, backends...)...)
	if r.err == nil || r.stderr != "" {
		t.Errorf("bad --health-fall: err %v, stderr %q; want an error and nothing on stderr", r.err, r.stderr)
	}
}

// captureRun parses args exactly as `hapod run` does.
func captureRun(t *testing.T, args []string) config.Config {
	t.Helper()
	var got config.Config
	app := &ucli.App{Commands: []*ucli.Command{{
		Name:  "run",
		Flags: configFlags(),
		Action: func(c *ucli.Context) (err error) {
			got, err = configFromFlags(c)
			return err
		},
	}}}
	if err := app.Run(append([]string{"hapod"}, args...)); err != nil {
		t.Fatalf("parse run args %q: %v", args, err)
	}
	return got
}

// TestManifestArgsRoundTrip: the args in the written manifest, parsed by
// the run command's flags, give back the Config init rendered.
func TestManifestArgsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass")
	os.WriteFile(pass, []byte("secret"), 0o600)
	for _, extra := range [][]string{
		nil,
		{"--vrrp-version", "2", "--auth-pass-file", pass, "--peer", "198.18.0.12", "--peer", "198.18.0.13", "--preempt=false", "--rebalance", "--no-backend-weight", "0", "--health-check", "tcp"},
	} {
		r := run(t, fakeHost(), append(append([]string{"manifest", "--vip", "198.18.0.10/24"}, backends...), extra...)...)
		if r.err != nil {
			t.Fatal(r.err)
		}
		var pod corev1.Pod
		if err := yaml.UnmarshalStrict([]byte(r.stdout), &pod); err != nil {
			t.Fatal(err)
		}
		args := pod.Spec.Containers[0].Args
		got := captureRun(t, args)
		if !reflect.DeepEqual(got.Args(), args[1:]) {
			t.Errorf("round trip differs:\n got %q\nwant %q", got.Args(), args[1:])
		}
		if err := got.Validate(); err != nil {
			t.Errorf("parsed config invalid: %v", err)
		}
	}
}

// TestJoinCommandWorksOnEveryNode runs the join command init printed on
// node 2 and checks it yields node 1's settings with node 2's own
// interface and peers: with one VIP, and with VIPs of both families and
// their own VRIDs in unicast mode, where the line names node 1's address
// of each family as a peer (issue 22).
func TestJoinCommandWorksOnEveryNode(t *testing.T) {
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name  string
		args  []string
		peers string // in the join line
		node2 []hostnet.Addr
		want  []netip.Addr // node 2's peers
	}{
		{"IPv4", []string{"--vip", "198.18.0.10/24", "--peer", "198.18.0.12", "--peer", "198.18.0.13"},
			"--peer=198.18.0.11 --peer=198.18.0.12 --peer=198.18.0.13",
			[]hostnet.Addr{{Prefix: netip.MustParsePrefix("198.18.0.12/24"), Interface: "ens3"}},
			[]netip.Addr{a("198.18.0.11"), a("198.18.0.13")}},
		{"dual-stack", []string{"--vip", "198.18.0.10/24", "--vip", "2001:db8::10/64", "--vrid6", "20",
			"--peer", "198.18.0.12", "--peer", "2001:db8::12", "--peer", "198.18.0.13", "--peer", "2001:db8::13"},
			"--peer=198.18.0.11 --peer=2001:db8::11 --peer=198.18.0.12 --peer=2001:db8::12 --peer=198.18.0.13 --peer=2001:db8::13",
			[]hostnet.Addr{{Prefix: netip.MustParsePrefix("198.18.0.12/24"), Interface: "ens3"}, {Prefix: netip.MustParsePrefix("2001:db8::12/64"), Interface: "ens3"}},
			[]netip.Addr{a("198.18.0.11"), a("2001:db8::11"), a("198.18.0.13"), a("2001:db8::13")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := run(t, fakeHost(), append(append([]string{"init", "--manifest-dir", dir, "--health-interval", "1s"}, tc.args...), backends...)...)
			if r.err != nil {
				t.Fatal(r.err)
			}
			join := printedHapodJoin(t, r.stdout)
			if !strings.Contains(strings.Join(join, " "), tc.peers) {
				t.Errorf("join command does not list every node as a peer (%s): %q", tc.peers, join)
			}
			node1 := captureRun(t, readPodArgs(t, dir))
			node2 := fakeHost()
			node2.RouteInterface = func(netip.Addr) (string, error) { return "ens3", nil }
			node2.Addrs = func() ([]hostnet.Addr, error) { return tc.node2, nil }
			dir2 := t.TempDir()
			if r := run(t, node2, append(join, "--manifest-dir", dir2)...); r.err != nil {
				t.Fatalf("join on node 2: %v", r.err)
			}
			got := captureRun(t, readPodArgs(t, dir2))
			if !reflect.DeepEqual(got.VRRP.Peers, tc.want) {
				t.Errorf("node 2 peers = %v, want %v", got.VRRP.Peers, tc.want)
			}
			if got.VIP.Interface != "ens3" {
				t.Errorf("node 2 interface %q, want ens3", got.VIP.Interface)
			}
			// Everything else is the cluster's: the same on both nodes.
			got.VIP.Interface, got.VRRP.Peers = node1.VIP.Interface, node1.VRRP.Peers
			if !reflect.DeepEqual(got, node1) {
				t.Errorf("node 2 config differs from node 1's:\n got %q\nwant %q", got.Args(), node1.Args())
			}
		})
	}
}

// readPodArgs returns the args of the hapod manifest in dir.
func readPodArgs(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, manifest.FileName))
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(data, &pod); err != nil {
		t.Fatal(err)
	}
	return pod.Spec.Containers[0].Args
}

// TestReinitOnVIPHolder: the node holding the VIP has it on its interface;
// re-running init there must not call the VIP a node address.
// On the node holding the VIP, the route to it goes over lo: init and join
// take the interface from the address itself, and write what they wrote
// before the node held it (the README's upgrade procedure: same flags,
// --image NEW --force).
func TestReinitOnVIPHolder(t *testing.T) {
	for _, tc := range []struct {
		name string
		vips []string
	}{
		{"IPv4", []string{"198.18.0.10/24"}},
		// The instance lock is named after the primary VIP: the IPv6 VIP
		// is held by the hapod running for 198.18.0.10, not left behind.
		{"dual-stack", []string{"198.18.0.10/24", "2001:db8::10/64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"init", "--manifest-dir", dir}
			var held []hostnet.Addr
			for _, v := range tc.vips {
				p := netip.MustParsePrefix(v)
				args = append(args, "--vip", v)
				held = append(held, hostnet.Addr{Prefix: p, Interface: "eth0", Secondary: p.Addr().Is4(), Deprecated: p.Addr().Is6()})
			}
			args = append(args, backends...)
			if r := run(t, fakeHost(), args...); r.err != nil {
				t.Fatal(r.err)
			}
			first, _ := os.ReadFile(filepath.Join(dir, manifest.FileName))
			for _, join := range []bool{false, true} {
				holder := fakeHost(held...)
				holder.Instance = func(vip netip.Addr) (int, error) {
					if vip == held[0].Prefix.Addr() {
						return 4242, nil
					}
					return 0, instance.ErrNotRunning
				}
				a := slices.Clone(args)
				if join {
					a[0] = "join"
				}
				if r := run(t, holder, a...); r.err != nil || !strings.Contains(r.stdout, "unchanged") {
					t.Fatalf("re-%s on the VIP holder: %v\n%s", a[0], r.err, r.stdout)
				}
				r := run(t, holder, append(a, "--image", "example.test/hapod:new", "--force")...)
				if r.err != nil || !strings.Contains(r.stdout, "updated") {
					t.Fatalf("%s --image --force on the VIP holder: %v\n%s", a[0], r.err, r.stdout)
				}
				upgraded, _ := os.ReadFile(filepath.Join(dir, manifest.FileName))
				if d := manifest.Diff(string(first), string(upgraded)); strings.TrimSpace(d) != "-    image: "+defaultImage()+"\n+    image: example.test/hapod:new" {
					t.Errorf("the upgrade changed more than the image:\n%s", d)
				}
				os.WriteFile(filepath.Join(dir, manifest.FileName), first, 0o600)
			}
		})
	}
}

// A VIP that a killed hapod left behind (no instance holds it) is removed,
// after every check and only then; a dry run says it would be. A node's
// own (primary) address is never taken for one.
func TestInitRemovesStaleVIP(t *testing.T) {
	dir := t.TempDir()
	args := append([]string{"join", "--manifest-dir", dir, "--vip", "198.18.0.10/24"}, backends...)
	want, err := os.ReadFile(writeManifestFor(t, args))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		addr    hostnet.Addr
		listen  bool
		extra   []string
		removed bool
		wantErr string
	}{
		{name: "secondary IPv4", addr: hostnet.Addr{Prefix: netip.MustParsePrefix("198.18.0.10/24"), Interface: "eth0", Secondary: true}, removed: true},
		{name: "dry run", addr: hostnet.Addr{Prefix: netip.MustParsePrefix("198.18.0.10/24"), Interface: "eth0", Secondary: true}, extra: []string{"--dry-run"}},
		{name: "a failing check first", addr: hostnet.Addr{Prefix: netip.MustParsePrefix("198.18.0.10/24"), Interface: "eth0", Secondary: true},
			extra: []string{"--vrid", "0"}, wantErr: "--vrid"},
		{name: "older hapod listening", addr: hostnet.Addr{Prefix: netip.MustParsePrefix("198.18.0.10/24"), Interface: "eth0", Secondary: true}, listen: true},
		{name: "node's own address", addr: hostnet.Addr{Prefix: netip.MustParsePrefix("198.18.0.10/24"), Interface: "eth1"},
			wantErr: "--vip 198.18.0.10: already an address of eth1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := fakeHost(tc.addr)
			host.Listening = func(netip.Addr) (bool, error) { return tc.listen, nil }
			var removed []hostnet.Addr
			host.RemoveAddr = func(a hostnet.Addr) error { removed = append(removed, a); return nil }
			r := run(t, host, append(slices.Clone(args), tc.extra...)...)
			if tc.wantErr != "" {
				if r.err == nil || !strings.Contains(r.err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", r.err, tc.wantErr)
				}
			} else if r.err != nil {
				t.Fatalf("%v\n%s", r.err, r.stderr)
			}
			if got := len(removed) == 1 && removed[0] == tc.addr; got != tc.removed || len(removed) > 1 {
				t.Errorf("removed %v, want the stale VIP removed: %v", removed, tc.removed)
			}
			note := "removed the stale VIP 198.18.0.10/24 from eth0"
			if tc.removed != strings.Contains(r.stderr, "hapod: "+note) {
				t.Errorf("stderr says %q: %v, want %v:\n%s", note, !tc.removed, tc.removed, r.stderr)
			}
			if slices.Contains(tc.extra, "--dry-run") && !strings.Contains(r.stderr, "dry run: would have "+note) {
				t.Errorf("dry run does not say it would remove the stale VIP:\n%s", r.stderr)
			}
			if tc.wantErr == "" && !slices.Contains(tc.extra, "--dry-run") {
				if got, _ := os.ReadFile(filepath.Join(dir, manifest.FileName)); !bytes.Equal(got, want) {
					t.Errorf("manifest differs from a node without the VIP:\n%s", manifest.Diff(string(want), string(got)))
				}
			}
			os.Remove(filepath.Join(dir, manifest.FileName))
		})
	}
}

// writeManifestFor runs args (with a --manifest-dir) on a host without
// the VIP into a fresh directory and returns the manifest's path.
func writeManifestFor(t *testing.T, args []string) string {
	t.Helper()
	dir := t.TempDir()
	if r := run(t, fakeHost(), append(slices.Clone(args), "--manifest-dir", dir)...); r.err != nil {
		t.Fatal(r.err)
	}
	return filepath.Join(dir, manifest.FileName)
}

func TestClassifyLocalVIP(t *testing.T) {
	primary := hostnet.Addr{Prefix: netip.MustParsePrefix("198.18.0.10/24"), Interface: "eth0"}
	secondary := primary
	secondary.Secondary = true
	deprecated := hostnet.Addr{Prefix: netip.MustParsePrefix("2001:db8::10/64"), Interface: "eth0", Deprecated: true}
	for _, tc := range []struct {
		name string
		v    localVIP
		want vipUse
	}{
		{"running hapod", localVIP{Addr: primary, Running: true}, vipHeld},
		{"older hapod listening", localVIP{Addr: secondary, Listening: true}, vipHeld},
		{"running beats the manifest", localVIP{Addr: secondary, Running: true, InManifest: true}, vipHeld},
		{"secondary, nobody serving", localVIP{Addr: secondary}, vipStale},
		{"deprecated IPv6, nobody serving", localVIP{Addr: deprecated}, vipStale},
		{"primary named by the manifest", localVIP{Addr: primary, InManifest: true}, vipStale},
		{"primary, no manifest", localVIP{Addr: primary}, vipNodeAddress},
	} {
		if got := tc.v.classify(); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

const kubeadmV1beta4 = clitest.Kubeadm

func TestKubeadmConfigFillsVIPPortAndBackend(t *testing.T) {
	tmp := t.TempDir()
	f := filepath.Join(tmp, "kubeadm.yaml")
	os.WriteFile(f, []byte(kubeadmV1beta4), 0o600)
	r := run(t, fakeHost(), "init", "--manifest-dir", tmp, "--kubeadm-config", f)
	if r.err != nil {
		t.Fatal(r.err)
	}
	for _, want := range []string{"VIP 198.18.0.10/32 on eth0", "proxy port 8443 -> 1 backend", "kubeadm init --config " + f} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	data, _ := os.ReadFile(filepath.Join(tmp, manifest.FileName))
	if !strings.Contains(string(data), "- --backend=198.18.0.11:6443") {
		t.Errorf("backend from localAPIEndpoint missing:\n%s", data)
	}
}

// TestKubeadmDNSEndpointWithVIP: a controlPlaneEndpoint that is a DNS
// name works once --vip says which address it stands for; the port still
// comes from the endpoint, and nothing is resolved.
func TestKubeadmDNSEndpointWithVIP(t *testing.T) {
	tmp := t.TempDir()
	f := filepath.Join(tmp, "kubeadm.yaml")
	os.WriteFile(f, []byte(strings.Replace(kubeadmV1beta4, "controlPlaneEndpoint: 198.18.0.10:8443", "controlPlaneEndpoint: api.lab.example:9443", 1)), 0o600)
	r := run(t, fakeHost(), "init", "--manifest-dir", tmp, "--kubeadm-config", f, "--vip", "198.18.0.10/24")
	if r.err != nil {
		t.Fatal(r.err)
	}
	for _, want := range []string{"VIP 198.18.0.10/24 on eth0", "proxy port 9443 -> 1 backend"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	// Without --vip it still stops, and says to pass --vip.
	r = run(t, fakeHost(), "init", "--manifest-dir", t.TempDir(), "--kubeadm-config", f)
	if r.err == nil || !strings.Contains(r.err.Error(), "use --vip") {
		t.Errorf("DNS endpoint without --vip: %v", r.err)
	}
}

// TestJoinKubeadmConfigOnly: a file with only a JoinConfiguration gives
// the VIP and port (discovery.bootstrapToken.apiServerEndpoint) and this
// node's backend (controlPlane.localAPIEndpoint), in v1beta3 and v1beta4.
func TestJoinKubeadmConfigOnly(t *testing.T) {
	node3 := fakeHost()
	node3.RouteInterface = func(netip.Addr) (string, error) { return "ens3", nil }
	node3.Addrs = func() ([]hostnet.Addr, error) {
		return []hostnet.Addr{{Prefix: netip.MustParsePrefix("198.18.0.13/24"), Interface: "ens3"}}, nil
	}
	join := func(version, endpoint string) string {
		return "apiVersion: kubeadm.k8s.io/" + version + "\nkind: JoinConfiguration\n" +
			"discovery:\n  bootstrapToken:\n    apiServerEndpoint: " + endpoint + "\n    token: abcdef.0123456789abcdef\n    unsafeSkipCAVerification: true\n" +
			"controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: 198.18.0.13\n    bindPort: 6443\n"
	}
	for _, version := range []string{"v1beta3", "v1beta4"} {
		t.Run(version, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "join.yaml")
			os.WriteFile(f, []byte(join(version, "198.18.0.10:8443")), 0o600)
			r := run(t, node3, "join", "--manifest-dir", dir, "--kubeadm-config", f)
			if r.err != nil {
				t.Fatalf("%v\n%s", r.err, r.stderr)
			}
			if want := "VIP 198.18.0.10/32 on ens3 (VRRPv3, VRID 10), proxy port 8443 -> 1 backend(s)"; !strings.Contains(r.stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, r.stdout)
			}
			data, _ := os.ReadFile(filepath.Join(dir, manifest.FileName))
			if !strings.Contains(string(data), "- --backend=198.18.0.13:6443") {
				t.Errorf("backend from localAPIEndpoint missing:\n%s", data)
			}
		})
	}
	// A JoinConfiguration cannot carry apiServer extraArgs (they are the
	// ClusterConfiguration's, which joining nodes download): its silence
	// on bind-address says nothing, and VIP:6443 is the endpoint kubeadm
	// uses by default. hapod takes it through the redirect.
	t.Run("endpoint on the apiservers' port", func(t *testing.T) {
		dir := t.TempDir()
		f := filepath.Join(dir, "join.yaml")
		os.WriteFile(f, []byte(join("v1beta4", "198.18.0.10:6443")), 0o600)
		r := run(t, node3, "join", "--manifest-dir", dir, "--kubeadm-config", f)
		if r.err != nil {
			t.Fatalf("%v\n%s", r.err, r.stderr)
		}
		data, _ := os.ReadFile(filepath.Join(dir, manifest.FileName))
		for _, want := range []string{"- --port=6443", "- --listen-port=9445", "- --backend=198.18.0.13:6443"} {
			if !strings.Contains(string(data), want) {
				t.Errorf("manifest lacks %q:\n%s", want, data)
			}
		}
		if want := "kubeadm join 198.18.0.10:6443 --control-plane"; !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	})
	t.Run("DNS name", func(t *testing.T) {
		dir := t.TempDir()
		f := filepath.Join(dir, "join.yaml")
		os.WriteFile(f, []byte(join("v1beta4", "api.lab.example:9443")), 0o600)
		r := run(t, node3, "join", "--manifest-dir", dir, "--kubeadm-config", f)
		if r.err == nil || !strings.Contains(r.err.Error(), "use --vip with the address api.lab.example resolves to") {
			t.Fatalf("without --vip: %v", r.err)
		}
		r = run(t, node3, "join", "--manifest-dir", dir, "--kubeadm-config", f, "--vip", "198.18.0.10/24")
		if r.err != nil || !strings.Contains(r.stdout, "VIP 198.18.0.10/24 on ens3 (VRRPv3, VRID 10), proxy port 9443") {
			t.Fatalf("with --vip: %v\n%s", r.err, r.stdout)
		}
	})
	t.Run("discovery at a node", func(t *testing.T) {
		dir := t.TempDir()
		f := filepath.Join(dir, "join.yaml")
		os.WriteFile(f, []byte(join("v1beta4", "198.18.0.11:6443")), 0o600)
		r := run(t, node3, append([]string{"join", "--manifest-dir", dir, "--kubeadm-config", f}, backends...)...)
		want := f + ": VIP is also this node's own address: JoinConfiguration.discovery.bootstrapToken.apiServerEndpoint 198.18.0.11:6443 is also --backend 198.18.0.11:6443; " +
			"hapod takes the VIP from it, so it must be the VIP, not a kube-apiserver's own address (or pass --vip)"
		if r.err == nil || r.err.Error() != want {
			t.Fatalf("error:\n%v\nwant:\n%s", r.err, want)
		}
	})
}

func TestVersionAndHelp(t *testing.T) {
	if r := run(t, fakeHost(), "version"); r.err != nil || r.stdout != "hapod v1.2.3\n" {
		t.Errorf("version: %q %v", r.stdout, r.err)
	}
	r := run(t, fakeHost(), "--help")
	for _, want := range []string{"Example", "hapod init " + exampleFlags + "\n", "kubeadm init --control-plane-endpoint 198.18.0.10 --upload-certs"} {
		if r.err != nil || !strings.Contains(r.stdout, want) {
			t.Errorf("hapod --help lacks %q: %v\n%s", want, r.err, r.stdout)
		}
	}
	r = run(t, fakeHost(), "init", "--help")
	for _, want := range []string{"--vip", "--backend", "--kubeadm-config", "Examples:", `(default: "6443")`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("init --help lacks %q", want)
		}
	}
	if r := run(t, fakeHost(), "completion", "bash"); r.err != nil || !strings.Contains(r.stdout, "complete -o default -F _hapod_complete hapod") {
		t.Errorf("completion bash: %v", r.err)
	}
}

// TestInitVIPFromDHCP: `hapod init --vip dhcp` leases first, writes the
// leased address into the manifest and into the kubeadm config (keeping a
// backup), and prints a join command carrying the lease.
func TestInitVIPFromDHCP(t *testing.T) {
	dir := t.TempDir()
	kcfg := filepath.Join(dir, "kubeadm.yaml")
	os.WriteFile(kcfg, []byte(kubeadmV1beta4), 0o600)
	r := run(t, fakeHost(), "init", "--manifest-dir", dir, "--vip", "dhcp", "--kubeadm-config", kcfg, "--cluster-name", "prod")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	vrid := config.DeriveVRIDFromName("prod")
	for _, want := range []string{"leased VIP 198.18.0.164/24 on eth0 from DHCP server 198.18.0.1", "set controlPlaneEndpoint 198.18.0.164:6443"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	data, _ := os.ReadFile(filepath.Join(dir, manifest.FileName))
	for _, want := range []string{"- --vip=198.18.0.164/24", "- --vip-dhcp=true", "- --cluster-name=prod", fmt.Sprintf("- --vrid=%d", vrid)} {
		if !strings.Contains(string(data), want) {
			t.Errorf("manifest lacks %q", want)
		}
	}
	if !strings.Contains(r.stdout, "hapod join --vip=198.18.0.164/24 --vip-dhcp=true --cluster-name=prod") {
		t.Errorf("join command does not carry the lease:\n%s", r.stdout)
	}
	if k, _ := os.ReadFile(kcfg); !strings.Contains(string(k), `controlPlaneEndpoint: "198.18.0.164:6443"`) {
		t.Errorf("kubeadm config not updated:\n%s", k)
	}
	if b, _ := os.ReadFile(kcfg + ".hapod-backup"); string(b) != kubeadmV1beta4 {
		t.Errorf("no backup of the original kubeadm config")
	}

	// Re-running init where hapod runs takes the printed address, not a
	// new lease; it sets the endpoint in a kubeadm config that lacks it.
	k3 := filepath.Join(t.TempDir(), "kubeadm.yaml")
	os.WriteFile(k3, []byte(kubeadmV1beta4), 0o600)
	noLease := fakeHost()
	noLease.LeaseVIP = func(context.Context, dhcpvip.Config) (dhcpvip.Lease, error) {
		t.Error("a re-run with --vip=ADDR --vip-dhcp leased")
		return dhcpvip.Lease{}, errors.New("no")
	}
	r = run(t, noLease, "init", "--manifest-dir", dir, "--vip=198.18.0.164/24", "--vip-dhcp", "--kubeadm-config", k3, "--cluster-name", "prod")
	if r.err != nil || !strings.Contains(r.stdout, "unchanged") {
		t.Errorf("re-run: %v\n%s", r.err, r.stdout)
	}
	if k, _ := os.ReadFile(k3); !strings.Contains(string(k), `controlPlaneEndpoint: "198.18.0.164:6443"`) {
		t.Errorf("re-run did not set the endpoint:\n%s", k)
	}

	// A run that fails at the manifest (a different one is there, no
	// --force) leaves its kubeadm config alone: no endpoint, no backup.
	k2 := filepath.Join(t.TempDir(), "kubeadm.yaml")
	os.WriteFile(k2, []byte(kubeadmV1beta4), 0o600)
	r = run(t, fakeHost(), "init", "--manifest-dir", dir, "--vip", "dhcp", "--kubeadm-config", k2, "--cluster-name", "other")
	if !errors.Is(r.err, manifest.ErrExists) {
		t.Errorf("init over a different manifest: %v", r.err)
	}
	if k, _ := os.ReadFile(k2); string(k) != kubeadmV1beta4 {
		t.Errorf("refused init changed the kubeadm config:\n%s", k)
	}
	if _, err := os.Stat(k2 + kubeadm.BackupSuffix); err == nil {
		t.Error("refused init made a backup of the kubeadm config")
	}

	// join never leases.
	if r := run(t, fakeHost(), "join", "--manifest-dir", t.TempDir(), "--vip", "dhcp", "--backend", "198.18.0.11:6443"); r.err == nil || !strings.Contains(r.err.Error(), "only 'hapod init' leases the VIP") {
		t.Errorf("join --vip dhcp: %v", r.err)
	}

	// No server: one clear line, nothing written.
	noServer := fakeHost()
	noServer.LeaseVIP = func(context.Context, dhcpvip.Config) (dhcpvip.Lease, error) {
		return dhcpvip.Lease{}, errors.New("no DHCP server answered on eth0 within 10s")
	}
	empty := filepath.Join(t.TempDir(), "m")
	r = run(t, noServer, "init", "--manifest-dir", empty, "--vip", "dhcp", "--backend", "198.18.0.11:6443")
	if r.err == nil || r.err.Error() != "--vip dhcp: no DHCP server answered on eth0 within 10s" {
		t.Errorf("no server: %v", r.err)
	}
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Error("no-server init touched the manifest dir")
	}
}

// TestConcurrentInit: `hapod init` runs racing with different settings
// do not both report "created": exactly one writes the manifest, the
// others refuse and show the difference, and the file is the winner's.
// The runs are separate processes, as two admins' commands are (in one
// process they would also share urfave/cli's global help flag).
// Issue 19, item 8.
func TestConcurrentInit(t *testing.T) {
	const runs = 8
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		dir := filepath.Join(t.TempDir(), "manifests")
		cmds := make([]*exec.Cmd, runs)
		outs := make([]*bytes.Buffer, runs)
		errOuts := make([]*bytes.Buffer, runs)
		for i := range runs {
			args := append([]string{"init", "--manifest-dir", dir, "--vip", "198.18.0.10/24", "--priority", fmt.Sprint(100 + i)}, backends...)
			cmd := exec.Command(self, args...)
			cmd.Env = append(os.Environ(), childEnv+"=1")
			outs[i], errOuts[i] = new(bytes.Buffer), new(bytes.Buffer)
			cmd.Stdout, cmd.Stderr = outs[i], errOuts[i]
			cmds[i] = cmd
		}
		for i, cmd := range cmds {
			if err := cmd.Start(); err != nil {
				t.Fatalf("run %d: %v", i, err)
			}
		}
		winner := -1
		for i, cmd := range cmds {
			err := cmd.Wait()
			stdout, stderr := outs[i].String(), errOuts[i].String()
			switch {
			case err == nil && strings.Contains(stdout, "created "):
				if winner >= 0 {
					t.Fatalf("round %d: runs %d and %d both created the manifest", round, winner, i)
				}
				winner = i
			case err != nil && strings.Contains(stderr, manifest.ErrExists.Error()) && strings.Contains(stderr, fmt.Sprintf("+    - --priority=%d", 100+i)):
			default:
				t.Fatalf("round %d: run %d: %v\nstdout:\n%s\nstderr:\n%s", round, i, err, stdout, stderr)
			}
		}
		got, err := os.ReadFile(filepath.Join(dir, manifest.FileName))
		if err != nil || winner < 0 || !strings.Contains(string(got), fmt.Sprintf("- --priority=%d\n", 100+winner)) {
			t.Fatalf("round %d: winner %d, manifest %v:\n%s", round, winner, err, got)
		}
	}
}

// TestKubeadmConfigPicksEndpointMode: init with a kubeadm config listens
// on the endpoint itself unless kube-apiserver holds that port on every
// address (kubeadm's default bind), where it takes the redirect; the
// output says which.
func TestKubeadmConfigPicksEndpointMode(t *testing.T) {
	cluster := func(endpoint, extra string) string {
		return "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 198.18.0.11\n  bindPort: 6443\n---\n" +
			"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: " + endpoint + "\n" + extra
	}
	for _, tt := range []struct {
		name, file string
		listen     string
		says       string
	}{
		{"no port: kubeadm's 6443, default bind", cluster("198.18.0.10", ""), "--listen-port=9445",
			"endpoint 198.18.0.10:6443: redirected by hapod's nftables rule to the proxy on port 9445"},
		{"6443, bind-address 0.0.0.0", cluster("198.18.0.10:6443", "apiServer:\n  extraArgs:\n  - name: bind-address\n    value: 0.0.0.0\n"), "--listen-port=9445",
			"redirected by hapod's nftables rule"},
		{"6443, a specific bind", cluster("198.18.0.10:6443", "apiServer:\n  extraArgs:\n  - name: bind-address\n    value: 198.18.0.11\n"), "--listen-port=6443",
			"endpoint 198.18.0.10:6443: the proxy listens there itself"},
		{"8443", cluster("198.18.0.10:8443", ""), "--listen-port=8443",
			"endpoint 198.18.0.10:8443: the proxy listens there itself"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "kubeadm.yaml")
			os.WriteFile(f, []byte(tt.file), 0o600)
			r := run(t, fakeHost(), "init", "--manifest-dir", dir, "--kubeadm-config", f)
			if r.err != nil {
				t.Fatalf("%v\n%s", r.err, r.stderr)
			}
			if !strings.Contains(r.stdout, tt.says) {
				t.Errorf("output lacks %q:\n%s", tt.says, r.stdout)
			}
			data, _ := os.ReadFile(filepath.Join(dir, manifest.FileName))
			if !strings.Contains(string(data), "- "+tt.listen+"\n") {
				t.Errorf("manifest lacks %s:\n%s", tt.listen, data)
			}
		})
	}
}

// TestInitDualStackSaysWhichEndpoint: with a VIP of each family, init
// says which one kubeadm's controlPlaneEndpoint is (the IPv4 one, the
// primary), that the other reaches the same apiservers, puts the other
// in the apiservers' certificates through kubeadm's flag, and prints a
// join line carrying both VIPs (issue 22).
func TestInitDualStackSaysWhichEndpoint(t *testing.T) {
	r := run(t, fakeHost(), "init", "--manifest-dir", t.TempDir(), "--vip", "2001:db8::10/64", "--vip", "198.18.0.10/24")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	for _, want := range []string{
		"VIPs 198.18.0.10/24 (IPv4, VRID 10) and 2001:db8::10/64 (IPv6, VRID 10) on eth0 (VRRPv3), proxy port 9445 -> 1 backend(s)\n",
		"hapod: endpoint 198.18.0.10:6443: redirected by hapod's nftables rule",
		"hapod: also [2001:db8::10]:6443: the same kube-apiservers through the same proxy\n",
		"  kubeadm init --control-plane-endpoint 198.18.0.10:6443 --apiserver-cert-extra-sans=2001:db8::10 --upload-certs\n",
		"198.18.0.10:6443 is the controlPlaneEndpoint: every kubeconfig kubeadm writes names it. [2001:db8::10]:6443 leads to the same kube-apiservers, for clients of the other VIPs; --apiserver-cert-extra-sans puts them in",
		"  hapod join --vip=2001:db8::10/64 --vip=198.18.0.10/24 --vrid=10 --port=6443\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "the first backend is this node's kube-apiserver 198.18.0.11:6443") {
		t.Errorf("stderr: %s", r.stderr)
	}
}

// TestKubeadmDualStackJoinLine: `hapod init --kubeadm-config` on a
// dual-stack config with an IPv6 VIP beside the endpoint's prints the
// kubeadm step, which VIP is the endpoint, and a join line that, run on
// node 2, writes the manifest `hapod join --kubeadm-config` writes there
// from node 2's JoinConfiguration and the same VIPs (issue 22).
func TestKubeadmDualStackJoinLine(t *testing.T) {
	vips := []string{"--vip", "198.18.0.10/24", "--vip", "2001:db8::10/64"}
	r := run(t, fakeHost(), append([]string{"init", "--manifest-dir", t.TempDir(), "--kubeadm-config", "testdata/dual-stack-init.yaml"}, vips...)...)
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	for _, want := range []string{
		"  kubeadm init --config testdata/dual-stack-init.yaml --upload-certs\n",
		"198.18.0.10:6443 is the controlPlaneEndpoint: every kubeconfig kubeadm writes names it. [2001:db8::10]:6443 leads to the same kube-apiservers, for clients of the other VIPs; " +
			"list them in its ClusterConfiguration.apiServer.certSANs, so that the kube-apiservers' certificates name them.\n",
		"  hapod join --vip=198.18.0.10/24 --vip=2001:db8::10/64 --vrid=10 --port=6443\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stderr, "warning") || strings.Contains(r.stderr, "note:") {
		t.Errorf("the VIPs are in certSANs, both families have one: stderr %s", r.stderr)
	}
	join := printedHapodJoin(t, r.stdout)
	node2 := fakeHost()
	node2.Addrs = func() ([]hostnet.Addr, error) {
		return []hostnet.Addr{
			{Prefix: netip.MustParsePrefix("198.18.0.12/24"), Interface: "eth0"},
			{Prefix: netip.MustParsePrefix("2001:db8::12/64"), Interface: "eth0"},
			{Prefix: netip.MustParsePrefix("fe80::12/64"), Interface: "eth0"},
		}, nil
	}
	printed, viaFile := t.TempDir(), t.TempDir()
	if r := run(t, node2, append(join, "--manifest-dir", printed)...); r.err != nil {
		t.Fatalf("the printed line on node 2: %v", r.err)
	}
	r = run(t, node2, append([]string{"join", "--manifest-dir", viaFile, "--kubeadm-config", "testdata/dual-stack-join.yaml"}, vips...)...)
	if r.err != nil {
		t.Fatalf("join --kubeadm-config on node 2: %v", r.err)
	}
	a, _ := os.ReadFile(filepath.Join(printed, manifest.FileName))
	b, _ := os.ReadFile(filepath.Join(viaFile, manifest.FileName))
	if d := manifest.Diff(string(a), string(b)); len(a) == 0 || d != "" {
		t.Errorf("join --kubeadm-config differs from the printed line:\n%s", d)
	}
	if !strings.Contains(string(a), "- --backend=198.18.0.12:6443\n") || !strings.Contains(r.stdout, "kubeadm join 198.18.0.10:6443 --control-plane") {
		t.Errorf("node 2's own backend or the endpoint missing:\n%s\n%s", a, r.stdout)
	}
}

// printedHapodJoin returns the arguments of the `hapod join` line in
// init's output.
func printedHapodJoin(t *testing.T, out string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "hapod join ") {
			return strings.Fields(line)[1:]
		}
	}
	t.Fatalf("no join command in:\n%s", out)
	return nil
}
