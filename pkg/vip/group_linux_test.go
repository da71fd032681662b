package vip

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
)

// lockedBuffer is a log sink written by Run's goroutine and read by the
// test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startGroup runs a Group in node n and returns its link reports and the
// indexes it was rebound to.
func startGroup(t *testing.T, n *lab.Node, cfg GroupConfig) (*Group, <-chan bool, <-chan int) {
	t.Helper()
	rebound := make(chan int, 4)
	cfg.OnRebind = func(index int) error { rebound <- index; return nil }
	var g *Group
	var err error
	inNS(t, n, func() { g, err = NewGroup(cfg) })
	if err != nil {
		t.Fatal(err)
	}
	links := make(chan bool, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// Run opens its sockets (the subscription, new bindings) on its own
	// thread: that one must be in n too.
	go func() {
		done <- n.Do(func() error { return g.Run(ctx, func(up bool) { links <- up }) })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		g.Close()
	})
	return g, links, rebound
}

// waitStatus polls the group's status until ok accepts it.
func waitStatus(t *testing.T, g *Group, what string, ok func(GroupStatus) bool) GroupStatus {
	t.Helper()
	deadline := time.Now().Add(failGuard)
	for {
		st := g.Status()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after %v: %+v", what, failGuard, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func allHeld(want bool) func(GroupStatus) bool {
	return func(st GroupStatus) bool {
		for _, v := range st.VIPs {
			if v.Held != want {
				return false
			}
		}
		return true
	}
}

// noMoreLinks fails if the link was reported again.
func noMoreLinks(t *testing.T, links <-chan bool) {
	t.Helper()
	select {
	case up := <-links:
		t.Errorf("link reported again (up %v): want one report per change for the group", up)
	default:
	}
}

// A group of two VIPs of one family: both announced on Acquire (the peer
// learns each at this node's MAC), both removed on Release, one deleted
// behind the group's back added again while the other is left alone, the
// link reported once for the group.
func TestLabGroup(t *testing.T) {
	for _, tc := range []struct {
		name   string
		vips   []string
		source string
	}{
		{"IPv4", []string{"198.18.0.10/24", "198.18.0.11/24"}, "198.18.0.1"},
		{"IPv6", []string{"2001:db8::10/64", "2001:db8::11/64"}, "2001:db8::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			var vips []netip.Prefix
			for _, v := range tc.vips {
				p := netip.MustParsePrefix(v)
				vips = append(vips, p)
				// B knows each VIP at another MAC, as after a failover.
				run(t, "ip", "-n", l.b.NS, "neigh", "replace", p.Addr().String(), "lladdr", bogusMAC, "dev", "eth0", "nud", "stale")
			}
			logs := &lockedBuffer{}
			g, links, _ := startGroup(t, l.a, GroupConfig{Interface: "eth0", Prefixes: vips,
				Source: netip.MustParseAddr(tc.source), RepeatAfter: -1, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			nextState(t, links, true, "initial")

			if err := g.Acquire(); err != nil {
				t.Fatal(err)
			}
			for _, v := range vips {
				if !held(t, l.a, v.Addr()) {
					t.Errorf("%s not on A after Acquire", v)
				}
				waitNeighMAC(t, l.b, v.Addr(), macString(l.macA))
			}
			before := waitStatus(t, g, "both held", allHeld(true))

			run(t, "ip", "-n", l.a.NS, "addr", "del", vips[1].String(), "dev", "eth0")
			waitHeld(t, l.a, "eth0", vips[1].Addr(), true, "second VIP added back after ip addr del")
			after := waitStatus(t, g, "second VIP held again", func(st GroupStatus) bool {
				return st.VIPs[1].Held && st.VIPs[1].HeldSince.After(before.VIPs[1].HeldSince)
			})
			if !after.VIPs[0].Held || !after.VIPs[0].HeldSince.Equal(before.VIPs[0].HeldSince) {
				t.Errorf("first VIP after the second was deleted: %+v, want held since %v", after.VIPs[0], before.VIPs[0].HeldSince)
			}
			if got := strings.Count(logs.String(), "VIP missing while active"); got != 1 ||
				!strings.Contains(logs.String(), "vip="+vips[1].Addr().String()) {
				t.Errorf("want one VIP added again, %s:\n%s", vips[1].Addr(), logs)
			}

			if err := g.Release(); err != nil {
				t.Fatal(err)
			}
			for _, v := range vips {
				if held(t, l.a, v.Addr()) {
					t.Errorf("%s still on A after Release", v)
				}
			}
			// Added by hand while not wanted: removed.
			run(t, "ip", "-n", l.a.NS, "addr", "add", vips[0].String(), "dev", "eth0", "nodad")
			waitHeld(t, l.a, "eth0", vips[0].Addr(), false, "VIP added by hand removed while not wanted")
			if _, ok := addrOn(t, l.a, netip.MustParseAddr(tc.source)); !ok {
				t.Error("the group removed A's own address")
			}
			noMoreLinks(t, links)

			// Carrier lost and back: one report each for the whole group.
			l.a.CarrierDown(t)
			nextState(t, links, false, "peer veth down")
			l.a.CarrierUp(t)
			nextState(t, links, true, "peer veth up")
			waitStatus(t, g, "link up", func(st GroupStatus) bool { return st.LinkUp })
			noMoreLinks(t, links)
		})
	}
}

// Another host holding one of the group's VIPs (a stale holder) is found
// by the probes and counted against that VIP alone.
func TestLabGroupConflict(t *testing.T) {
	for _, tc := range []struct {
		name   string
		vips   []string
		source string
	}{
		{"IPv4", []string{"198.18.0.10/24", "198.18.0.11/24"}, "198.18.0.1"},
		{"IPv6", []string{"2001:db8::10/64", "2001:db8::11/64"}, "2001:db8::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			vips := []netip.Prefix{netip.MustParsePrefix(tc.vips[0]), netip.MustParsePrefix(tc.vips[1])}
			g, links, _ := startGroup(t, l.a, GroupConfig{Interface: "eth0", Prefixes: vips,
				Source: netip.MustParseAddr(tc.source), RepeatAfter: -1})
			nextState(t, links, true, "initial")
			if err := g.Acquire(); err != nil {
				t.Fatal(err)
			}
			run(t, "ip", "-n", l.b.NS, "addr", "add", vips[1].String(), "dev", "eth0", "nodad")
			st := waitStatus(t, g, "a conflict on the second VIP", func(st GroupStatus) bool { return st.VIPs[1].Conflicts > 0 })
			if st.VIPs[1].LastConflict.MAC.String() != l.b.MAC.String() || st.VIPs[0].Conflicts != 0 {
				t.Errorf("conflicts %+v; want the second VIP claimed by B (%s), the first not", st.VIPs, l.b.MAC)
			}
		})
	}
}

// RemoveStale removes every VIP a predecessor left, whatever its prefix
// length, and says which.
func TestLabGroupRemoveStale(t *testing.T) {
	l := newLab(t)
	for _, tc := range []struct {
		leftovers []string
		cfg       []string
		source    string
	}{
		{[]string{"198.18.0.10/32", "198.18.0.11/24"}, []string{"198.18.0.10/24", "198.18.0.11/24", "198.18.0.12/24"}, "198.18.0.1"},
		{[]string{"2001:db8::10/128", "2001:db8::11/64"}, []string{"2001:db8::10/64", "2001:db8::11/64", "2001:db8::12/64"}, "2001:db8::1"},
	} {
		var vips []netip.Prefix
		for _, v := range tc.cfg {
			vips = append(vips, netip.MustParsePrefix(v))
		}
		for _, v := range tc.leftovers {
			run(t, "ip", "-n", l.a.NS, "addr", "add", v, "dev", "eth0", "nodad")
		}
		var g *Group
		var err error
		inNS(t, l.a, func() {
			g, err = NewGroup(GroupConfig{Interface: "eth0", Prefixes: vips, Source: netip.MustParseAddr(tc.source)})
		})
		if err != nil {
			t.Fatal(err)
		}
		if removed, err := g.RemoveStale(); err != nil || !slices.Equal(removed, vips[:2]) {
			t.Errorf("%v: RemoveStale = %v, %v; want %v, nil", tc.leftovers, removed, err, vips[:2])
		}
		for _, v := range vips {
			if held(t, l.a, v.Addr()) {
				t.Errorf("%s still on A after RemoveStale", v)
			}
		}
		if removed, err := g.RemoveStale(); err != nil || removed != nil {
			t.Errorf("%v: second RemoveStale = %v, %v; want none", tc.leftovers, removed, err)
		}
		if err := g.Close(); err != nil {
			t.Error(err)
		}
	}
}

// Deleted and created again, the interface is bound again once for the
// whole group, and both VIPs go on the new one.
func TestLabGroupInterfaceRecreated(t *testing.T) {
	l := newLab(t)
	mk := func() {
		run(t, "ip", "-n", l.a.NS, "link", "add", "dm0", "type", "bridge")
		run(t, "ip", "-n", l.a.NS, "addr", "add", "198.18.1.1/24", "dev", "dm0")
		run(t, "ip", "-n", l.a.NS, "link", "set", "dm0", "up")
	}
	mk()
	vips := []netip.Prefix{netip.MustParsePrefix("198.18.1.10/24"), netip.MustParsePrefix("198.18.1.11/24")}
	g, links, rebound := startGroup(t, l.a, GroupConfig{Interface: "dm0", Prefixes: vips, Source: netip.MustParseAddr("198.18.1.1")})
	nextState(t, links, true, "initial")
	if err := g.Acquire(); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "-n", l.a.NS, "link", "del", "dm0")
	nextState(t, links, false, "bridge deleted")
	mk()
	select {
	case <-rebound:
	case <-time.After(failGuard):
		t.Fatal("not rebound to the new interface")
	}
	nextState(t, links, true, "bridge created again and up")
	// The group is still active: it puts both VIPs on the new interface.
	for _, v := range vips {
		waitHeld(t, l.a, "dm0", v.Addr(), true, v.String()+" on the new interface")
	}
	select {
	case i := <-rebound:
		t.Errorf("rebound again (index %d): want one OnRebind for the group", i)
	default:
	}
	noMoreLinks(t, links)
}

// Close releases every socket NewGroup opened, the netlink socket that
// reads the interface's state too.
func TestLabGroupCloseReleasesSockets(t *testing.T) {
	l := newLab(t)
	cfg := GroupConfig{Interface: "eth0", Prefixes: []netip.Prefix{vip4, vip4b}, Source: netip.MustParseAddr("198.18.0.1")}
	cycle := func() {
		var g *Group
		var err error
		inNS(t, l.a, func() { g, err = NewGroup(cfg) })
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
	}
	openFDs := func() int {
		fds, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(fds)
	}
	cycle() // the runtime's own lazily opened descriptors
	before := openFDs()
	for range 10 {
		cycle()
	}
	if after := openFDs(); after > before {
		t.Errorf("%d descriptors open after 10 groups were opened and closed, %d before", after, before)
	}
}
