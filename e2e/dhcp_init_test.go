package e2e

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/hapod/hapod/e2e/lab"
	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/dhcpvip"
	"github.com/hapod/hapod/pkg/manifest"
)

// TestInitJoinRunWithDHCPVIP is the whole `--vip dhcp` story with the real
// commands: `hapod init --vip dhcp` leases the VIP from dnsmasq and writes
// it into the manifest; the printed `hapod join` runs on the other nodes;
// `hapod run` with each manifest's args holds the VIP; the holder renews
// the lease (dnsmasq keeps ONE lease, for the cluster's virtual MAC); after
// the holder is killed, the new holder renews the same address at once.
func TestInitJoinRunWithDHCPVIP(t *testing.T) {
	if _, err := exec.LookPath(dnsmasqBin); err != nil {
		t.Skipf("%s missing (Debian package dnsmasq-base)", dnsmasqBin)
	}
	l := lab.New(t, 4) // nodes 0-2: control plane; node 3: the site's DHCP server
	nodes, srvNode := l.Nodes[:3], l.Nodes[3]
	leaseFile := filepath.Join(t.TempDir(), "dnsmasq.leases")
	server := startDnsmasq(t, l, srvNode, leaseFile, 30, 60)

	var backends []string
	for _, n := range nodes {
		a := netip.AddrPortFrom(n.IPv4, backendPort)
		n.ServeTCP(t, a)
		backends = append(backends, "--backend="+a.String())
	}
	cluster := "e2e-" + l.ID

	// hapod init on node0, as before kubeadm init.
	dirs := make([]string, len(nodes))
	for i := range dirs {
		dirs[i] = filepath.Join(t.TempDir(), "manifests")
	}
	initArgs := append([]string{"init", "--vip=dhcp", "--interface=eth0", "--cluster-name=" + cluster,
		"--health-check=tcp", "--manifest-dir=" + dirs[0]}, backends...)
	out, err := nodes[0].Command(t.Context(), hapodBin, initArgs...).CombinedOutput()
	if err != nil {
		t.Fatalf("hapod init --vip dhcp: %v\n%s\ndnsmasq:\n%s", err, out, server.Log())
	}
	t.Logf("hapod init:\n%s", out)
	var join []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "hapod" && f[1] == "join" {
			join = f[1:]
		}
	}
	if join == nil {
		t.Fatal("init printed no join command")
	}
	for i := 1; i < len(nodes); i++ {
		if out, err := nodes[i].Command(t.Context(), hapodBin, append(join, "--interface=eth0", "--manifest-dir="+dirs[i])...).CombinedOutput(); err != nil {
			t.Fatalf("hapod join on %s: %v\n%s", nodes[i].Name, err, out)
		}
	}

	// hapod run with exactly the manifests' args.
	var cfg config.Config
	procs := make([]*lab.Process, len(nodes))
	args := make([][]string, len(nodes))
	for i, n := range nodes {
		data, err := os.ReadFile(filepath.Join(dirs[i], manifest.FileName))
		if err != nil {
			t.Fatal(err)
		}
		var pod corev1.Pod
		if err := yaml.UnmarshalStrict(data, &pod); err != nil {
			t.Fatal(err)
		}
		args[i] = pod.Spec.Containers[0].Args
		procs[i] = n.Start(t, hapodBin, args[i]...)
		if i == 0 {
			for _, a := range args[i] {
				if f, ok := config.Lookup(strings.TrimPrefix(strings.SplitN(a, "=", 2)[0], "--")); ok {
					f.Apply(&cfg, []string{strings.SplitN(a, "=", 2)[1]})
				}
			}
		}
	}
	vip := cfg.VIP.Prefix.Addr()
	if !cfg.VIP.DHCP || vip.As4()[3] < 150 || vip.As4()[3] > 190 {
		t.Fatalf("manifest VIP %s (dhcp %v) is not from the DHCP range", cfg.VIP.Prefix, cfg.VIP.DHCP)
	}
	id := dhcpvip.NewIdentity(cfg.VRRP.VRID, cluster)
	holderOf := func(skip *lab.Node) *lab.Node {
		var h *lab.Node
		lab.WaitFor(t, 5*time.Second, "one holder of the leased VIP", func() bool {
			var hs []*lab.Node // a SIGKILLed holder leaves the VIP behind
			for _, n := range l.Holders(vip) {
				if n != skip {
					hs = append(hs, n)
				}
			}
			if len(hs) == 1 {
				h = hs[0]
			}
			return len(hs) == 1
		})
		return h
	}
	holder := holderOf(nil)
	if who, err := l.Client.WhoServes(t.Context(), netip.AddrPortFrom(vip, frontendPort)); err != nil {
		t.Fatalf("client through the leased VIP: %v", err)
	} else {
		t.Logf("%s holds the leased VIP %s; the client reaches %s through it", holder.Name, vip, who)
	}

	// The holder renewed at once on taking the VIP: one lease, ours.
	lease := oneLease(t, leaseFile, id, vip)
	nextSecond(time.Now().Unix())
	i := -1
	for k, n := range nodes {
		if n == holder {
			i = k
		}
	}
	procs[i].Signal(syscall.SIGKILL)
	procs[i].Wait(5 * time.Second)
	next := holderOf(holder)
	renewed := waitExpiryAfter(t, leaseFile, id, vip, lease.Expiry, "the new holder's renewal")
	t.Logf("SIGKILL of %s: %s took the VIP and renewed the same lease (expiry %d -> %d)", holder.Name, next.Name, lease.Expiry, renewed.Expiry)
	if strings.Contains(server.Log(), "DHCPRELEASE") {
		t.Error("someone released the lease")
	}
}
