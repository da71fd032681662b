package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/status"
)

// The tests here change the kernel's view of the VIP behind hapod's back,
// as an administrator, netplan, a DHCP client or a driver reload does, and
// check that hapod follows the kernel: the VIP is held exactly by the
// active node, clients reach it, and `hapod status` never says healthy
// while they cannot.

// report reads node i's /status.
func (c *cluster) report(i int) (status.Report, error) {
	code, body, err := c.status(i, "/status")
	if err != nil {
		return status.Report{}, err
	}
	if code != 200 {
		return status.Report{}, fmt.Errorf("node%d GET /status: HTTP %d", i, code)
	}
	var r status.Report
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return status.Report{}, fmt.Errorf("node%d GET /status: %w", i, err)
	}
	return r, nil
}

// waitReport waits until node i's report satisfies cond and returns it;
// on timeout it fails with the last report's state and problems.
func (c *cluster) waitReport(i int, what string, cond func(status.Report) bool) status.Report {
	c.t.Helper()
	const timeout = 15 * time.Second
	deadline := time.Now().Add(timeout)
	for {
		r, err := c.report(i)
		if err == nil && cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("node%d: gave up after %v waiting for %s; last: state %s, holds VIP %v, healthy %v, problems %q, err %v",
				i, timeout, what, c.router(r).State, c.holdsVIP(c.router(r)), r.Healthy, r.Problems, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hapodStatus runs `hapod status` on node i and returns its exit status
// and output.
func (c *cluster) hapodStatus(i int) (int, string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := c.lab.Nodes[i].Command(ctx, hapodBin, "status").CombinedOutput()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		c.t.Fatalf("node%d: hapod status: %v", i, err)
	}
	return 0, string(out)
}

// waitHolds waits until n holds the VIP and returns how long it took.
func (c *cluster) waitHolds(n *lab.Node, timeout time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	lab.WaitFor(c.t, timeout, n.Name+" holding "+c.vip.Addr().String(), func() bool { return n.HasAddr(c.vip.Addr()) })
	return time.Since(start)
}

// Defect 1 of issue 19: `ip addr del VIP` on the active node left it
// Active and advertising without the VIP: no backup took over, clients
// timed out for ever, status said healthy. The active node adds it back.
func TestVIPDeletedIsAddedBack(t *testing.T) {
	for _, family := range []string{"IPv4", "IPv6"} {
		t.Run(family, func(t *testing.T) { testVIPDeletedIsAddedBack(t, family == "IPv6") })
	}
}

func testVIPDeletedIsAddedBack(t *testing.T, ipv6 bool) {
	c := newCluster(t, clusterOptions{nodes: 2, ipv6: ipv6})
	holder, _ := c.waitOneHolder(10 * time.Second)
	hi := c.index(holder)
	c.reach(10 * time.Second)
	probe := lab.StartProbe(t.Context(), c.lab.Client, netip.AddrPortFrom(c.vip.Addr(), frontendPort), 0)

	del := time.Now()
	holder.Run(t, "ip", "addr", "del", c.vip.String(), "dev", holder.Iface)
	c.waitHolds(holder, 10*time.Second)
	back := time.Since(del) // an upper bound: includes running ip
	c.reach(10 * time.Second)
	time.Sleep(200 * time.Millisecond) // a few probes after the recovery
	res := probe.Stop()
	t.Logf("VIP back on %s within %v of starting ip addr del; client: %v, outage after the delete %v", holder.Name, back, res, res.OutageAfter(del))
	if h := c.holders(); len(h) != 1 || h[0] != holder {
		t.Errorf("holders after the delete: %s, want [%s]", names(h), holder.Name)
	}
	c.waitReport(hi, "healthy, Active, holding the VIP", func(r status.Report) bool {
		return r.Healthy && c.router(r).State == "Active" && c.holdsVIP(c.router(r))
	})
	if !strings.Contains(c.procs[hi].Log(), "VIP missing while active: adding it again") {
		t.Errorf("%s did not log why it added the VIP again", holder.Name)
	}
}

// `ip addr flush dev eth0` on the active node takes the node's own address
// too: it cannot advertise, so it must let a backup take over rather than
// hold the VIP mute, say so in `hapod status`, and come back as a backup
// once its address returns.
func TestVIPFlushedHandsOver(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 2})
	holder, _ := c.waitOneHolder(10 * time.Second)
	hi := c.index(holder)
	other := c.lab.Nodes[1-hi]
	c.reach(10 * time.Second)
	probe := lab.StartProbe(t.Context(), c.lab.Client, netip.AddrPortFrom(c.vip.Addr(), frontendPort), 0)

	flush := time.Now()
	holder.Run(t, "ip", "addr", "flush", "dev", holder.Iface)
	took := c.waitHolds(other, 10*time.Second)
	c.reach(10 * time.Second)
	time.Sleep(200 * time.Millisecond)
	res := probe.Stop()
	t.Logf("after ip addr flush: %s took the VIP in %v; client: %v, outage after the flush %v", other.Name, took, res, res.OutageAfter(flush))

	r := c.waitReport(hi, "not healthy, naming the lost address", func(r status.Report) bool {
		return !r.Healthy && strings.Contains(strings.Join(r.Problems, "; "), "lost this node's address")
	})
	if rr := c.router(r); rr.State == "Active" || c.holdsVIP(rr) {
		t.Errorf("%s after the flush: state %s, holds VIP %v; want not Active, not holding", holder.Name, rr.State, c.holdsVIP(rr))
	}
	if code, out := c.hapodStatus(hi); code != 1 || !strings.Contains(out, "lost this node's address") {
		t.Errorf("hapod status on %s after the flush: exit %d, want 1 naming the lost address:\n%s", holder.Name, code, out)
	}
	if h := c.holders(); len(h) != 1 || h[0] != other {
		t.Errorf("holders after the flush: %s, want [%s]", names(h), other.Name)
	}

	holder.RestoreAddrs(t)
	c.waitReport(hi, "healthy Backup once its address is back", func(r status.Report) bool {
		return r.Healthy && c.router(r).State == "Backup" && !c.holdsVIP(c.router(r))
	})
	c.stableOneHolder(time.Second)
	c.reach(10 * time.Second)
}

// Defect 3 of issue 19: an interface deleted and created again (new index)
// left the VRRP socket and the VIP manager on the old index: the node sat
// "Active" without the VIP and sent no adverts. It binds to the new
// interface: it hears the active node (stays Backup), and takes over with
// the VIP on the new interface when it must.
func TestInterfaceRecreated(t *testing.T) {
	c := newCluster(t, clusterOptions{nodes: 2})
	holder, _ := c.waitOneHolder(10 * time.Second)
	hi := c.index(holder)
	oi := 1 - hi
	other := c.lab.Nodes[oi]
	c.reach(10 * time.Second)

	holder.DeleteLink(t)
	took := c.waitHolds(other, 10*time.Second)
	t.Logf("%s deleted its interface; %s took the VIP in %v", holder.Name, other.Name, took)
	c.waitReport(hi, "not healthy, the interface missing", func(r status.Report) bool {
		return !r.Healthy && strings.Contains(strings.Join(r.Problems, "; "), "does not exist")
	})

	holder.CreateLink(t)
	r := c.waitReport(hi, "healthy Backup on the new interface", func(r status.Report) bool {
		return r.Healthy && c.router(r).State == "Backup"
	})
	// Adverts arrive on the new interface: the active node is heard.
	received := c.router(r).AdvertsReceived
	c.waitReport(hi, "adverts received on the new interface", func(r status.Report) bool {
		return c.router(r).AdvertsReceived > received+5 && c.router(r).ActiveRouter == c.primary(other)
	})
	if h := c.holders(); len(h) != 1 || h[0] != other {
		t.Errorf("holders after the interface came back: %s, want [%s]", names(h), other.Name)
	}
	if !strings.Contains(c.procs[hi].Log(), "bound to the interface again") {
		t.Errorf("%s did not log binding to the new interface", holder.Name)
	}

	// Now it must take over: the VIP goes on the new interface, and its
	// adverts leave from it (the other node, restarted, hears them).
	if err := c.kill(oi, syscall.SIGTERM); err != nil {
		t.Fatalf("stop %s: %v", other.Name, err)
	}
	took = c.waitHolds(holder, 10*time.Second)
	t.Logf("%s (new interface) took the VIP in %v after %s stopped", holder.Name, took, other.Name)
	if name := c.reach(10 * time.Second); name == "" {
		t.Error("client not served through the VIP")
	}
	c.waitReport(hi, "healthy Active holding the VIP", func(r status.Report) bool {
		return r.Healthy && c.router(r).State == "Active" && c.holdsVIP(c.router(r))
	})
	c.start(oi)
	c.waitReport(oi, "the restarted node hears the recreated one as active", func(r status.Report) bool {
		return c.router(r).State == "Backup" && c.router(r).ActiveRouter == c.primary(holder)
	})
}

// A second host answering for the VIP (a node whose hapod was SIGKILLed
// with the VIP on, an address added by hand) draws the clients whose
// neighbour entry points at it. The active node notices (it asks who has
// the VIP every second), counts and reports the conflict, and announces
// the VIP again, so clients come back to it.
func TestVIPConflictDefended(t *testing.T) {
	for _, family := range []string{"IPv4", "IPv6"} {
		t.Run(family, func(t *testing.T) { testVIPConflictDefended(t, family == "IPv6") })
	}
}

func testVIPConflictDefended(t *testing.T, ipv6 bool) {
	c := newCluster(t, clusterOptions{nodes: 2, ipv6: ipv6})
	holder, _ := c.waitOneHolder(10 * time.Second)
	hi := c.index(holder)
	si := 1 - hi
	stale := c.lab.Nodes[si]
	c.reach(10 * time.Second)

	// The stale holder: no hapod, the VIP on its interface, and the
	// client's cache pointing at it (as its own announcements would).
	if err := c.kill(si, syscall.SIGKILL); err != nil && !strings.Contains(err.Error(), "killed") {
		t.Fatalf("kill %s: %v", stale.Name, err)
	}
	stale.Run(t, "ip", "addr", "add", c.vip.String(), "dev", stale.Iface, "nodad")
	start := time.Now()
	c.lab.Client.Run(t, "ip", "neigh", "replace", c.vip.Addr().String(), "lladdr", stale.MAC.String(),
		"dev", c.lab.Client.Iface, "nud", "stale")

	r := c.waitReport(hi, "a conflict with the stale holder's MAC", func(r status.Report) bool {
		h := c.vipHolding(r)
		return h != nil && h.Conflicts > 0 && h.LastConflictMAC == stale.MAC.String()
	})
	t.Logf("conflict seen %v after the stale VIP appeared: %+v", time.Since(start), *c.vipHolding(r))
	if r.Healthy {
		t.Errorf("%s healthy during a conflict: %+v", holder.Name, r)
	}
	if code, out := c.hapodStatus(hi); code != 1 || !strings.Contains(out, stale.MAC.String()) {
		t.Errorf("hapod status on %s during the conflict: exit %d, want 1 naming %s:\n%s", holder.Name, code, stale.MAC, out)
	}
	m, err := (&statusCluster{cluster: c}).metrics(hi)
	if err != nil {
		t.Fatal(err)
	}
	if conflicts := c.vipSeries("hapod_vip_conflicts_total"); m[conflicts] < 1 {
		t.Errorf("%s = %v, want >= 1", conflicts, m[conflicts])
	}
	lab.WaitFor(t, 10*time.Second, "the client's neighbour entry for the VIP back on "+holder.Name, func() bool {
		out, err := c.lab.Client.Command(t.Context(), "ip", "neigh", "show", c.vip.Addr().String(), "dev", c.lab.Client.Iface).Output()
		return err == nil && strings.Contains(string(out), holder.MAC.String())
	})
	t.Logf("client's neighbour entry back on %s %v after the stale VIP appeared", holder.Name, time.Since(start))
	if name := c.reach(10 * time.Second); name == "" {
		t.Error("client not served through the VIP")
	}
	if !strings.Contains(c.procs[hi].Log(), "another host answers for the VIP") {
		t.Errorf("%s did not log the conflict", holder.Name)
	}
}
