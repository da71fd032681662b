package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/config"
)

// TestKeepalivedInteropDualStack puts hapod and Debian's keepalived in one
// mixed dual-stack group (issue 22): hapod on two nodes with an IPv4 and
// an IPv6 VIP, one virtual router per family, and keepalived on a third
// node running an IPv4 and an IPv6 vrrp_instance of the same VRIDs in one
// process, each electing on its own (no vrrp_sync_group). Per family, every
// router of both implementations agrees on one holder (the kernel's
// addresses, hapod's state metrics, keepalived's logged state), neither
// side rejects a single advert of the other, and a crashed holder's family
// moves: keepalived takes over from hapod and hapod from keepalived, for
// each family, while the other family stays where it is.
//
// hapod keeps its own routers' holders together: its IPv6 router
// advertises one less while its IPv4 router is not active on the node.
// keepalived does not follow that rule, and here its two instances have
// different priorities, so the families' holders differ on purpose: the
// test asserts one holder per family, never one holder for both.
//
// keepalived 2.2.7 sends IPv6 unicast adverts with the kernel's default
// hop limit, 64, unless its instance sets unicast_ttl (IPv4 ones carry
// TTL 255: keepalived writes that header itself). In unicast mode hapod,
// like keepalived, takes a configured peer's advert whatever its hop
// limit (it dropped them as "ttl" before, and both held the IPv6 VIP
// after a crash): both unicast cases run, with unicast_ttl 255 and with
// keepalived's default.
func TestKeepalivedInteropDualStack(t *testing.T) {
	lab.Tool(t, "keepalived", "keepalived")
	for _, tc := range []struct {
		name    string
		unicast bool
		// vrid6 is hapod's --vrid6 (keepalived's IPv6 instance follows);
		// 0 for the default, --vrid's number for both families.
		vrid6 uint8
		// unicastTTL6 is the IPv6 instance's unicast_ttl, 0 for none.
		unicastTTL6 int
	}{
		{name: "v3-multicast"},
		{name: "v3-unicast", unicast: true, vrid6: 78, unicastTTL6: 255},
		{name: "v3-unicast-keepalived-default-hop-limit", unicast: true, vrid6: 78},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newMixedDualStack(t, tc.unicast, tc.vrid6, tc.unicastTTL6)
			n0, kn := g.lab.Nodes[0], g.kn

			// keepalived first for IPv4, hapod's node0 for IPv6.
			g.startKeepalived(200, 120)
			g.settle(holders{kn, n0}, nil)
			g.soakAndCheck(holders{kn, n0})

			// hapod's IPv6 holder crashes (its VIP stays on its
			// interface): keepalived, 120 against node1's 99, takes the
			// IPv6 VIP over; the IPv4 VIP stays on keepalived.
			g.crashHapod(0)
			g.settle(holders{kn, kn}, n0)
			g.reach(config.IPv6, kn)

			// hapod back: it removes the VIP its predecessor left and
			// takes the IPv6 VIP back from keepalived (149 > 120).
			g.restartHapod(0, config.IPv6)
			g.settle(holders{kn, n0}, nil)

			// keepalived crashes while holding IPv4: hapod takes it over;
			// IPv6 stays on node0.
			g.crashKeepalived()
			g.settle(holders{n0, n0}, kn)
			g.removeStaleVIPs(kn)
			g.settle(holders{n0, n0}, nil)

			// The other way round: keepalived higher for IPv6 takes it
			// from hapod; IPv4 stays on node0.
			g.startKeepalived(120, 200)
			g.settle(holders{n0, kn}, nil)
			g.soakAndCheck(holders{n0, kn})

			// hapod's IPv4 holder crashes: keepalived takes IPv4 over
			// (120 against node1's 100).
			g.crashHapod(0)
			g.settle(holders{kn, kn}, n0)
			g.reach(config.IPv4, kn)
			g.restartHapod(0, config.IPv4)
			g.settle(holders{n0, kn}, nil)

			// keepalived crashes while holding IPv6: hapod takes it over.
			g.crashKeepalived()
			g.settle(holders{n0, n0}, kn)
			g.removeStaleVIPs(kn)
			g.reach(config.IPv6, n0)
		})
	}
}

// holders are the nodes expected to hold each family's VIP: IPv4, IPv6.
type holders [2]*lab.Node

func (h holders) String() string { return fmt.Sprintf("IPv4 on %s, IPv6 on %s", h[0].Name, h[1].Name) }

// families indexes holders and mixedDualStack.vips.
var families = [2]config.Family{config.IPv4, config.IPv6}

// mixedDualStack is hapod on nodes 0 (priority 150) and 1 (100) and
// keepalived on node 2, each with an IPv4 and an IPv6 VIP. The hapod nodes
// serve the proxy's TCP backends; keepalived's node, which has no proxy, a
// stand-in greeter on both VIPs, so a client tells the two apart.
type mixedDualStack struct {
	t   *testing.T
	lab *lab.Lab
	// vips and routers are in families' order.
	vips    [2]netip.Prefix
	routers []config.Router
	unicast bool
	// unicastTTL6 is keepalived's IPv6 instance's unicast_ttl, 0 for none.
	unicastTTL6 int
	hapods      []*lab.Process
	args        [][]string
	kn          *lab.Node
	ka          *lab.Keepalived
	// metrics reads the hapod nodes' /metrics.
	metrics *statusCluster
}

// mixedInterval is every router's advert interval.
const mixedInterval = 100 * time.Millisecond

// mixedPriorities are the hapod nodes' priorities.
var mixedPriorities = []uint8{150, 100}

func newMixedDualStack(t *testing.T, unicast bool, vrid6 uint8, unicastTTL6 int) *mixedDualStack {
	t.Helper()
	l := lab.New(t, 3)
	g := &mixedDualStack{t: t, lab: l, vips: [2]netip.Prefix{l.VIP4Prefix(0), l.VIP6Prefix(0)},
		unicast: unicast, unicastTTL6: unicastTTL6, kn: l.Nodes[2]}
	g.metrics = &statusCluster{cluster: &cluster{t: t, lab: l}}
	var backends []netip.AddrPort
	for _, n := range l.Nodes[:len(mixedPriorities)] {
		a := netip.AddrPortFrom(n.IPv4, backendPort)
		n.ServeTCP(t, a)
		backends = append(backends, a)
	}
	for _, v := range g.vips {
		g.kn.ServeTCP(t, netip.AddrPortFrom(v.Addr(), frontendPort))
	}
	for i, prio := range mixedPriorities {
		n := l.Nodes[i]
		cfg := hapodConfig(g.vips[0], n, backends...)
		cfg.VIP.Prefixes = g.vips[:]
		cfg.VRRP.VRID, cfg.VRRP.VRID6 = 77, vrid6
		cfg.VRRP.Priority, cfg.VRRP.AdvertInterval = prio, mixedInterval
		if unicast {
			for _, p := range l.Nodes {
				if p != n {
					cfg.VRRP.Peers = append(cfg.VRRP.Peers, p.IPv4, p.IPv6)
				}
			}
		}
		g.routers = cfg.Routers()
		g.args = append(g.args, runArgs(cfg))
		g.hapods = append(g.hapods, nil)
		g.startHapod(i)
	}
	if len(g.routers) != 2 || g.routers[0].Family != config.IPv4 || g.routers[1].Family != config.IPv6 {
		t.Fatalf("hapod's routers %+v: want one IPv4 and one IPv6", g.routers)
	}
	return g
}

func (g *mixedDualStack) startHapod(i int) {
	g.hapods[i] = g.lab.Nodes[i].Start(g.t, hapodBin, g.args[i]...)
}

// restartHapod starts hapod again on node i after a crash there with family
// f's VIP on, and waits until it has removed that VIP.
func (g *mixedDualStack) restartHapod(i int, f config.Family) {
	g.t.Helper()
	g.startHapod(i)
	vip := "vip=" + g.vips[slices.Index(families[:], f)].String()
	lab.WaitFor(g.t, g.wait(), g.lab.Nodes[i].Name+" removes the "+string(f)+" VIP a crash left", func() bool {
		for _, line := range strings.Split(g.hapods[i].Log(), "\n") {
			if strings.Contains(line, "removed the VIP left on the interface by a previous holder") && strings.Contains(line, vip) {
				return true
			}
		}
		return false
	})
}

// instances are keepalived's vrrp_instances with these priorities, one per
// family, on hapod's router's VRID of that family.
func (g *mixedDualStack) instances(prio4, prio6 uint8) []lab.KeepalivedConfig {
	var out []lab.KeepalivedConfig
	for f, prio := range []uint8{prio4, prio6} {
		c := lab.KeepalivedConfig{
			Interface: g.kn.Iface, VRID: g.routers[f].VRID, Priority: prio, Interval: mixedInterval,
			Version: 3, VIP: g.vips[f], Preempt: true,
		}
		if g.unicast {
			c.Source = g.kn.Addr(g.vips[f].Addr())
			for _, n := range g.lab.Nodes[:len(g.hapods)] {
				c.Peers = append(c.Peers, n.Addr(g.vips[f].Addr()))
			}
			if families[f] == config.IPv6 && g.unicastTTL6 != 0 {
				c.Extra = append(c.Extra, fmt.Sprintf("unicast_ttl %d", g.unicastTTL6))
			}
		}
		out = append(out, c)
	}
	return out
}

func (g *mixedDualStack) startKeepalived(prio4, prio6 uint8) {
	g.ka = g.kn.StartKeepalived(g.t, g.instances(prio4, prio6)...)
}

// wait bounds every wait for the protocol: a failover takes under four
// intervals, a start a little more; the rest is slack for a loaded machine.
func (g *mixedDualStack) wait() time.Duration { return 10*mixedInterval + 10*time.Second }

// look is each family's holders now, leaving out skip (a crashed node whose
// VIPs stay on its interface).
func (g *mixedDualStack) look(skip *lab.Node) [2][]*lab.Node {
	var out [2][]*lab.Node
	for f, v := range g.vips {
		for _, n := range g.lab.Holders(v.Addr()) {
			if n != skip {
				out[f] = append(out[f], n)
			}
		}
	}
	return out
}

// is reports whether each family's VIP is held by want's node alone, skip
// aside.
func (g *mixedDualStack) is(want holders, skip *lab.Node) bool {
	got := g.look(skip)
	return len(got[0]) == 1 && got[0][0] == want[0] && len(got[1]) == 1 && got[1][0] == want[1]
}

// settle waits until each family's VIP is held by want's node alone (skip
// aside) and still is after 20 intervals, which an election still going on
// would change. It fails with every router's last lines.
func (g *mixedDualStack) settle(want holders, skip *lab.Node) {
	g.t.Helper()
	start := time.Now()
	for {
		if g.is(want, skip) {
			took := time.Since(start)
			if g.stays(want, skip) {
				g.t.Logf("%v after %v", want, took.Round(time.Millisecond))
				return
			}
		}
		if time.Since(start) > g.wait() {
			got := g.look(skip)
			g.t.Fatalf("after %v: IPv4 on %s, IPv6 on %s; want %v\n%s", g.wait(), names(got[0]), names(got[1]), want, g.logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stays reports whether want still holds after 20 intervals.
func (g *mixedDualStack) stays(want holders, skip *lab.Node) bool {
	time.Sleep(20 * mixedInterval)
	return g.is(want, skip)
}

// logs are the last lines of every router's log.
func (g *mixedDualStack) logs() string {
	var b strings.Builder
	for i, p := range g.hapods {
		fmt.Fprintf(&b, "hapod on %s:\n%s\n", g.lab.Nodes[i].Name, tail(p.Log(), 15))
	}
	if g.ka != nil {
		fmt.Fprintf(&b, "keepalived on %s:\n%s\n", g.kn.Name, tail(g.ka.Log(), 15))
	}
	return b.String()
}

// soakAndCheck checks for 5 s that the holders stay, then that every router
// of both implementations agrees on them, that neither side dropped a
// single advert of the other, and that the client reaches each VIP.
func (g *mixedDualStack) soakAndCheck(want holders) {
	g.t.Helper()
	before := g.hapodMetrics()
	looks := 0
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if got := g.look(nil); !g.is(want, nil) {
			g.t.Fatalf("after %d looks: IPv4 on %s, IPv6 on %s; want %v\n%s", looks, names(got[0]), names(got[1]), want, g.logs())
		}
		looks++
	}
	after := g.hapodMetrics()
	for i, m := range after {
		n := g.lab.Nodes[i]
		for f := range families {
			fam := string(families[f])
			state := fmt.Sprintf(`hapod_vrrp_state{family=%q,state="active"}`, fam)
			if got := m[state]; got != b2f(want[f] == n) {
				g.t.Errorf("%s: %s = %v, but %s holds the %s VIP", n.Name, state, got, want[f].Name, fam)
			}
			received := fmt.Sprintf(`hapod_vrrp_adverts_received_total{family=%q}`, fam)
			if want[f] != n && m[received] <= before[i][received] {
				g.t.Errorf("%s: %s did not grow over the soak (%v to %v): the %s router heard no holder",
					n.Name, received, before[i][received], m[received], fam)
			}
		}
		for k, v := range m {
			if strings.HasPrefix(k, "hapod_vrrp_dropped_packets_total{") && v != 0 {
				g.t.Errorf("%s: %s = %v, want no dropped advert", n.Name, k, v)
			}
		}
	}
	for f, c := range g.ka.Instances {
		wantState := "BACKUP"
		if want[f] == g.kn {
			wantState = "MASTER"
		}
		if got := g.ka.State(c.InstanceName()); got != wantState {
			g.t.Errorf("keepalived's %s instance %s is %q, want %s", families[f], c.InstanceName(), got, wantState)
		}
	}
	if c := g.ka.Complaints(); len(c) > 0 {
		g.t.Errorf("keepalived rejected %d adverts, the first: %s", len(c), c[0])
	}
	for f := range families {
		g.reach(families[f], want[f])
	}
	if !g.t.Failed() {
		g.t.Logf("%v: %d looks over 5 s, every router agrees, no advert dropped", want, looks)
	}
}

// hapodMetrics scrapes every running hapod's /metrics, by node index.
func (g *mixedDualStack) hapodMetrics() []map[string]float64 {
	g.t.Helper()
	var out []map[string]float64
	for i := range g.hapods {
		out = append(out, g.metrics.mustMetrics(i))
	}
	return out
}

// reach connects from the client to family f's VIP until it is served,
// and checks who serves: keepalived's stand-in (greeting as its node) when
// keepalived holds the VIP, else the holder's proxy, whose backends are the
// hapod nodes'.
func (g *mixedDualStack) reach(f config.Family, holder *lab.Node) {
	g.t.Helper()
	target := netip.AddrPortFrom(g.vips[slices.Index(families[:], f)].Addr(), frontendPort)
	var got string
	lab.WaitFor(g.t, g.wait(), "the client to reach "+target.String(), func() bool {
		ctx, cancel := context.WithTimeout(g.t.Context(), time.Second)
		defer cancel()
		var err error
		got, err = g.lab.Client.WhoServes(ctx, target)
		return err == nil
	})
	if (got == g.kn.Name) != (holder == g.kn) {
		g.t.Fatalf("the client reached %s, served by %s, while %s holds it", target, got, holder.Name)
	}
}

// crashHapod SIGKILLs node i's hapod: no goodbye, its VIPs stay on its
// interface.
func (g *mixedDualStack) crashHapod(i int) {
	g.t.Helper()
	if err := g.hapods[i].Signal(syscall.SIGKILL); err != nil {
		g.t.Fatal(err)
	}
	if err := g.hapods[i].Wait(5 * time.Second); err == nil {
		g.t.Fatal("SIGKILLed hapod exited 0")
	}
}

// crashKeepalived SIGKILLs keepalived's VRRP child, which runs both
// instances: no goodbye, its VIPs stay on its interface.
func (g *mixedDualStack) crashKeepalived() {
	g.t.Helper()
	if err := g.ka.KillVRRP(); err != nil {
		g.t.Fatal(err)
	}
	_ = g.ka.Wait(5 * time.Second) // the parent follows its child
	waitVRRPChildGone(g.t, g.ka)
}

// removeStaleVIPs removes the VIPs a crashed router left on n.
func (g *mixedDualStack) removeStaleVIPs(n *lab.Node) {
	g.t.Helper()
	for _, v := range g.vips {
		delVIP(g.t, n, v)
	}
}
