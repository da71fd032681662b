package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
)

// dualStack is hapod on three nodes with VIPs of both families: one IPv4
// VIP, one IPv6 VIP and a second IPv4 VIP (issue 22), over backends
// listed with both addresses of every node.
type dualStack struct {
	t     *testing.T
	lab   *lab.Lab
	vips  []netip.Prefix
	args  [][]string
	procs []*lab.Process
}

func newDualStack(t *testing.T) *dualStack {
	t.Helper()
	l := lab.New(t, 3)
	d := &dualStack{t: t, lab: l, vips: []netip.Prefix{l.VIP4Prefix(0), l.VIP6Prefix(0), l.VIP4Prefix(1)}}
	var backends []netip.AddrPort
	for _, n := range l.Nodes {
		for _, a := range []netip.Addr{n.IPv4, n.IPv6} {
			ap := netip.AddrPortFrom(a, backendPort)
			serveHold(t, n, ap)
			backends = append(backends, ap)
		}
	}
	for _, n := range l.Nodes {
		cfg := hapodConfig(d.vips[0], n, backends...)
		cfg.VIP.Prefixes = d.vips
		cfg.Health.Interval, cfg.Health.Timeout = 500*time.Millisecond, 400*time.Millisecond
		d.args = append(d.args, runArgs(cfg))
		d.procs = append(d.procs, nil)
	}
	for i := range l.Nodes {
		d.start(i)
	}
	return d
}

func (d *dualStack) start(i int) {
	d.procs[i] = d.lab.Nodes[i].Start(d.t, hapodBin, d.args[i]...)
}

// holders returns, per VIP, the nodes (not in skip) that have it.
func (d *dualStack) holders(skip ...*lab.Node) [][]*lab.Node {
	out := make([][]*lab.Node, len(d.vips))
	for i, v := range d.vips {
		for _, n := range d.lab.Holders(v.Addr()) {
			if !slices.Contains(skip, n) {
				out[i] = append(out[i], n)
			}
		}
	}
	return out
}

// holderOf returns the one node (not in skip) holding the VIP, or nil.
func (d *dualStack) holderOf(v netip.Prefix, skip ...*lab.Node) *lab.Node {
	h := d.holders(skip...)[slices.Index(d.vips, v)]
	if len(h) != 1 {
		return nil
	}
	return h[0]
}

// waitTogether waits until one node (not in skip) holds every VIP and
// still does 300 ms later, and returns it with the time each VIP took
// to be on it.
func (d *dualStack) waitTogether(timeout time.Duration, skip ...*lab.Node) (*lab.Node, []time.Duration) {
	d.t.Helper()
	start := time.Now()
	took := make([]time.Duration, len(d.vips))
	var last [][]*lab.Node
	for time.Since(start) < timeout {
		last = d.holders(skip...)
		one := len(last[0]) == 1
		for i, h := range last {
			one = one && len(h) == 1 && h[0] == last[0][0]
			if len(h) == 1 && took[i] == 0 {
				took[i] = time.Since(start)
			}
		}
		if one {
			time.Sleep(300 * time.Millisecond)
			if again := d.holders(skip...); slices.EqualFunc(again, last, slices.Equal) {
				return last[0][0], took
			}
			took = make([]time.Duration, len(d.vips))
			continue
		}
		time.Sleep(5 * time.Millisecond)
	}
	d.t.Fatalf("after %v the VIPs are not together on one node: %s", timeout, d.describe(last))
	return nil, nil
}

func (d *dualStack) describe(hs [][]*lab.Node) string {
	s := ""
	for i, h := range hs {
		s += fmt.Sprintf(" %s on %s", d.vips[i].Addr(), names(h))
	}
	return s
}

// reachAll checks that the client reaches the proxy on every VIP, over
// its family.
func (d *dualStack) reachAll() {
	d.t.Helper()
	for _, v := range d.vips {
		target := netip.AddrPortFrom(v.Addr(), frontendPort)
		lab.WaitFor(d.t, 5*time.Second, "the client reaching "+target.String(), func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err := d.lab.Client.WhoServes(ctx, target)
			return err == nil
		})
	}
}

// probeAll probes every VIP from the client every 20 ms until stopped.
func (d *dualStack) probeAll() []*lab.Probe {
	var ps []*lab.Probe
	for _, v := range d.vips {
		ps = append(ps, lab.StartProbe(d.t.Context(), d.lab.Client, netip.AddrPortFrom(v.Addr(), frontendPort), 20*time.Millisecond))
	}
	return ps
}

// checkStatus checks every node's metrics and `hapod status`: a router
// per family, each VIP held by holder alone.
func (d *dualStack) checkStatus(holder *lab.Node) {
	d.t.Helper()
	sc := &statusCluster{cluster: &cluster{t: d.t, lab: d.lab, vip: d.vips[0]}}
	for i, n := range d.lab.Nodes {
		state := "backup"
		if n == holder {
			state = "active"
		}
		for _, v := range d.vips {
			c := &cluster{vip: v}
			sc.waitMetric(i, c.series("hapod_vrrp_state", `state="`+state+`"`), "= 1", func(x float64) bool { return x == 1 })
			sc.waitMetric(i, c.vipSeries("hapod_vrrp_vip_held"), fmt.Sprintf("= %v", b2f(n == holder)), func(x float64) bool { return x == b2f(n == holder) })
		}
		out, errOut, code := sc.hapodStatus(i)
		if n == holder {
			d.t.Logf("hapod status on the holder %s:\n%s", n.Name, out)
		}
		if code != 0 || !strings.Contains(out, "VRRP ipv4") || !strings.Contains(out, "VRRP ipv6") {
			d.t.Errorf("%s: hapod status exit %d, want 0 with a block per family:\n%s%s", n.Name, code, out, errOut)
		}
	}
}

// hold opens a connection from the client through v to a backend and
// reads its greeting; the backend keeps it open (serveHold).
func (d *dualStack) hold(v netip.Prefix) net.Conn {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := d.lab.Client.Dial(ctx, "tcp", netip.AddrPortFrom(v.Addr(), frontendPort).String())
	if err != nil {
		d.t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := bufio.NewReader(conn).ReadString('\n'); err != nil {
		d.t.Fatalf("greeting through %s: %v", v.Addr(), err)
	}
	return conn
}

// linkLocal is n's IPv6 link-local address on its lab interface.
func linkLocal(t *testing.T, n *lab.Node) netip.Prefix {
	t.Helper()
	list, err := n.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list {
		if p.Addr().IsLinkLocalUnicast() {
			return p
		}
	}
	t.Fatalf("%s has no IPv6 link-local address", n.Name)
	return netip.Prefix{}
}

// TestDualStack: one hapod per node holds an IPv4 VIP, an IPv6 VIP and a
// second IPv4 VIP with one virtual router per family (issue 22). The
// families' holders stay together: at start, after a graceful handover
// (no failed connect on any VIP) and after a crash. An IPv6 failure on
// the holder alone moves only the IPv6 VIP, which comes back once IPv6
// works there again; an IPv4 failure moves the IPv4 VIPs and the IPv6 one
// follows.
func TestDualStack(t *testing.T) {
	d := newDualStack(t)
	holder, _ := d.waitTogether(10 * time.Second)
	t.Logf("every VIP on %s", holder.Name)
	d.reachAll()
	d.checkStatus(holder)

	// Graceful: SIGTERM hands every VIP over, together; every family's
	// clients keep connecting.
	probes := d.probeAll()
	time.Sleep(300 * time.Millisecond)
	h := slices.Index(d.lab.Nodes, holder)
	if err := d.procs[h].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.procs[h].Wait(5 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	next, _ := d.waitTogether(10*time.Second, holder)
	time.Sleep(300 * time.Millisecond)
	for i, p := range probes {
		r := p.Stop()
		t.Logf("graceful handover %s -> %s, %s: %v", holder.Name, next.Name, d.vips[i].Addr(), r)
		if r.Failures > 0 {
			t.Errorf("graceful handover: %d of %d connects to %s failed", r.Failures, r.Attempts, d.vips[i].Addr())
		}
	}
	d.start(h)
	if again, _ := d.waitTogether(10 * time.Second); again != next {
		t.Fatalf("the restarted %s took VIPs from %s", holder.Name, next.Name)
	}

	// Crash: SIGKILL leaves the dead node's addresses behind (a crashed
	// host's are unreachable): every VIP moves to one survivor.
	holder = next
	h = slices.Index(d.lab.Nodes, holder)
	d.lab.Partition(t, holder)
	if err := d.procs[h].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = d.procs[h].Wait(5 * time.Second)
	next, took := d.waitTogether(10*time.Second, holder)
	for i, v := range d.vips {
		t.Logf("crash of %s: %s on %s after %v", holder.Name, v.Addr(), next.Name, took[i].Round(time.Millisecond))
	}
	d.lab.Heal(t, holder)
	// The crashed node's leftovers go when its hapod starts again.
	d.start(h)
	lab.WaitFor(t, 10*time.Second, holder.Name+" without the VIPs", func() bool {
		for _, v := range d.vips {
			if holder.HasAddr(v.Addr()) {
				return false
			}
		}
		return true
	})
	if again, _ := d.waitTogether(10 * time.Second); again != next {
		t.Fatalf("after %s came back the VIPs moved from %s to %s", holder.Name, next.Name, again.Name)
	}
	d.reachAll()

	// IPv6 fails alone on the holder (its link-local address, the source
	// of its IPv6 adverts, is gone): the IPv6 VIP moves, the IPv4 ones
	// stay. When it is back, the IPv6 VIP follows the IPv4 holder again.
	holder = next
	held := map[netip.Prefix]net.Conn{}
	for _, v := range d.vips {
		held[v] = d.hold(v)
	}
	ll := linkLocal(t, holder)
	holder.Run(t, "ip", "-6", "addr", "del", ll.String(), "dev", holder.Iface)
	v6 := d.vips[1]
	var v6holder *lab.Node
	lab.WaitFor(t, 10*time.Second, "another node holding "+v6.Addr().String(), func() bool {
		v6holder = d.holderOf(v6)
		return v6holder != nil && v6holder != holder
	})
	for _, v := range []netip.Prefix{d.vips[0], d.vips[2]} {
		if got := d.holderOf(v); got != holder {
			t.Errorf("IPv6 failure on %s moved %s to %v", holder.Name, v.Addr(), got)
		}
	}
	t.Logf("IPv6 failure on %s: %s moved to %s, the IPv4 VIPs stayed", holder.Name, v6.Addr(), v6holder.Name)
	// The connections through the IPv6 VIP were closed as it left (their
	// FINs still from the VIP); those through the IPv4 VIPs go on.
	for v, conn := range held {
		_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, err := conn.Read(make([]byte, 1))
		switch {
		case v == v6 && !errors.Is(err, io.EOF):
			t.Errorf("the connection through %s, which moved, was not closed: %v", v.Addr(), err)
		case v != v6 && !errors.Is(err, os.ErrDeadlineExceeded):
			t.Errorf("the connection through %s, which stayed, ended: %v", v.Addr(), err)
		}
		conn.Close()
	}
	d.reachAll()
	holder.Run(t, "ip", "-6", "addr", "add", ll.String(), "dev", holder.Iface, "nodad")
	if again, _ := d.waitTogether(10 * time.Second); again != holder {
		t.Errorf("after IPv6 came back on %s the VIPs are together on %s", holder.Name, again.Name)
	}
	t.Logf("IPv6 back on %s: %s followed the IPv4 VIPs back", holder.Name, v6.Addr())
	d.reachAll()

	// IPv4 fails alone on the holder: the IPv4 VIPs move, and the IPv6
	// one follows them to their new holder.
	own4 := holder.Prefix4()
	holder.Run(t, "ip", "addr", "del", own4.String(), "dev", holder.Iface)
	next, _ = d.waitTogether(10*time.Second, holder)
	t.Logf("IPv4 failure on %s: every VIP on %s", holder.Name, next.Name)
	holder.Run(t, "ip", "addr", "add", own4.String(), "dev", holder.Iface)
	d.reachAll()
}
