package kubeadm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/status"
)

const (
	// apiserverPort is kube-apiserver's port on every node (kubeadm's
	// default), and the endpoint's port of a redirect cluster.
	apiserverPort = 6443
	// listenerPort is the endpoint's port of a cluster where hapod's
	// proxy listens on the VIP itself (--port 8443, kubeadm's HA guide's).
	listenerPort = 8443
)

// cluster is three control-plane nodes and a client on one lab bridge, with
// hapod's VIP as the control-plane endpoint.
type cluster struct {
	t     *testing.T
	s     settings
	lab   *lab.Lab
	nodes []*node
	// vip is the VIP with the lab's prefix length, as `hapod init --vip`
	// takes it.
	vip netip.Prefix
	// serviceCIDR and podCIDR are inside 198.18.0.0/15 and apart from the
	// lab's own /24.
	serviceCIDR, podCIDR string
	// unicast makes hapod use --peer (unicast VRRP) instead of multicast.
	unicast bool
	// redirect makes the endpoint VIP:6443, kubeadm's default (no port in
	// controlPlaneEndpoint): hapod's proxy listens on its own port and
	// VIP:6443 reaches it through hapod's nftables redirect, the
	// kube-apiservers keeping 0.0.0.0:6443. Otherwise the endpoint is
	// VIP:8443, where the proxy listens itself.
	redirect bool
	// hapodArgs is each node's `hapod init`/`join` command line, without the
	// binary, as it was run: the upgrade re-runs it.
	hapodArgs map[*node][]string
	// printedHapodJoin is the `hapod join` line `hapod init` printed,
	// without "hapod".
	printedHapodJoin []string
	// firstMirror reports node 1's mirror pod (watchMirrorPod).
	firstMirror <-chan mirrorResult
	// joinCommand is the `kubeadm join` line kubeadm init printed for
	// control-plane nodes, without "kubeadm".
	joinCommand []string
	// crashed is the node holderCrash crashed last, until it is back.
	crashed *node
}

// newCluster builds the lab and three nodes with containerd running, the
// images imported and kubelet supervised (crash-looping until kubeadm
// writes its config, as on a fresh host).
func newCluster(t *testing.T, s settings, unicast, redirect bool) *cluster {
	t.Helper()
	start := time.Now()
	l := lab.New(t, 3)
	if err := removeStaleCgroups(); err != nil {
		t.Logf("stale cgroups: %v", err)
	}
	c := &cluster{t: t, s: s, lab: l, vip: l.VIP4Prefix(0), unicast: unicast, redirect: redirect, hapodArgs: map[*node][]string{}}
	// The lab's /24 is in 198.18.0.0/16 or 198.19.0.0/16; the cluster's
	// ranges go in the other one.
	other := 19
	if l.Prefix4.Addr().As4()[1] == 19 {
		other = 18
	}
	c.serviceCIDR = fmt.Sprintf("198.%d.0.0/20", other)
	c.podCIDR = fmt.Sprintf("198.%d.64.0/18", other)

	hosts := "127.0.0.1 localhost\n::1 localhost ip6-localhost\n"
	for i, ln := range l.Nodes {
		hosts += fmt.Sprintf("%s cp%d\n", ln.IPv4, i+1)
	}
	state := t.TempDir()
	for i, ln := range l.Nodes {
		c.nodes = append(c.nodes, newNode(t, s, ln, fmt.Sprintf("cp%d", i+1), l.ID, state, hosts))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(c.nodes))
	for i, n := range c.nodes {
		wg.Go(func() { errs[i] = n.startContainerd(t.Context()) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		n.startKubelet()
	}
	t.Logf("lab %s: nodes %s, %s, %s; VIP %s; services %s, pods %s; containerd up and images imported in %v",
		l.ID, c.nodes[0].IPv4, c.nodes[1].IPv4, c.nodes[2].IPv4, c.vip, c.serviceCIDR, c.podCIDR, time.Since(start).Round(100*time.Millisecond))
	return c
}

// endpoint is the cluster's endpoint: VIP:6443 with the redirect, else
// VIP:8443.
func (c *cluster) endpoint() netip.AddrPort {
	if c.redirect {
		return netip.AddrPortFrom(c.vip.Addr(), apiserverPort)
	}
	return netip.AddrPortFrom(c.vip.Addr(), listenerPort)
}

// controlPlaneEndpoint is what the kubeadm config says: the bare VIP
// with the redirect (kubeadm then uses 6443, as `kubeadm init
// --control-plane-endpoint VIP` does), else VIP:8443.
func (c *cluster) controlPlaneEndpoint() string {
	if c.redirect {
		return c.vip.Addr().String()
	}
	return c.endpoint().String()
}

// backendFlags are --backend flags for every node's kube-apiserver.
func (c *cluster) backendFlags() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, "--backend="+netip.AddrPortFrom(n.IPv4, apiserverPort).String())
	}
	return out
}

// peerFlags are --peer flags for the nodes other than self (unicast only).
func (c *cluster) peerFlags(self *node) []string {
	var out []string
	if !c.unicast {
		return nil
	}
	for _, n := range c.nodes {
		if n != self {
			out = append(out, "--peer="+n.IPv4.String())
		}
	}
	return out
}

// kubeletExtraArgs are the per-node kubelet flags: its own cgroup root and
// its lab address (the namespace has no default route to pick one from).
func (n *node) kubeletArgsYAML() string {
	return fmt.Sprintf(`  kubeletExtraArgs:
  - name: cgroup-root
    value: %s
  - name: node-ip
    value: %s
`, n.cgroupRoot, n.IPv4)
}

// preflightIgnored is every kubeadm preflight error the tests ignore, each
// forced by this machine rather than by anything hapod does.
var preflightIgnored = []string{
	// The machine runs cgroup v1 (hybrid); kubelet 1.37 accepts it only
	// with failCgroupV1: false, and the system verification refuses it.
	"SystemVerification",
}

// skippedPhases are the kubeadm init phases the tests skip: the lab has no
// CNI and no images for CoreDNS and kube-proxy (nodes stay NotReady, which
// nothing here needs).
var skippedPhases = []string{"addon/coredns", "addon/kube-proxy"}

// initConfig is node n's kubeadm config for `kubeadm init` (v1beta4: 1.37
// reads no other version).
func (c *cluster) initConfig(n *node) string {
	return fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: %s
  bindPort: %d
nodeRegistration:
  name: %s
  imagePullPolicy: Never
%s  ignorePreflightErrors: [%s]
skipPhases: [%s]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: %s
controlPlaneEndpoint: "%s"
imageRepository: %s
networking:
  serviceSubnet: %s
  podSubnet: %s
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
`, n.IPv4, apiserverPort, n.name, n.kubeletArgsYAML(), strings.Join(preflightIgnored, ", "), strings.Join(skippedPhases, ", "),
		c.s.version, c.controlPlaneEndpoint(), c.s.repo, c.serviceCIDR, c.podCIDR)
}

// joinConfig is node n's kubeadm JoinConfiguration, built from the join
// command kubeadm init printed.
func (c *cluster) joinConfig(t *testing.T, n *node) string {
	t.Helper()
	flag := func(name string) string {
		i := slices.Index(c.joinCommand, name)
		if i < 0 || i+1 >= len(c.joinCommand) {
			t.Fatalf("kubeadm init's join command has no %s: %q", name, c.joinCommand)
		}
		return c.joinCommand[i+1]
	}
	return fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: "%s"
    token: %s
    caCertHashes: [%s]
controlPlane:
  localAPIEndpoint:
    advertiseAddress: %s
    bindPort: %d
  certificateKey: %s
nodeRegistration:
  name: %s
  imagePullPolicy: Never
%s  ignorePreflightErrors: [%s]
`, c.endpoint(), flag("--token"), flag("--discovery-token-ca-cert-hash"), n.IPv4, apiserverPort,
		flag("--certificate-key"), n.name, n.kubeletArgsYAML(), strings.Join(preflightIgnored, ", "))
}

// writeFile writes a file in the node's state directory (the administrator's
// home, say) and returns its path, which is the same inside the node.
func (n *node) writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := n.hostPath(name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// hapod runs the hapod binary in node n with args (a subcommand and its
// flags), records the command line for later re-runs, and returns stdout and
// stderr together.
func (c *cluster) hapod(t *testing.T, n *node, args ...string) string {
	t.Helper()
	out := n.must(t, hapodBin, args...)
	c.hapodArgs[n] = args
	t.Logf("%s$ hapod %s\n%s", n.name, strings.Join(args, " "), indent(out))
	return out
}

// printedJoin is the `hapod join` line from `hapod init`'s output, without
// "hapod".
func printedJoin(t *testing.T, out string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "hapod" && f[1] == "join" {
			return f[1:]
		}
	}
	t.Fatalf("hapod init printed no 'hapod join' line:\n%s", out)
	return nil
}

// printedKubeadmJoin is the control-plane `kubeadm join` command from
// kubeadm init's output (its lines joined at the trailing backslashes),
// without "kubeadm".
func printedKubeadmJoin(t *testing.T, out string) []string {
	t.Helper()
	i := strings.Index(out, "kubeadm join ")
	if i < 0 {
		t.Fatalf("kubeadm init printed no join command:\n%s", out)
	}
	var words []string
	for _, line := range strings.Split(out[i:], "\n") {
		line = strings.TrimSpace(line)
		cont := strings.HasSuffix(line, `\`)
		words = append(words, strings.Fields(strings.TrimSuffix(line, `\`))...)
		if !cont {
			break
		}
	}
	if !slices.Contains(words, "--control-plane") {
		t.Fatalf("kubeadm init's first join command is not the control-plane one: %q", words)
	}
	return words[1:]
}

// kubeadm runs kubeadm in node n, logs its output's last lines, and returns
// the output.
func (c *cluster) kubeadm(t *testing.T, n *node, args ...string) string {
	t.Helper()
	start := time.Now()
	out, err := n.run(t.Context(), "kubeadm", args...)
	if err != nil {
		t.Fatalf("%v after %v\n%s", err, time.Since(start).Round(100*time.Millisecond), out)
	}
	t.Logf("%s$ kubeadm %s  (%v)\n%s", n.name, strings.Join(args, " "), time.Since(start).Round(100*time.Millisecond), indent(lastLines(out, 6)))
	return out
}

// kubectl runs kubectl with admin.conf in node n (its server is the VIP).
func (c *cluster) kubectl(ctx context.Context, n *node, args ...string) (string, error) {
	return n.run(ctx, "kubectl", append([]string{"--kubeconfig=/etc/kubernetes/admin.conf", "--request-timeout=5s"}, args...)...)
}

// waitKubectl retries kubectl until it succeeds and cond holds for its
// output, and returns that output.
func (c *cluster) waitKubectl(t *testing.T, n *node, timeout time.Duration, what string, cond func(string) bool, args ...string) string {
	t.Helper()
	var out string
	var err error
	deadline := time.Now().Add(timeout)
	for {
		out, err = c.kubectl(t.Context(), n, args...)
		if err == nil && cond(out) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s: kubectl %s: %v\n%s", timeout, what, strings.Join(args, " "), err, out)
		}
		time.Sleep(time.Second)
	}
}

// holders is the nodes whose interface holds the VIP now.
func (c *cluster) holders() []*node {
	var out []*node
	for _, n := range c.nodes {
		if n.HasAddr(c.vip.Addr()) {
			out = append(out, n)
		}
	}
	return out
}

// holder waits for exactly one node to hold the VIP and returns it.
func (c *cluster) holder(t *testing.T) *node {
	t.Helper()
	var h []*node
	lab.WaitFor(t, 30*time.Second, "exactly one node holding the VIP", func() bool {
		h = c.holders()
		return len(h) == 1
	})
	return h[0]
}

// logHapod logs the end of every node's hapod log: what the pods saw
// when clients failed.
func (c *cluster) logHapod(t *testing.T, lines int) {
	t.Helper()
	for _, n := range c.nodes {
		logs, _ := filepath.Glob(n.hostPath("/var/log/pods/kube-system_hapod-*/hapod/*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("%s: hapod's log %s:\n%s", n.name, strings.TrimPrefix(l, n.state), indent(lastLines(string(b), lines)))
		}
	}
}

// names is the nodes' names, for messages.
func names(ns []*node) string {
	var out []string
	for _, n := range ns {
		out = append(out, n.name)
	}
	return "[" + strings.Join(out, " ") + "]"
}

// caPool is the cluster CA from node n (kubeadm wrote it at init or join).
func caPool(t *testing.T, n *node) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(n.hostPath("/etc/kubernetes/pki/ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no certificate in ca.crt", n.name)
	}
	return pool
}

// httpClient makes HTTPS requests from a lab node's namespace, one new
// connection per request (what a fresh kubectl does), with the given
// per-request timeout. A nil pool skips verification.
func httpClient(from *lab.Node, pool *x509.CertPool, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return from.Dial(ctx, network, addr)
			},
			TLSClientConfig:   &tls.Config{RootCAs: pool, InsecureSkipVerify: pool == nil},
			DisableKeepAlives: true,
		},
	}
}

// readyzProbe is a client of the API endpoint in its own namespace: an
// HTTPS GET https://VIP:8443/readyz with a 1 s timeout every 100 ms, each
// on a new connection, verified against the cluster CA.
type readyzProbe struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	s      []lab.Sample
}

// startReadyzProbe starts the probe from the lab's client.
func (c *cluster) startReadyzProbe(t *testing.T) *readyzProbe {
	t.Helper()
	return c.startReadyzProbeTo(t, c.endpoint())
}

// startReadyzProbeTo is startReadyzProbe against target, e.g. one node's
// kube-apiserver directly: a control that shows what the apiservers
// themselves answered, without the VIP and the proxy.
func (c *cluster) startReadyzProbeTo(t *testing.T, target netip.AddrPort) *readyzProbe {
	t.Helper()
	client := httpClient(c.lab.Client, caPool(t, c.nodes[0]), time.Second)
	url := "https://" + target.String() + "/readyz"
	ctx, cancel := context.WithCancel(context.Background())
	p := &readyzProbe{cancel: cancel}
	p.wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case at := <-tick.C:
				p.wg.Go(func() { p.add(attempt(client, url, at)) })
			}
		}
	})
	t.Cleanup(func() { p.stop() })
	return p
}

// attempt is one GET; OK means 200.
func attempt(client *http.Client, url string, at time.Time) lab.Sample {
	resp, err := client.Get(url)
	s := lab.Sample{At: at, RTT: time.Since(at)}
	if err != nil {
		s.Err = err
		return s
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.Err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(lastLines(string(body), 2)))
		return s
	}
	s.OK = true
	return s
}

func (p *readyzProbe) add(s lab.Sample) {
	p.mu.Lock()
	p.s = append(p.s, s)
	p.mu.Unlock()
}

// stop ends the probe and summarises it.
func (p *readyzProbe) stop() lab.ProbeResult {
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return lab.Summarize(p.s)
}

// snapshot summarises the samples so far without stopping.
func (p *readyzProbe) snapshot() lab.ProbeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return lab.Summarize(p.s)
}

// report is a probe result as a user would read it: requests, failures,
// outages and the first distinct errors.
func report(r lab.ProbeResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests, %d failed, longest client-observed outage %v", r.Attempts, r.Failures, r.LongestOutage().Round(time.Millisecond))
	seen := map[string]bool{}
	for _, s := range r.Samples {
		if s.OK || len(seen) >= 3 {
			continue
		}
		msg := s.Err.Error()
		if !seen[msg] {
			seen[msg] = true
			fmt.Fprintf(&b, "\n    %s: %s", s.At.Format("15:04:05.000"), msg)
		}
	}
	return b.String()
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// hapodStatus reads the node's hapod /status (its status server on the
// node's loopback).
func (n *node) hapodStatus(ctx context.Context) (status.Report, error) {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: n.Dial}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+config.DefaultStatusAddr.String()+"/status", nil)
	if err != nil {
		return status.Report{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return status.Report{}, err
	}
	defer resp.Body.Close()
	var r status.Report
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return status.Report{}, fmt.Errorf("%s /status: %w", n.name, err)
	}
	return r, nil
}
