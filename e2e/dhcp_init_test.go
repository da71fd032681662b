package e2e

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/hapod/hapod/internal/lab"
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
// Then dnsmasq stops: the holder keeps the VIP, healthy, while the lease
// runs, and reports its end (`hapod status` exit 1, the metric, a log line)
// while still holding the VIP; dnsmasq restarts with the same lease file
// and the renewals resume. dnsmasq's shortest lease is 2 minutes, so the
// test takes about 2.5.
func TestInitJoinRunWithDHCPVIP(t *testing.T) {
	lab.Tool(t, dnsmasqBin, "dnsmasq-base")
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
	clusterName := "e2e-" + l.ID

	// hapod init on node0, as before kubeadm init.
	dirs := make([]string, len(nodes))
	for i := range dirs {
		dirs[i] = filepath.Join(t.TempDir(), "manifests")
	}
	initArgs := append([]string{"init", "--vip=dhcp", "--interface=eth0", "--cluster-name=" + clusterName,
		fmt.Sprintf("--port=%d", frontendPort), "--health-check=tcp", "--manifest-dir=" + dirs[0], "--image=example.test/hapod:e2e"}, backends...)
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
	vip := cfg.VIP.Primary().Addr()
	if !cfg.VIP.DHCP || vip.As4()[3] < 150 || vip.As4()[3] > 190 {
		t.Fatalf("manifest VIP %s (dhcp %v) is not from the DHCP range", cfg.VIP.Primary(), cfg.VIP.DHCP)
	}
	id := dhcpvip.NewIdentity(cfg.VRRP.VRID, clusterName)
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
	i := slices.Index(nodes, holder)
	const granted = "DHCP VIP lease granted"
	grants := make([]int, len(procs))
	for k, p := range procs {
		grants[k] = strings.Count(p.Log(), granted)
	}
	procs[i].Signal(syscall.SIGKILL)
	procs[i].Wait(5 * time.Second)
	next := holderOf(holder)
	// The killed holder stands for a crashed machine, whose addresses are
	// gone with it. A SIGKILLed hapod on a live host leaves the VIP on its
	// interface, and the new holder would rightly report that duplicate
	// as a conflict (not healthy) for as long as it stays.
	holder.Run(t, "ip", "addr", "del", cfg.VIP.Primary().String(), "dev", holder.Iface)
	// The outage below must start once the new holder has the lease. Two
	// backups of equal priority can both take over for a moment and both
	// ask; the lease file changes at the first ACK, whoever asked. The
	// holder takes an ACK to the other's request too (the cluster's lease),
	// and asks again after its retransmission time if it saw none. dnsmasq
	// writes the lease file before it sends the ACK.
	j := slices.Index(nodes, next)
	lab.WaitFor(t, 15*time.Second, next.Name+"'s own renewal", func() bool {
		return strings.Count(procs[j].Log(), granted) > grants[j]
	})
	renewed := waitExpiryAfter(t, leaseFile, id, vip, lease.Expiry, "the new holder's renewal")
	t.Logf("SIGKILL of %s: %s took the VIP and renewed the same lease (expiry %d -> %d)", holder.Name, next.Name, lease.Expiry, renewed.Expiry)
	if strings.Contains(server.Log(), "DHCPRELEASE") {
		t.Error("someone released the lease")
	}

	c := &statusCluster{cluster: &cluster{t: t, lab: l, vip: cfg.VIP.Primary(), procs: procs}}
	server = dhcpServerOutage(t, c, j, server, func() *lab.Process {
		// The same lease file; T1 4 s, so a regular renewal follows soon.
		return startDnsmasq(t, l, srvNode, leaseFile, 4, 7)
	}, leaseFile, id, renewed)
	if strings.Contains(server.Log(), "DHCPRELEASE") {
		t.Error("someone released the lease")
	}
}

// dhcpServerOutage stops the DHCP server (by PID) and waits out the lease
// that node h (the VIP's holder, whose last renewal dnsmasq recorded as
// last) holds: h keeps the VIP and stays healthy while the lease runs,
// reports its end loudly while still holding the VIP, and gets the same
// address again once restart has brought a server back. It returns the new
// server.
func dhcpServerOutage(t *testing.T, c *statusCluster, h int, server *lab.Process, restart func() *lab.Process,
	leaseFile string, id dhcpvip.Identity, last dnsmasqLease) *lab.Process {
	holder := c.lab.Nodes[h]
	vip := c.vip.Addr()
	expiry := time.Unix(last.Expiry, 0) // dnsmasq's whole second: hapod's end is at most 1 s later
	if err := server.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := server.Wait(10 * time.Second); errors.Is(err, lab.ErrWaitTimeout) {
		t.Fatal(err)
	}
	stopped := time.Now()
	// The nodes whose hapod runs (one was SIGKILLed before), and the VIP's
	// holders among them: the killed holder left the VIP on its interface,
	// where a crashed machine's would be gone.
	var running []int
	for i, p := range c.procs {
		select {
		case <-p.Done():
		default:
			running = append(running, i)
		}
	}
	holders := func() []*lab.Node {
		var hs []*lab.Node
		for _, n := range c.lab.Holders(vip) {
			if slices.Contains(running, c.index(n)) {
				hs = append(hs, n)
			}
		}
		return hs
	}
	t.Logf("dnsmasq stopped; the lease ends at %s, in %v", expiry.Format(time.TimeOnly), time.Until(expiry).Round(time.Second))

	// While the lease runs (past T1 and T2): the same node holds the VIP,
	// clients reach the apiservers through it, every node is healthy.
	healthy := func(when string) {
		t.Helper()
		if hs := holders(); len(hs) != 1 || hs[0] != holder {
			t.Fatalf("%s: %s hold the VIP, want %s", when, names(hs), holder.Name)
		}
		if _, err := c.lab.Client.WhoServes(t.Context(), netip.AddrPortFrom(vip, frontendPort)); err != nil {
			t.Fatalf("%s: client through the VIP: %v", when, err)
		}
		for _, i := range running {
			if out, errOut, code := c.hapodStatus(i); code != 0 {
				t.Fatalf("%s: node%d: hapod status exit %d\n%s%s", when, i, code, out, errOut)
			}
			if m := c.mustMetrics(i); m["hapod_dhcp_lease_problem"] != 0 {
				t.Fatalf("%s: node%d: hapod_dhcp_lease_problem %v", when, i, m["hapod_dhcp_lease_problem"])
			}
		}
	}
	for time.Until(expiry) > 6*time.Second {
		healthy(fmt.Sprintf("%v into the outage", time.Since(stopped).Round(time.Second)))
		time.Sleep(min(15*time.Second, time.Until(expiry)-5*time.Second))
	}
	healthy("5 s before the lease ends")
	if log := c.procs[h].Log(); !strings.Contains(log, "DHCP VIP lease warning") || !strings.Contains(log, "did not renew") {
		t.Errorf("%s logged no warning at T2 that the server is silent", holder.Name)
	}

	// The lease ends: the holder says so everywhere, and keeps the VIP.
	var out, errOut string
	var code int
	lab.WaitFor(t, time.Until(expiry)+10*time.Second, "hapod status reporting the lease's end", func() bool {
		time.Sleep(100 * time.Millisecond) // a process per poll: not every 10 ms
		out, errOut, code = c.hapodStatus(h)
		return code != 0
	})
	if time.Now().Before(expiry) {
		t.Fatalf("unhealthy %v before the lease's end: exit %d\n%s%s", time.Until(expiry), code, out, errOut)
	}
	reported := time.Now()
	want := "hapod: not healthy: DHCP lease of the VIP: DHCP lease expired: " + vip.String()
	if code != 1 || !strings.HasPrefix(errOut, want) || strings.Count(errOut, "\n") != 1 {
		t.Errorf("after the lease's end: exit %d, stderr %q, want 1 and %q...", code, errOut, want)
	}
	t.Logf("%v after the lease's end, hapod status on %s:\n%s%s", reported.Sub(expiry).Round(time.Millisecond), holder.Name, out, errOut)
	if m := c.mustMetrics(h); m["hapod_dhcp_lease_problem"] != 1 || sumPrefix(m, "hapod_vrrp_vip_held{") != 1 {
		t.Errorf("after the lease's end: hapod_dhcp_lease_problem %v, hapod_vrrp_vip_held %v, want 1 and 1",
			m["hapod_dhcp_lease_problem"], filterPrefix(m, "hapod_vrrp_vip_held{"))
	}
	logLine := ""
	for _, line := range strings.Split(c.procs[h].Log(), "\n") {
		if strings.Contains(line, "DHCP VIP lease problem") && strings.Contains(line, "DHCP lease expired") {
			logLine = line
		}
	}
	if logLine == "" || !strings.Contains(logLine, "level=ERROR") {
		t.Errorf("%s logged no error line for the lease's end:\n%s", holder.Name, c.procs[h].Log())
	} else {
		t.Logf("%s's log: %s", holder.Name, logLine)
	}
	for _, i := range running {
		if i == h {
			continue
		}
		// A backup's old record says nothing about the VIP.
		if _, _, code := c.hapodStatus(i); code != 0 {
			t.Errorf("backup node%d: hapod status exit %d after the lease's end", i, code)
		}
	}
	if hs := holders(); len(hs) != 1 || hs[0] != holder {
		t.Fatalf("after the lease's end %s hold the VIP, want %s (kept)", names(hs), holder.Name)
	}
	if _, err := c.lab.Client.WhoServes(t.Context(), netip.AddrPortFrom(vip, frontendPort)); err != nil {
		t.Fatalf("after the lease's end: client through the VIP: %v", err)
	}

	// The server returns with the same lease file: the holder's next
	// retransmission gets the same address, then renews at T1 again.
	server = restart()
	restarted := time.Now()
	lab.WaitFor(t, 70*time.Second, "hapod status healthy after the server's return", func() bool {
		time.Sleep(100 * time.Millisecond)
		_, _, code := c.hapodStatus(h)
		return code == 0
	})
	t.Logf("the lease is back %v after dnsmasq's restart (%v after the lease's end was reported)",
		time.Since(restarted).Round(time.Millisecond), time.Since(reported).Round(time.Millisecond))
	c.waitMetric(h, "hapod_dhcp_lease_problem", "= 0", func(v float64) bool { return v == 0 })
	back := waitExpiryAfter(t, leaseFile, id, vip, last.Expiry, "the lease after the server's return")
	nextSecond(back.Expiry - 120)
	waitExpiryAfter(t, leaseFile, id, vip, back.Expiry, "the renewal at T1 after the server's return")
	if !strings.Contains(c.procs[h].Log(), "from=Expired to=Bound") {
		t.Errorf("%s logged no return to Bound", holder.Name)
	}
	if hs := holders(); len(hs) != 1 || hs[0] != holder {
		t.Errorf("after the server's return %s hold the VIP, want %s", names(hs), holder.Name)
	}
	return server
}
