package manifest

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/hapod/hapod/internal/release"
	"github.com/hapod/hapod/pkg/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in manifests/")

const testImage = "ghcr.io/hapod/hapod:v0.0.0-test"

// The golden files are the repository's example manifests: `make
// manifests` renders the same inputs through the CLI (an unstamped build,
// the image below) and `make check-manifests` compares; this test
// compares Render's output for them directly.
const (
	goldenDir   = "../../manifests"
	goldenImage = "ghcr.io/hapod/hapod:latest"
)

func cfg(t testing.TB, mutate func(*config.Config)) config.Config {
	t.Helper()
	c := config.Default()
	c.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.18.0.10/24")}
	c.VIP.Interface = "eth0"
	c.Proxy.Backends = []netip.AddrPort{
		netip.MustParseAddrPort("198.18.0.11:6443"),
		netip.MustParseAddrPort("198.18.0.12:6443"),
		netip.MustParseAddrPort("198.18.0.13:6443"),
	}
	if mutate != nil {
		mutate(&c)
	}
	c.Complete()
	if err := c.Validate(); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	return c
}

var goldenCases = []struct {
	name   string
	mutate func(*config.Config)
}{
	{"ipv4-multicast", nil},
	{"ipv4-unicast", func(c *config.Config) {
		c.VRRP.Peers = []netip.Addr{netip.MustParseAddr("198.18.0.12"), netip.MustParseAddr("198.18.0.13")}
	}},
	{"ipv6", func(c *config.Config) {
		c.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("2001:db8::10/64")}
		c.Proxy.Backends = []netip.AddrPort{
			netip.MustParseAddrPort("[2001:db8::11]:6443"),
			netip.MustParseAddrPort("[2001:db8::12]:6443"),
			netip.MustParseAddrPort("[2001:db8::13]:6443"),
		}
	}},
	{"vrrpv2-password", func(c *config.Config) {
		c.VRRP.Version = 2
		c.VRRP.AuthPassFile = "/etc/hapod/vrrp-pass"
	}},
	// Issue 22: a VIP of each family, one virtual router each.
	{"dual-stack", func(c *config.Config) {
		c.VIP.Prefixes = append(c.VIP.Prefixes, netip.MustParsePrefix("2001:db8::10/64"))
	}},
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render(cfg(t, tc.mutate), goldenImage, release.Unstamped)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(goldenDir, tc.name+".yaml")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run make manifests)", err)
			}
			if string(got) != string(want) {
				t.Errorf("%s differs from the generator's output (make manifests):\n%s", path, Diff(string(want), string(got)))
			}
		})
	}
}

// TestPodConventions decodes the rendered YAML strictly into a corev1.Pod
// and checks every property the static pod must have.
func TestPodConventions(t *testing.T) {
	c := cfg(t, func(c *config.Config) {
		c.VRRP.Version = 2
		c.VRRP.AuthPassFile = "/etc/hapod/vrrp-pass"
	})
	data, err := Render(c, testImage, "test")
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(data, &pod); err != nil {
		t.Fatalf("strict decode: %v", err)
	}
	s := pod.Spec
	check := func(what string, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("%s: wrong", what)
		}
	}
	check("apiVersion/kind", pod.APIVersion == "v1" && pod.Kind == "Pod")
	check("namespace", pod.Namespace == "kube-system")
	check("labels", reflect.DeepEqual(pod.Labels, map[string]string{"component": "hapod", "tier": "control-plane"}))
	check("hostNetwork", s.HostNetwork)
	check("priorityClassName", s.PriorityClassName == "system-node-critical")
	check("seccomp", s.SecurityContext.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault)
	check("one container", len(s.Containers) == 1)
	ct := s.Containers[0]
	check("image", ct.Image == testImage)
	check("imagePullPolicy", ct.ImagePullPolicy == corev1.PullIfNotPresent)
	check("command", reflect.DeepEqual(ct.Command, []string{"/hapod"}))
	check("args", reflect.DeepEqual(ct.Args, append([]string{"run"}, c.Args()...)))
	sc := ct.SecurityContext
	check("cap add", reflect.DeepEqual(sc.Capabilities.Add, []corev1.Capability{"NET_ADMIN", "NET_RAW"}))
	check("cap drop", reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}))
	check("not privileged", sc.Privileged == nil || !*sc.Privileged)
	check("no privilege escalation", sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation)
	check("read-only root", sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem)
	check("requests", !ct.Resources.Requests.Cpu().IsZero() && !ct.Resources.Requests.Memory().IsZero())
	lp := ct.LivenessProbe
	check("liveness probe", lp != nil && lp.HTTPGet != nil && lp.HTTPGet.Path == "/healthz" &&
		lp.HTTPGet.Host == "127.0.0.1" && lp.HTTPGet.Port.IntValue() == int(config.DefaultStatusAddr.Port()))
	check("a read-only mount of the password file", len(ct.VolumeMounts) > 0 &&
		ct.VolumeMounts[0].MountPath == "/etc/hapod/vrrp-pass" && ct.VolumeMounts[0].ReadOnly)
	check("hostPath File volume", len(s.Volumes) > 0 && s.Volumes[0].HostPath != nil &&
		s.Volumes[0].HostPath.Path == "/etc/hapod/vrrp-pass" && *s.Volumes[0].HostPath.Type == corev1.HostPathFile)
	check("nothing under /etc/kubernetes but kubelet.conf", !strings.Contains(string(data), "path: /etc/kubernetes\n") &&
		!strings.Contains(string(data), "admin.conf"))
	if strings.Contains(string(data), "privileged") {
		t.Error("manifest mentions privileged")
	}
}

func TestPodMountsHealthCA(t *testing.T) {
	const ca = "/etc/kubernetes/pki/ca.crt"
	s := Pod(cfg(t, func(c *config.Config) {
		c.Health.CAFile = ca
		c.Membership.Discover = false
	}), testImage).Spec
	m := s.Containers[0].VolumeMounts
	if len(m) != 1 || m[0].MountPath != ca || !m[0].ReadOnly || m[0].Name != "health-ca" {
		t.Errorf("mounts = %+v, want %s read-only", m, ca)
	}
	v := s.Volumes
	if len(v) != 1 || v[0].Name != "health-ca" || v[0].HostPath == nil || v[0].HostPath.Path != ca || *v[0].HostPath.Type != corev1.HostPathFile {
		t.Errorf("volumes = %+v, want the hostPath file %s", v, ca)
	}
}

// With --discover the pod mounts the node identity read-only (kubelet.conf
// and the kubelet's certificate directory, nothing else of
// /etc/kubernetes) and the state directory read-write; without, none.
func TestPodMountsMembership(t *testing.T) {
	s := Pod(cfg(t, nil), testImage).Spec
	type mount struct {
		name, path string
		readOnly   bool
		typ        corev1.HostPathType
	}
	var got []mount
	for i, m := range s.Containers[0].VolumeMounts {
		v := s.Volumes[i]
		if v.Name != m.Name || v.HostPath == nil || v.HostPath.Path != m.MountPath {
			t.Fatalf("mount %+v has volume %+v", m, v)
		}
		got = append(got, mount{m.Name, m.MountPath, m.ReadOnly, *v.HostPath.Type})
	}
	want := []mount{
		{"kubeconfig", "/etc/kubernetes/kubelet.conf", true, corev1.HostPathFileOrCreate},
		{"kubelet-pki", "/var/lib/kubelet/pki", true, corev1.HostPathDirectoryOrCreate},
		{"state", "/var/lib/hapod", false, corev1.HostPathDirectoryOrCreate},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mounts\n%+v\nwant\n%+v", got, want)
	}
	s = Pod(cfg(t, func(c *config.Config) { c.Membership.Discover = false }), testImage).Spec
	if len(s.Volumes) != 0 || len(s.Containers[0].VolumeMounts) != 0 {
		t.Errorf("--discover=false still mounts %+v", s.Volumes)
	}
}

func TestPodLowPortAddsBindCapability(t *testing.T) {
	c := cfg(t, func(c *config.Config) { c.Proxy.Port = 443 })
	caps := Pod(c, testImage).Spec.Containers[0].SecurityContext.Capabilities.Add
	if !reflect.DeepEqual(caps, []corev1.Capability{"NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"}) {
		t.Errorf("caps = %v", caps)
	}
	// Redirected to a high port, the endpoint binds nothing itself.
	c = cfg(t, func(c *config.Config) { c.Proxy.Port, c.Proxy.ListenPort = 443, 9445 })
	caps = Pod(c, testImage).Spec.Containers[0].SecurityContext.Capabilities.Add
	if !reflect.DeepEqual(caps, []corev1.Capability{"NET_ADMIN", "NET_RAW"}) {
		t.Errorf("redirected 443: caps = %v, want no NET_BIND_SERVICE", caps)
	}
}

func TestPodGracePeriodCoversShutdown(t *testing.T) {
	// hapod run exits within a second of SIGTERM (e2e TestFailover checks
	// it); the grace period leaves slack, but not kubelet's default 30 s,
	// which would keep a hung pod's node out of the group that long.
	if g := *Pod(cfg(t, nil), testImage).Spec.TerminationGracePeriodSeconds; g < 2 || g > 10 {
		t.Errorf("grace = %ds, want a few seconds", g)
	}
}

func TestProbeHostForWildcardStatus(t *testing.T) {
	c := cfg(t, func(c *config.Config) { c.Status.Addr = netip.MustParseAddrPort("[::]:10270") })
	if h := Pod(c, testImage).Spec.Containers[0].LivenessProbe.HTTPGet.Host; h != "::1" {
		t.Errorf("probe host = %q, want ::1", h)
	}
}

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "manifests")
	a := []byte("a: 1\n")
	b := []byte("a: 2\n")

	path, out, err := Write(dir, a, false)
	if err != nil || out != Created || path != filepath.Join(dir, FileName) {
		t.Fatalf("first write: %v %v %v", path, out, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if _, out, err = Write(dir, a, false); err != nil || out != Unchanged {
		t.Fatalf("second identical write: %v %v", out, err)
	}

	_, _, err = Write(dir, b, false)
	var de *DiffError
	if !errors.As(err, &de) || !errors.Is(err, ErrExists) || de.Diff != "-a: 1\n+a: 2\n" {
		t.Fatalf("different content without force: %v (%+v)", err, de)
	}
	if got, _ := os.ReadFile(path); string(got) != string(a) {
		t.Errorf("refused write changed the file to %q", got)
	}

	if _, out, err = Write(dir, b, true); err != nil || out != Updated {
		t.Fatalf("forced write: %v %v", out, err)
	}
	if got, _ := os.ReadFile(path); string(got) != string(b) {
		t.Errorf("forced write left %q", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only %s (no temp files left)", len(entries), FileName)
	}
}

func TestWriteFailsCleanly(t *testing.T) {
	parent := t.TempDir()
	notDir := filepath.Join(parent, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Write(notDir, []byte("x"), false); err == nil {
		t.Fatal("writing under a regular file succeeded")
	}
	if _, _, err := Write(filepath.Join(notDir, "sub"), []byte("x"), false); err == nil {
		t.Fatal("writing under a regular file's child succeeded")
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 {
		t.Errorf("left %d entries behind", len(entries))
	}
}

func TestDiff(t *testing.T) {
	got := Diff("a\nb\nc\n", "a\nB\nc\nd\n")
	want := "-b\n+B\n+d\n"
	if got != want {
		t.Errorf("Diff = %q, want %q", got, want)
	}
	if Diff("same\n", "same\n") != "" {
		t.Error("Diff of equal texts is not empty")
	}
}

func TestCheckImage(t *testing.T) {
	for _, ok := range []string{
		"ghcr.io/hapod/hapod:dev", "hapod", "hapod:v1.2.3", "localhost:5000/hapod:test",
		"registry.example.com/team/hapod@sha256:" + strings.Repeat("ab", 32),
		"ghcr.io/hapod/hapod:v1@sha256:" + strings.Repeat("0", 64), "[2001:db8::1]:5000/hapod:x",
	} {
		if err := CheckImage(ok); err != nil {
			t.Errorf("CheckImage(%q) = %v, want nil", ok, err)
		}
	}
	for image, want := range map[string]string{
		"":                          "must not be empty",
		"ghcr.io/hapod/hapod:dev\n": "control character '\\n'",
		"hapod\x1b[2J":              "control character",
		"ghcr.io/hapod/hapod dev":   "must not contain a space",
		"ghcr.io/Hapod/hapod":       "not an image reference",
		"hapod:":                    "not an image reference",
		"hapod@sha256:abc":          "not an image reference",
		strings.Repeat("a", 256):    "at most 255",
	} {
		if err := CheckImage(image); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckImage(%q) = %v, want %q", image, err, want)
		}
	}
}

// TestWriteConcurrent: writers racing to create the manifest with
// different content (two `hapod init` with different settings) do not
// both succeed: exactly one creates it, every other one reports the
// difference, and the file holds the winner's bytes. Issue 19, item 8.
func TestWriteConcurrent(t *testing.T) {
	const writers = 16
	for round := range 20 {
		dir := t.TempDir()
		var wg sync.WaitGroup
		start := make(chan struct{})
		outcomes := make([]Outcome, writers)
		errs := make([]error, writers)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, outcomes[i], errs[i] = Write(dir, []byte(fmt.Sprintf("writer %d\n", i)), false)
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for i := range writers {
			switch {
			case errs[i] == nil && outcomes[i] == Created:
				if winner >= 0 {
					t.Fatalf("round %d: writers %d and %d both created the manifest", round, winner, i)
				}
				winner = i
			case errors.Is(errs[i], ErrExists):
			default:
				t.Fatalf("round %d: writer %d: %v %v, want created or ErrExists", round, i, outcomes[i], errs[i])
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody created the manifest", round)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, FileName)); string(got) != fmt.Sprintf("writer %d\n", winner) {
			t.Fatalf("round %d: manifest %q, want writer %d's", round, got, winner)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Fatalf("round %d: %d files left in the directory, want 1", round, len(entries))
		}
	}
}
