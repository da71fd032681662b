package e2e

import (
	"encoding/json"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/status"
)

var variants = []struct {
	name    string
	ipv6    bool
	unicast bool
}{
	{"ipv4-multicast", false, false},
	{"ipv4-unicast", false, true},
	{"ipv6-multicast", true, false},
	{"ipv6-unicast", true, true},
}

// TestFailover runs three hapod nodes and breaks the VIP holder in every
// way the issue names: SIGKILL, link down, SIGTERM, partition and heal.
func TestFailover(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			c := newCluster(t, clusterOptions{ipv6: v.ipv6, unicast: v.unicast})

			holder := c.stableOneHolder(time.Second)
			t.Logf("initial holder %s; the client reaches backend %s", holder.Name, c.reach(3*time.Second))
			for i := range c.lab.Nodes {
				if code, body, err := c.status(i, "/readyz"); err != nil || code != 200 {
					t.Errorf("node%d /readyz = %d %q %v", i, code, body, err)
				}
			}

			// SIGKILL: no goodbye; a backup takes over after Master_Down_Interval.
			i := c.index(holder)
			if err := c.kill(i, syscall.SIGKILL); err == nil || !strings.Contains(err.Error(), "killed") {
				t.Fatalf("SIGKILL: %v", err)
			}
			next, took := c.waitOneHolder(3*time.Second, holder)
			t.Logf("SIGKILL of %s: %s took over after %v", holder.Name, next.Name, took)
			c.reach(3 * time.Second)
			// The killed process left the VIP behind; its restart removes it.
			c.start(i)
			if h := c.stableOneHolder(time.Second); h != next {
				t.Fatalf("restarted %s took the VIP from %s (equal priorities must not move it)", holder.Name, next.Name)
			}

			// Link down: the holder must let go; another takes over.
			holder = next
			holder.LinkDown(t)
			next, took = c.waitOneHolder(3*time.Second, holder)
			t.Logf("link down on %s: %s took over after %v", holder.Name, next.Name, took)
			c.waitNotHolding(holder, 2*time.Second)
			holder.LinkUp(t)
			c.stableOneHolder(time.Second)
			c.reach(3 * time.Second)

			// SIGTERM: priority 0, handover, exit 0 within a second.
			holder, _ = c.waitOneHolder(time.Second)
			i = c.index(holder)
			start := time.Now()
			if err := c.kill(i, syscall.SIGTERM); err != nil {
				t.Fatalf("SIGTERM: hapod did not exit 0: %v", err)
			}
			if d := time.Since(start); d > 1500*time.Millisecond {
				t.Errorf("SIGTERM: exit took %v", d)
			}
			if holder.HasAddr(c.vip.Addr()) {
				t.Errorf("SIGTERM: %s still holds the VIP after exiting", holder.Name)
			}
			next, took = c.waitOneHolder(3 * time.Second)
			t.Logf("SIGTERM of %s: %s holds the VIP %v after the exit", holder.Name, next.Name, took)
			c.reach(3 * time.Second)
			c.start(i)
			c.stableOneHolder(500 * time.Millisecond)

			// Partition the holder: the rest elect another; heal: one again.
			holder, _ = c.waitOneHolder(time.Second)
			c.lab.Partition(t, holder)
			next, took = c.waitOneHolder(3*time.Second, holder)
			t.Logf("partition of %s: %s took over after %v", holder.Name, next.Name, took)
			if !holder.HasAddr(c.vip.Addr()) {
				t.Errorf("partitioned %s gave up the VIP though it hears nobody", holder.Name)
			}
			want := c.healActive(holder, next)

			// A partitioned backup hears nobody and takes the VIP in its
			// isolation. The lowest-addressed backup: at the heal it meets
			// the holder, usually of a higher address, and is the one that
			// must yield (above, the partitioned one usually won).
			var backup *lab.Node
			for _, n := range c.lab.Nodes {
				if n != want && (backup == nil || c.primary(n).Less(c.primary(backup))) {
					backup = n
				}
			}
			c.lab.Partition(t, backup)
			lab.WaitFor(t, 3*time.Second, "partitioned backup "+backup.Name+" takes the VIP", func() bool {
				return backup.HasAddr(c.vip.Addr())
			})
			if !want.HasAddr(c.vip.Addr()) {
				t.Fatalf("%s lost the VIP when %s was partitioned", want.Name, backup.Name)
			}
			c.healActive(backup, want)
			c.reach(3 * time.Second)
		})
	}
}

// TestMisconfiguredPeerWarns: a node restarted with another VRRP version
// cannot hear the others (nor they it), so both sides end up active; each
// says why in one warning instead of leaving it to the drop counters.
func TestMisconfiguredPeerWarns(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 2})
	c.stableOneHolder(300 * time.Millisecond)
	if err := c.kill(1, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.args[1] = append(c.args[1], "--vrrp-version=2", "--advert-interval=1s")
	c.start(1)
	// A warning line, whatever other attributes (family=) sit between
	// its message and its reason.
	warnings := func(log, detail string) int {
		n := 0
		for line := range strings.Lines(log) {
			if strings.Contains(line, `msg="VRRP advert from a differently configured router dropped"`) &&
				strings.Contains(line, " reason=version ") && strings.Contains(line, detail) {
				n++
			}
		}
		return n
	}
	lab.WaitFor(t, 10*time.Second, "both nodes warn about the other's version", func() bool {
		return warnings(c.procs[0].Log(), `detail="VRRPv2 from `) > 0 && warnings(c.procs[1].Log(), `detail="VRRPv3 from `) > 0
	})
	for i, p := range c.procs {
		if n := warnings(p.Log(), "detail="); n != 1 {
			t.Errorf("node%d warned %d times, want once a minute:\n%s", i, n, p.Log())
		}
	}
}

// healActive heals the partitioned node, active on its side, while other
// is active on the rest of the lab. Two active routers of equal priority
// meet: RFC 9568 section 6.4.3 keeps the one whose primary address is
// higher, within the bound of 3 advert intervals; the other holds
// no VIP and is a backup. It returns the winner.
func (c *cluster) healActive(partitioned, other *lab.Node) *lab.Node {
	c.t.Helper()
	want, lose := partitioned, other
	if c.primary(other).Compare(c.primary(partitioned)) > 0 {
		want, lose = other, partitioned
	}
	healed := time.Now()
	c.lab.Heal(c.t, partitioned)
	one, _ := c.waitOneHolder(3 * 100 * time.Millisecond)
	c.t.Logf("heal of %s: one holder (%s) %v after the heal; primaries %s %s, %s %s", partitioned.Name, one.Name,
		time.Since(healed), partitioned.Name, c.primary(partitioned), other.Name, c.primary(other))
	if one != want {
		c.t.Fatalf("heal: %s kept the VIP, want %s (primary %s beats %s's %s)",
			one.Name, want.Name, c.primary(want), lose.Name, c.primary(lose))
	}
	if c.stableOneHolder(time.Second) != want {
		c.t.Fatalf("heal: the VIP left %s", want.Name)
	}
	if lose.HasAddr(c.vip.Addr()) {
		c.t.Errorf("heal: %s still holds the VIP", lose.Name)
	}
	for _, n := range []*lab.Node{want, lose} {
		st := map[bool]string{true: "Active", false: "Backup"}[n == want]
		if r := c.vrrpStatus(c.index(n)); r.State != st || c.holdsVIP(r) != (n == want) {
			c.t.Errorf("heal: %s reports state %s, holdsVIP %v; want %s", n.Name, r.State, c.holdsVIP(r), st)
		}
	}
	return want
}

// primary is n's VRRP primary address in the VIP's family, the source of
// its adverts and its tie-breaker: the IPv4 address; for IPv6 the
// link-local one with multicast (RFC 9568 sends from it), the global one
// with unicast peers (as hapod's daemon picks it). It must match what n's
// hapod reports in /status.
func (c *cluster) primary(n *lab.Node) netip.Addr {
	c.t.Helper()
	want := n.Addr(c.vip.Addr())
	if want.Is6() && !c.unicast() {
		list, err := n.Addrs()
		if err != nil {
			c.t.Fatal(err)
		}
		want = netip.Addr{}
		for _, p := range list {
			if p.Addr().Is6() && p.Addr().IsLinkLocalUnicast() {
				want = p.Addr()
			}
		}
		if !want.IsValid() {
			c.t.Fatalf("%s has no IPv6 link-local address: %v", n.Name, list)
		}
	}
	if got := c.vrrpStatus(c.index(n)).Address; got != want {
		c.t.Fatalf("%s's hapod reports primary address %s, want %s", n.Name, got, want)
	}
	return want
}

// unicast reports whether the cluster's nodes advertise to unicast peers.
func (c *cluster) unicast() bool {
	for _, a := range c.args[0] {
		if strings.HasPrefix(a, "--peer=") {
			return true
		}
	}
	return false
}

// vrrpStatus is the router of c's VIP in node i's GET /status.
func (c *cluster) vrrpStatus(i int) status.RouterReport {
	c.t.Helper()
	code, body, err := c.status(i, "/status")
	if err != nil || code != 200 {
		c.t.Fatalf("node%d GET /status: %d %v", i, code, err)
	}
	var r status.Report
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		c.t.Fatalf("node%d GET /status: %v\n%s", i, err, body)
	}
	return c.router(r)
}

// router is the router of c's VIP in r (its family's), zero when r has
// none.
func (c *cluster) router(r status.Report) status.RouterReport {
	for _, rr := range r.Routers {
		if rr.Family == config.FamilyOf(c.vip.Addr()) {
			return rr
		}
	}
	return status.RouterReport{}
}

// holdsVIP reports whether rr says c's VIP is on the node's interface,
// as the kernel has it.
func (c *cluster) holdsVIP(rr status.RouterReport) bool {
	for _, v := range rr.VIPs {
		if v.Prefix.Addr() == c.vip.Addr() {
			return v.Held
		}
	}
	return false
}

// vipHolding is the kernel's view of c's VIP in r, nil when r lacks it.
func (c *cluster) vipHolding(r status.Report) *status.HoldingReport {
	for _, v := range c.router(r).VIPs {
		if v.Prefix.Addr() == c.vip.Addr() {
			return v.Holding
		}
	}
	return nil
}
