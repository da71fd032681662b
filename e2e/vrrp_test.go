package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hapod/hapod/e2e/lab"
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
			i = c.index(holder)
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
			healed := time.Now()
			c.lab.Heal(t, holder)
			// The bound: one holder within 3 advert intervals.
			one, _ := c.waitOneHolder(3 * 100 * time.Millisecond)
			t.Logf("heal: one holder (%s) %v after the heal", one.Name, time.Since(healed))
			c.stableOneHolder(time.Second)
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
	const warning = `msg="VRRP advert from a differently configured router dropped" reason=version`
	lab.WaitFor(t, 10*time.Second, "both nodes warn about the other's version", func() bool {
		return strings.Contains(c.procs[0].Log(), warning+` detail="VRRPv2 from `) &&
			strings.Contains(c.procs[1].Log(), warning+` detail="VRRPv3 from `)
	})
	for i, p := range c.procs {
		if n := strings.Count(p.Log(), warning); n != 1 {
			t.Errorf("node%d warned %d times, want once a minute:\n%s", i, n, p.Log())
		}
	}
}
