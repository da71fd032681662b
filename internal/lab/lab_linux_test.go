package lab

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitLong bounds every wait for the network to settle: generous, it only
// keeps a broken test from hanging.
const waitLong = 20 * time.Second

func skipUnlessRoot(t *testing.T) {
	t.Helper()
	RequireRoot(t)
}

// pings reports whether one echo from n to a is answered.
func pings(n *Node, a netip.Addr) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return n.Command(ctx, "ping", "-n", "-q", "-c", "1", "-W", "1", a.String()).Run() == nil
}

// TestLab runs the lab's own tests as subtests, then checks that each one
// left no namespace and no process behind.
func TestLab(t *testing.T) {
	skipUnlessRoot(t)
	var labs []*Lab
	var pids []int
	track := func(l *Lab) *Lab { labs = append(labs, l); return l }

	t.Run("PingPartitionHeal", func(t *testing.T) {
		l := track(New(t, 2))
		a, b := l.Nodes[0], l.Nodes[1]
		for _, dst := range []netip.Addr{b.IPv4, b.IPv6} {
			WaitFor(t, waitLong, a.Name+" pings "+dst.String(), func() bool { return pings(a, dst) })
		}
		l.Partition(t, b)
		for _, dst := range []netip.Addr{b.IPv4, b.IPv6} {
			if pings(a, dst) {
				t.Errorf("%s answered while partitioned", dst)
			}
		}
		if !b.HasAddr(b.IPv4) {
			t.Errorf("partitioned node lost its address")
		}
		l.Heal(t, b)
		for _, dst := range []netip.Addr{b.IPv4, b.IPv6} {
			WaitFor(t, waitLong, "ping "+dst.String()+" after heal", func() bool { return pings(a, dst) })
		}
	})

	t.Run("LinkDownUp", func(t *testing.T) {
		l := track(New(t, 2))
		a, b := l.Nodes[0], l.Nodes[1]
		WaitFor(t, waitLong, "first ping", func() bool { return pings(a, b.IPv4) })
		b.LinkDown(t)
		if pings(a, b.IPv4) {
			t.Errorf("%s answered with its link down", b.IPv4)
		}
		b.LinkUp(t)
		if !b.HasAddr(b.IPv6) {
			t.Errorf("LinkUp did not restore %s", b.IPv6)
		}
		for _, dst := range []netip.Addr{b.IPv4, b.IPv6} {
			WaitFor(t, waitLong, "ping "+dst.String()+" after LinkUp", func() bool { return pings(a, dst) })
		}
		b.CarrierDown(t)
		if !b.HasAddr(b.IPv6) {
			t.Errorf("carrier loss removed %s", b.IPv6)
		}
		if pings(a, b.IPv4) {
			t.Errorf("%s answered without carrier", b.IPv4)
		}
		b.CarrierUp(t)
		WaitFor(t, waitLong, "ping after CarrierUp", func() bool { return pings(a, b.IPv4) })
	})

	t.Run("DialServeTCP", func(t *testing.T) {
		l := track(New(t, 2))
		n0, n1 := l.Nodes[0], l.Nodes[1]
		for _, a := range []netip.Addr{n0.IPv4, n0.IPv6} {
			srv := n0.ServeTCP(t, netip.AddrPortFrom(a, 7000))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			name, err := l.Client.WhoServes(ctx, srv.Addr())
			cancel()
			if err != nil || name != n0.Name {
				t.Errorf("WhoServes(%v) = %q, %v; want %q", srv.Addr(), name, err, n0.Name)
			}
		}
		// The socket is the client's: its source is the client's address.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := l.Client.Dial(ctx, "tcp", netip.AddrPortFrom(n0.IPv4, 7000).String())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if got := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr(); got != l.Client.IPv4 {
			t.Errorf("dial from client: local address %v, want %v", got, l.Client.IPv4)
		}
		c.Close()
		// IP_FREEBIND: listen on a VIP before holding it, then add it.
		vip := netip.AddrPortFrom(l.VIP4(0), 7001)
		n1.ServeTCP(t, vip)
		n1.Run(t, "ip", "addr", "add", l.VIP4Prefix(0).String(), "dev", n1.Iface)
		if !n1.HasAddr(vip.Addr()) || n0.HasAddr(vip.Addr()) {
			t.Fatalf("HasAddr disagrees with ip addr add")
		}
		var got string
		WaitFor(t, waitLong, "client reaches the VIP", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			got, _ = l.Client.WhoServes(ctx, vip)
			return got != ""
		})
		if got != n1.Name {
			t.Errorf("VIP served by %q, want %q", got, n1.Name)
		}
	})

	t.Run("ProbeICMP", func(t *testing.T) {
		l := track(New(t, 1))
		n0 := l.Nodes[0]
		for _, a := range []netip.Addr{n0.IPv4, n0.IPv6} {
			n0.ServeTCP(t, netip.AddrPortFrom(a, 7000))
			p, err := StartProbeConfig(context.Background(), l.Client, ProbeConfig{
				Target: netip.AddrPortFrom(a, 7000), ICMP: true, ReadGreeting: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			r := p.Stop()
			t.Logf("%v: tcp %v; icmp %v", a, r, r.ICMP)
			if r.Attempts == 0 || r.ServedBy()[n0.Name] == 0 {
				t.Errorf("%v: no successful TCP probe: %v", a, r)
			}
			if r.ICMP == nil || r.ICMP.Attempts == 0 || r.ICMP.Attempts == r.ICMP.Failures {
				t.Errorf("%v: no answered echo: %v", a, r.ICMP)
			}
		}
	})

	for _, tc := range []struct {
		name string
		cfg  func(l *Lab, self *Node, peers []*Node, prio uint8) KeepalivedConfig
		vip  func(l *Lab) netip.Addr
	}{
		{
			name: "KeepalivedV3Multicast4",
			vip:  func(l *Lab) netip.Addr { return l.VIP4(0) },
			cfg: func(l *Lab, self *Node, _ []*Node, prio uint8) KeepalivedConfig {
				return KeepalivedConfig{Interface: self.Iface, VRID: 51, Priority: prio, Version: 3,
					Interval: 100 * time.Millisecond, VIP: l.VIP4Prefix(0), Preempt: true}
			},
		},
		{
			name: "KeepalivedV2UnicastAuth4",
			vip:  func(l *Lab) netip.Addr { return l.VIP4(1) },
			cfg: func(l *Lab, self *Node, peers []*Node, prio uint8) KeepalivedConfig {
				c := KeepalivedConfig{Interface: self.Iface, VRID: 52, Priority: prio, Version: 2,
					Interval: time.Second, VIP: l.VIP4Prefix(1), Source: self.IPv4, AuthPass: "s3cret"}
				for _, p := range peers {
					c.Peers = append(c.Peers, p.IPv4)
				}
				return c
			},
		},
		{
			name: "KeepalivedV3Unicast6",
			vip:  func(l *Lab) netip.Addr { return l.VIP6(0) },
			cfg: func(l *Lab, self *Node, peers []*Node, prio uint8) KeepalivedConfig {
				c := KeepalivedConfig{Interface: self.Iface, VRID: 53, Priority: prio, Version: 3,
					Interval: 100 * time.Millisecond, VIP: l.VIP6Prefix(0), Source: self.IPv6}
				for _, p := range peers {
					c.Peers = append(c.Peers, p.IPv6)
				}
				return c
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			Tool(t, "keepalived", "keepalived")
			l := track(New(t, 2))
			vip := tc.vip(l)
			target := netip.AddrPortFrom(vip, 7000)
			var kas []*Keepalived
			for i, n := range l.Nodes {
				n.ServeTCP(t, target)
				others := append(append([]*Node(nil), l.Nodes[:i]...), l.Nodes[i+1:]...)
				k := n.StartKeepalived(t, tc.cfg(l, n, others, uint8(200-50*i)))
				kas = append(kas, k)
				pids = append(pids, k.Pid())
			}
			WaitFor(t, waitLong, "a VIP holder", func() bool { return len(l.Holders(vip)) > 0 })
			// Give a second election a chance to show a split brain.
			time.Sleep(3 * kas[0].Instances[0].Interval)
			holders := l.Holders(vip)
			if len(holders) != 1 {
				t.Fatalf("%d holders of %v, want 1: %v", len(holders), vip, names(holders))
			}
			master := holders[0]
			mi := indexOf(l.Nodes, master)
			other := l.Nodes[1-mi]
			for _, k := range kas {
				if pid, err := k.VRRPPid(); err == nil {
					pids = append(pids, pid)
				}
			}

			p, err := StartProbeConfig(context.Background(), l.Client, ProbeConfig{Target: target, ReadGreeting: true})
			if err != nil {
				t.Fatal(err)
			}
			servedBy := func(n *Node) func() bool {
				return func() bool {
					last, ok := p.Snapshot().LastSample()
					return ok && last.OK && last.Served == n.Name
				}
			}
			WaitFor(t, waitLong, "probe served by "+master.Name, servedBy(master))
			fault := time.Now()
			if err := kas[mi].Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			WaitFor(t, waitLong, other.Name+" takes the VIP", func() bool { return other.HasAddr(vip) })
			WaitFor(t, waitLong, "probe served by "+other.Name, servedBy(other))
			r := p.Stop()
			// Recovery is what the WaitFor above proved; the outage's
			// length is only reported.
			o, _ := r.OutageAt(fault)
			t.Logf("graceful failover %s -> %s: client outage %v (%d failed probes); %v",
				master.Name, other.Name, r.OutageAfter(fault), o.Failures, r)
			if err := kas[mi].Wait(waitLong); err != nil {
				t.Errorf("keepalived after SIGTERM: %v", err)
			}
			if master.HasAddr(vip) {
				t.Errorf("%s kept the VIP after SIGTERM", master.Name)
			}

			// A hard failure of the new master: its VRRP child dies without
			// resigning, the VIP stays where it was (DESIGN.md).
			if err := kas[1-mi].KillVRRP(); err != nil {
				t.Fatal(err)
			}
			// Without respawn (-R) the parent stops too (with status 0).
			if err := kas[1-mi].Wait(waitLong); errors.Is(err, ErrWaitTimeout) {
				t.Errorf("keepalived still running after its VRRP child was killed")
			}
			if !other.HasAddr(vip) {
				t.Errorf("VIP vanished from %s after SIGKILL; expected it left behind", other.Name)
			}
		})
	}

	// Every subtest has run its cleanups by now.
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, l := range labs {
		for _, ns := range l.Namespaces() {
			if strings.Contains(string(out), ns) {
				t.Errorf("namespace %s of lab %s survived", ns, l.ID)
			}
		}
		if _, err := os.Stat("/run/netns/" + l.Hub); err == nil {
			t.Errorf("hub (and bridge) of lab %s survived", l.ID)
		}
	}
	for _, pid := range pids {
		if Alive(pid) {
			t.Errorf("process %d survived its lab", pid)
		}
	}
	if len(labs) == 0 {
		t.Errorf("no lab was built")
	}
}

func names(ns []*Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return out
}

func indexOf(ns []*Node, n *Node) int {
	for i, x := range ns {
		if x == n {
			return i
		}
	}
	return -1
}
