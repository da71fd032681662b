package kubeadm

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestKubeadmDualStack is a dual-stack kubeadm cluster with an IPv4 and an
// IPv6 VIP (issue 22): kubeadm's own dual-stack config (node-ip, pod and
// service subnet pairs, controlPlaneEndpoint the bare IPv4 VIP, the IPv6
// VIP in the apiserver's certificate), `hapod init --kubeadm-config`
// with both `--vip`s before `kubeadm init`, the printed `hapod join` line
// on node 2 before `kubeadm join`. kubectl works through both VIPs on
// :6443 (the redirect), and each node runs a router per family, both
// active on the holder.
func TestKubeadmDualStack(t *testing.T) {
	s := prerequisites(t)
	c := newCluster(t, s, false, true)
	vip6 := c.lab.VIP6Prefix(0)
	n1, n2 := c.nodes[0], c.nodes[1]
	// The cluster's IPv6 ranges, inside the lab's /48 and apart from its
	// /64: pods a /56 (a /64 per node), services a /112.
	b := c.lab.Prefix6.Addr().As16()
	b[6], b[7] = 0x01, 0x00
	pods6 := netip.PrefixFrom(netip.AddrFrom16(b), 56)
	b[6] = 0x02
	services6 := netip.PrefixFrom(netip.AddrFrom16(b), 112)
	dual := func(n *node, cfg string) string {
		cfg = strings.Replace(cfg, "    value: "+n.IPv4.String()+"\n", "    value: "+n.IPv4.String()+","+n.IPv6.String()+"\n", 1)
		cfg = strings.Replace(cfg, "  serviceSubnet: "+c.serviceCIDR+"\n", "  serviceSubnet: "+c.serviceCIDR+","+services6.String()+"\n", 1)
		cfg = strings.Replace(cfg, "  podSubnet: "+c.podCIDR+"\n", "  podSubnet: "+c.podCIDR+","+pods6.String()+"\n", 1)
		return strings.Replace(cfg, "networking:\n", fmt.Sprintf("apiServer:\n  certSANs: [%q]\nnetworking:\n", vip6.Addr()), 1)
	}

	cfg := n1.writeFile(t, "kubeadm.yaml", dual(n1, c.initConfig(n1)))
	args := append([]string{"init", "--kubeadm-config=" + cfg, "--vip=" + c.vip.String(), "--vip=" + vip6.String()}, c.backendFlags()...)
	out := c.hapod(t, n1, append(args, "--image="+c.s.image)...)
	join := printedJoin(t, out)
	if !strings.Contains(strings.Join(join, " "), "--vip="+vip6.String()) {
		t.Errorf("the printed join line lacks the IPv6 VIP: %q", join)
	}
	out = c.kubeadm(t, n1, "init", "--config="+cfg, "--upload-certs")
	c.joinCommand = printedKubeadmJoin(t, out)

	ep6 := netip.AddrPortFrom(vip6.Addr(), apiserverPort)
	nodes := c.waitKubectl(t, n1, time.Minute, "kubectl get nodes through the IPv4 VIP", func(string) bool { return true }, "get", "nodes", "-o", "wide")
	t.Logf("%s$ kubectl get nodes -o wide   (server https://%s)\n%s", n1.name, c.endpoint(), indent(nodes))
	addrs := c.waitKubectl(t, n1, time.Minute, "kubectl through the IPv6 VIP, cp1 with an address of each family",
		func(s string) bool {
			return strings.Contains(s, n1.IPv6.String()) && strings.Contains(s, n1.IPv4.String())
		},
		"--server=https://"+ep6.String(), "get", "node", n1.name, "-o", "jsonpath={.status.addresses}")
	t.Logf("%s$ kubectl --server https://%s get node %s -o jsonpath={.status.addresses}\n%s", n1.name, ep6, n1.name, indent(addrs))

	c.hapod(t, n2, join...)
	jc := n2.writeFile(t, "join.yaml", dual(n2, c.joinConfig(t, n2)))
	start := time.Now()
	c.kubeadm(t, n2, "join", "--config="+jc)
	t.Logf("%s joined the dual-stack control plane through the IPv4 VIP in %v", n2.name, time.Since(start).Round(100*time.Millisecond))
	c.waitKubectl(t, n1, time.Minute, "kubectl through the IPv6 VIP lists two nodes",
		func(s string) bool { return strings.Count(s, "\ncp") == 2 }, "--server=https://"+ep6.String(), "get", "nodes")

	// Both families' VIPs on one node, its two routers active; the
	// other node's both backup.
	var holder *node
	for _, n := range []*node{n1, n2} {
		if n.HasAddr(c.vip.Addr()) {
			holder = n
		}
	}
	if holder == nil || !holder.HasAddr(vip6.Addr()) {
		t.Fatalf("the VIPs are not together: IPv4 on %v, IPv6 on n1 %v n2 %v", holder, n1.HasAddr(vip6.Addr()), n2.HasAddr(vip6.Addr()))
	}
	for _, n := range []*node{n1, n2} {
		want := "Backup"
		if n == holder {
			want = "Active"
		}
		r, err := n.hapodStatus(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Routers) != 2 || r.Routers[0].State != want || r.Routers[1].State != want || !r.Healthy {
			t.Errorf("%s: routers %+v healthy %v %q, want ipv4 and ipv6 %s", n.name, r.Routers, r.Healthy, r.Problems, want)
		}
	}
	out, _ = holder.output(t, hapodBin, "status")
	t.Logf("%s$ hapod status\n%s", holder.name, indent(out))
}
