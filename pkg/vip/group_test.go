package vip

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/bpf"
	clocktesting "k8s.io/utils/clock/testing"
)

var vip4b = netip.MustParsePrefix("198.18.0.11/24")

// fakeClaims is a claimWatcher that records probes and hears nothing:
// the tests hand claims to Group.conflict themselves.
type fakeClaims struct {
	mu     sync.Mutex
	probes []netip.Addr
	once   sync.Once
	done   chan struct{}
}

func (f *fakeClaims) probe(vip netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.probes = append(f.probes, vip)
	return nil
}

func (f *fakeClaims) next() (netip.Addr, hwAddr, error) {
	<-f.done
	return netip.Addr{}, hwAddr{}, errors.New("closed")
}

func (f *fakeClaims) close() error { f.once.Do(func() { close(f.done) }); return nil }

func (f *fakeClaims) took() []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.probes
	f.probes = nil
	return p
}

// groupHarness drives a Group's sync, probe and conflict steps against a
// fake kernel: the fake table of the current binding is the interface's
// address list, shared by the binding's Managers as the real one is.
type groupHarness struct {
	g         *Group
	clock     *clocktesting.FakeClock
	kernel    Kernel // Index, Usable, Source; VIPs come from the table
	bindings  []*binding
	tables    []*fakeTable
	senders   []*fakeSender
	claims    []*fakeClaims
	links     []bool
	rebinds   []int
	rebindErr error
	log       *bytes.Buffer
}

func newGroupHarness(t *testing.T, prefixes ...netip.Prefix) *groupHarness {
	t.Helper()
	h := &groupHarness{
		clock:  clocktesting.NewFakeClock(time.Unix(1_700_000_000, 0)),
		kernel: Kernel{Index: 7, Usable: true, Source: true},
		log:    &bytes.Buffer{},
	}
	cfg, vips, err := GroupConfig{Interface: "eth0", Prefixes: prefixes, Source: netip.MustParseAddr("198.18.0.1"),
		OnRebind:    func(i int) error { h.rebinds = append(h.rebinds, i); return h.rebindErr },
		RepeatAfter: -1, Clock: h.clock, Logger: slog.New(slog.NewTextHandler(h.log, nil))}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	bind := func() (*binding, error) {
		// A new interface starts without addresses: a new table.
		table, sender, claims := newFakeTable(), &fakeSender{}, &fakeClaims{done: make(chan struct{})}
		h.tables, h.senders, h.claims = append(h.tables, table), append(h.senders, sender), append(h.claims, claims)
		b := &binding{index: h.kernel.Index, claims: claims, shared: []interface{ close() error }{table, sender}}
		for _, c := range vips {
			b.ms = append(b.ms, newManager(c, lentTable{table}, lentSender{sender}, announcement(testMAC, c.Prefix.Addr(), false)))
		}
		h.bindings = append(h.bindings, b)
		return b, nil
	}
	read := func() (Kernel, error) {
		k := h.kernel
		if k.Index != 0 && k.Index == h.bindings[len(h.bindings)-1].index {
			for _, p := range prefixes {
				if h.on(p) {
					k.VIPs = append(k.VIPs, p.Addr())
				}
			}
		}
		return k, nil
	}
	watch := func(context.Context) (<-chan struct{}, error) { return nil, errors.New("not used") }
	h.g, err = newGroup(cfg, vips, seams{read: read, bind: bind, watch: watch})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.g.Close() })
	h.g.onLink = func(up bool) { h.links = append(h.links, up) }
	return h
}

func (h *groupHarness) table() *fakeTable { return h.tables[len(h.tables)-1] }

func (h *groupHarness) on(p netip.Prefix) bool {
	_, ok := h.table().addrs[p.Addr()]
	return ok
}

// announced counts the ARP frames of the current binding that announce
// ip (its sender protocol address).
func (h *groupHarness) announced(ip netip.Addr) int {
	s := h.senders[len(h.senders)-1]
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, f := range s.frames {
		if netip.AddrFrom4([4]byte(f[ethHeaderLen+14:])) == ip {
			n++
		}
	}
	return n
}

func TestGroupFollowsTheKernel(t *testing.T) {
	h := newGroupHarness(t, vip4, vip4b)
	if !h.g.sync() {
		t.Fatal("first sync failed")
	}
	if err := h.g.Acquire(); err != nil {
		t.Fatal(err)
	}
	h.g.sync()
	for _, st := range h.g.Status().VIPs {
		if !st.Held || !st.Wanted {
			t.Fatalf("after Acquire: %+v, want held and wanted", st)
		}
	}
	if !slices.Equal(h.links, []bool{true}) {
		t.Fatalf("link reports %v, want [true]", h.links)
	}

	// ip addr del of one VIP: it alone is added back at the next change
	// notification; the other is neither added nor announced again.
	since := h.g.Status().VIPs[0].HeldSince
	announcedA := h.announced(vip4.Addr())
	delete(h.table().addrs, vip4b.Addr())
	h.clock.Step(time.Second)
	h.table().adds = nil
	h.g.sync()
	if !h.on(vip4b) || !slices.Equal(h.table().adds, []netip.Prefix{vip4b}) {
		t.Fatalf("after deleting %s: on %v, adds %v; want it added back alone", vip4b, h.on(vip4b), h.table().adds)
	}
	if n := h.announced(vip4.Addr()); n != announcedA {
		t.Errorf("%s announced %d more frames, want none", vip4.Addr(), n-announcedA)
	}
	h.g.sync() // the kernel's notification of the add
	st := h.g.Status()
	if !st.VIPs[1].Held || !st.VIPs[1].HeldSince.Equal(h.clock.Now()) || !st.VIPs[0].HeldSince.Equal(since) {
		t.Errorf("status after re-adding: %+v", st)
	}

	// ip addr flush: the own address goes too; the speaker hears "down"
	// once, nothing is added while it releases.
	h.kernel.Source = false
	clear(h.table().addrs)
	h.g.sync()
	if h.on(vip4) || h.on(vip4b) || !slices.Equal(h.links, []bool{true, false}) {
		t.Errorf("after the flush: VIPs on %v %v, link reports %v; want off, [true false]", h.on(vip4), h.on(vip4b), h.links)
	}
	if err := h.g.Release(); err != nil {
		t.Fatal(err)
	}
	const lost = "interface eth0 lost this node's address 198.18.0.1, which VRRP adverts are sent from"
	st = h.g.Status()
	if st.LinkUp || st.LinkReason != lost {
		t.Errorf("status after the flush: %+v", st)
	}
	for _, v := range st.VIPs {
		if v.LinkUp || v.LinkReason != lost || v.Wanted {
			t.Errorf("VIP status after the flush and Release: %+v, want the group's link and not wanted", v)
		}
	}

	// VIPs added by hand while not wanted are removed.
	h.kernel.Source = true
	h.table().addrs[vip4.Addr()] = vip4
	h.table().addrs[vip4b.Addr()] = vip4b
	h.g.sync()
	if h.on(vip4) || h.on(vip4b) {
		t.Error("VIPs added by hand not removed")
	}
	if !slices.Equal(h.links, []bool{true, false, true}) {
		t.Errorf("link reports %v, want one per change: [true false true]", h.links)
	}
}

func TestGroupRebinds(t *testing.T) {
	h := newGroupHarness(t, vip4, vip4b)
	h.g.sync()
	if err := h.g.Acquire(); err != nil {
		t.Fatal(err)
	}

	// Deleted: the addresses went with it; Release has nothing to do.
	h.kernel = Kernel{}
	h.g.sync()
	if err := h.g.Release(); err != nil {
		t.Errorf("Release with the interface gone = %v", err)
	}
	if err := h.g.Acquire(); err == nil {
		t.Error("Acquire with the interface gone succeeded")
	}
	h.g.Release()

	// Created again, but the VRRP socket cannot be opened yet: retried.
	h.kernel = Kernel{Index: 9, Usable: true, Source: true}
	h.rebindErr = errors.New("no such device")
	if h.g.sync() {
		t.Error("sync with a failing rebind reported success")
	}
	st := h.g.Status()
	if st.LinkUp || !strings.Contains(st.LinkReason, "no such device") {
		t.Errorf("status after a failed rebind: %+v, want link down with the error", st)
	}
	for _, v := range st.VIPs {
		if !strings.Contains(v.LastError, "no such device") {
			t.Errorf("VIP %s: LastError %q, want the rebind's error", v.Prefix, v.LastError)
		}
	}
	h.rebindErr = nil
	if !h.g.sync() {
		t.Fatal("sync after the rebind works failed")
	}
	// One OnRebind per re-creation for the whole group, not one per VIP.
	if !slices.Equal(h.rebinds, []int{9, 9}) || h.g.b.index != 9 {
		t.Fatalf("rebinds %v, bound to %d; want [9 9] (one failed, one that worked), 9", h.rebinds, h.g.b.index)
	}
	if last := h.links[len(h.links)-1]; !last {
		t.Errorf("link reports %v, want up last", h.links)
	}
	for i, b := range h.bindings {
		closed := b.ms[0].closed && b.ms[1].closed && h.tables[i].closed && h.senders[i].closed
		if want := i < 2; closed != want {
			t.Errorf("binding %d: managers and shared sockets closed %v, want %v (the old and the failed one closed)", i, closed, want)
		}
	}
	for _, v := range h.g.Status().VIPs {
		if v.LastError != "" {
			t.Errorf("VIP %s: LastError %q after the rebind worked", v.Prefix, v.LastError)
		}
	}
	if err := h.g.Acquire(); err != nil || !h.on(vip4) || !h.on(vip4b) {
		t.Errorf("Acquire on the new interface: %v, VIPs on: %v %v", err, h.on(vip4), h.on(vip4b))
	}
}

// A failure on one VIP leaves the others to be acquired or released, and
// the error names it.
func TestGroupPartialFailure(t *testing.T) {
	h := newGroupHarness(t, vip4, vip4b)
	h.g.sync()
	h.table().addErr = errors.New("no buffer space")
	h.table().failOnly = vip4.Addr()
	err := h.g.Acquire()
	if err == nil || !strings.Contains(err.Error(), "198.18.0.10/24") || strings.Contains(err.Error(), "198.18.0.11") {
		t.Errorf("Acquire = %v, want an error naming 198.18.0.10/24 alone", err)
	}
	if h.on(vip4) || !h.on(vip4b) {
		t.Errorf("VIPs on %v %v, want only the second", h.on(vip4), h.on(vip4b))
	}
	st := h.g.Status()
	if st.VIPs[0].LastError == "" || st.VIPs[1].LastError != "" {
		t.Errorf("LastError %q, %q; want the first only", st.VIPs[0].LastError, st.VIPs[1].LastError)
	}
	// The next change retries the missing one and reports the failure.
	h.g.sync()
	if h.g.sync() {
		t.Error("sync reported success with a VIP that cannot be added")
	}
	h.table().addErr = nil
	if !h.g.sync() || !h.on(vip4) {
		t.Error("sync did not add the VIP once it could")
	}

	h.table().removeErr = errors.New("operation not permitted")
	h.table().failOnly = vip4b.Addr()
	err = h.g.Release()
	if err == nil || !strings.Contains(err.Error(), "198.18.0.11") || strings.Contains(err.Error(), "198.18.0.10") {
		t.Errorf("Release = %v, want an error naming 198.18.0.11 alone", err)
	}
	if h.on(vip4) || !h.on(vip4b) {
		t.Errorf("VIPs on %v %v after Release, want only the second (it failed)", h.on(vip4), h.on(vip4b))
	}
}

func TestGroupRemoveStale(t *testing.T) {
	vip4c := netip.MustParsePrefix("198.18.0.12/24")
	h := newGroupHarness(t, vip4, vip4b, vip4c)
	// A predecessor's, with another prefix length.
	h.table().addrs[vip4.Addr()] = netip.PrefixFrom(vip4.Addr(), 32)
	h.table().addrs[vip4c.Addr()] = vip4c
	removed, err := h.g.RemoveStale()
	if err != nil || !slices.Equal(removed, []netip.Prefix{vip4, vip4c}) {
		t.Errorf("RemoveStale = %v, %v; want [%s %s], nil", removed, err, vip4, vip4c)
	}
	if len(h.table().addrs) != 0 {
		t.Errorf("left on the interface: %v", h.table().addrs)
	}
	if removed, err := h.g.RemoveStale(); err != nil || removed != nil {
		t.Errorf("second RemoveStale = %v, %v; want none", removed, err)
	}
	h.table().addrs[vip4b.Addr()] = vip4b
	h.table().removeErr = errors.New("operation not permitted")
	h.table().failOnly = vip4.Addr()
	if removed, err := h.g.RemoveStale(); !slices.Equal(removed, []netip.Prefix{vip4b}) || err == nil || !strings.Contains(err.Error(), "198.18.0.10") {
		t.Errorf("RemoveStale with one failing = %v, %v; want [%s] and an error naming 198.18.0.10", removed, err, vip4b)
	}
}

// Each VIP is probed on its own once held for ProbeInterval.
func TestGroupProbesEachHeldVIP(t *testing.T) {
	h := newGroupHarness(t, vip4, vip4b)
	h.g.sync()
	h.g.probe()
	if p := h.claims[0].took(); p != nil {
		t.Fatalf("probes while backup: %v", p)
	}
	h.g.Acquire()
	h.g.sync()
	h.g.probe()
	if p := h.claims[0].took(); p != nil {
		t.Fatalf("probes in the first ProbeInterval: %v", p)
	}
	h.clock.Step(ProbeInterval)
	h.g.probe()
	if p := h.claims[0].took(); !slices.Equal(p, []netip.Addr{vip4.Addr(), vip4b.Addr()}) {
		t.Fatalf("probes %v, want both VIPs", p)
	}
	// One VIP deleted and added back: its own probation starts again.
	delete(h.table().addrs, vip4.Addr())
	h.g.sync()
	h.g.sync()
	h.g.probe()
	if p := h.claims[0].took(); !slices.Equal(p, []netip.Addr{vip4b.Addr()}) {
		t.Fatalf("probes %v right after re-adding %s, want only %s", p, vip4.Addr(), vip4b.Addr())
	}
}

func TestGroupDefendsAgainstConflicts(t *testing.T) {
	h := newGroupHarness(t, vip4, vip4b)
	h.g.sync()
	other := hwAddr{0x02, 0, 0, 0, 0, 9}
	claimNow := func(v netip.Prefix) { h.g.conflict(claim{b: h.g.b, vip: v.Addr(), mac: other}) }
	conflicts := func() []uint64 {
		var n []uint64
		for _, v := range h.g.Status().VIPs {
			n = append(n, v.Conflicts)
		}
		return n
	}

	claimNow(vip4b) // a backup hears the active node: no conflict
	if c := conflicts(); !slices.Equal(c, []uint64{0, 0}) {
		t.Fatalf("conflicts while not holding: %v", c)
	}
	if err := h.g.Acquire(); err != nil {
		t.Fatal(err)
	}
	h.g.sync()
	sentA, sentB := h.announced(vip4.Addr()), h.announced(vip4b.Addr())
	claimNow(vip4b) // in the first ProbeInterval: a handover's overlap
	if c := conflicts(); !slices.Equal(c, []uint64{0, 0}) || h.announced(vip4b.Addr()) != sentB {
		t.Fatalf("a claim right after taking the VIP counted: %v", c)
	}
	h.clock.Step(ProbeInterval)
	claimNow(vip4b)
	st := h.g.Status().VIPs
	if st[1].Conflicts != 1 || st[1].LastConflict.MAC.String() != "02:00:00:00:00:09" || !st[1].LastConflict.At.Equal(h.clock.Now()) ||
		st[0].Conflicts != 0 || st[0].LastConflict.MAC != nil {
		t.Fatalf("after a claim of %s: %+v", vip4b, st)
	}
	if a, b := h.announced(vip4.Addr())-sentA, h.announced(vip4b.Addr())-sentB; a != 0 || b != 6 {
		t.Errorf("re-announced %d frames for %s and %d for %s, want 0 and one burst of 6", a, vip4.Addr(), b, vip4b.Addr())
	}
	h.clock.Step(500 * time.Millisecond)
	claimNow(vip4b)
	if b := h.announced(vip4b.Addr()) - sentB; b != 6 || !slices.Equal(conflicts(), []uint64{0, 2}) {
		t.Errorf("a second claim within DefendInterval: %d frames in all, conflicts %v; want 6, [0 2]", b, conflicts())
	}
	// The other VIP has its own rate limit.
	claimNow(vip4)
	if a := h.announced(vip4.Addr()) - sentA; a != 6 || !slices.Equal(conflicts(), []uint64{1, 2}) {
		t.Errorf("a claim of %s: %d frames, conflicts %v; want 6, [1 2]", vip4.Addr(), a, conflicts())
	}
	h.clock.Step(DefendInterval)
	claimNow(vip4b)
	if b := h.announced(vip4b.Addr()) - sentB; b != 12 {
		t.Errorf("a claim after DefendInterval: %d frames in all, want 12", b)
	}
	if n := bytes.Count(h.log.Bytes(), []byte("another host answers for the VIP")); n != 2 {
		t.Errorf("want one warning per VIP for one claimant, got %d:\n%s", n, h.log)
	}
	// A claim read from a binding since replaced is stale; so is one of
	// an address not in the group.
	h.g.conflict(claim{b: &binding{}, vip: vip4b.Addr(), mac: other})
	h.g.conflict(claim{b: h.g.b, vip: netip.MustParseAddr("198.18.0.99"), mac: other})
	if c := conflicts(); !slices.Equal(c, []uint64{1, 3}) {
		t.Errorf("conflicts %v after stale claims, want [1 3]", c)
	}
}

func TestGroupStatus(t *testing.T) {
	h := newGroupHarness(t, vip4b, vip4)
	h.g.sync()
	st := h.g.Status()
	if !st.LinkUp || st.LinkReason != "interface eth0 is usable" || len(st.VIPs) != 2 ||
		st.VIPs[0].Prefix != vip4b || st.VIPs[1].Prefix != vip4 {
		t.Fatalf("Status = %+v, want the link up and the VIPs in the configured order", st)
	}
	for _, v := range st.VIPs {
		if !v.LinkUp || v.LinkReason != st.LinkReason || v.Held || v.Wanted || !v.HeldSince.Equal(h.clock.Now()) {
			t.Errorf("%s: %+v", v.Prefix, v)
		}
	}
}

func TestGroupConfigValidation(t *testing.T) {
	src4, src6 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("fe80::1")
	ok := GroupConfig{Interface: "eth0", Prefixes: []netip.Prefix{vip4, vip4b}, Source: src4}
	with := func(f func(*GroupConfig)) GroupConfig {
		c := ok
		c.Prefixes = slices.Clone(ok.Prefixes)
		f(&c)
		return c
	}
	cfg, vips, err := ok.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BurstCount != DefaultBurstCount || cfg.RepeatAfter != DefaultRepeatAfter || cfg.Clock == nil || cfg.Logger == nil ||
		len(vips) != 2 || vips[0].Prefix != vip4 || vips[1].Prefix != vip4b || vips[1].BurstCount != DefaultBurstCount {
		t.Errorf("defaults: %+v, %+v", cfg, vips)
	}
	if _, _, err := with(func(c *GroupConfig) {
		c.Prefixes, c.Source = []netip.Prefix{vip6, netip.MustParsePrefix("2001:db8::11/64")}, src6
	}).withDefaults(); err != nil {
		t.Errorf("two IPv6 VIPs with a link-local source: %v", err)
	}
	for _, tc := range []struct {
		name string
		cfg  GroupConfig
		want string
	}{
		{"no VIP", with(func(c *GroupConfig) { c.Prefixes = nil }), "no VIP given"},
		{"a VIP not set", with(func(c *GroupConfig) { c.Prefixes[1] = netip.Prefix{} }), "VIP 2 of 2 is not set"},
		{"families mixed", with(func(c *GroupConfig) { c.Prefixes = append(c.Prefixes, vip6) }),
			"198.18.0.10/24 and 2001:db8::10/64 are of different address families"},
		{"the same VIP twice, with another length", with(func(c *GroupConfig) { c.Prefixes[1] = netip.MustParsePrefix("198.18.0.10/32") }),
			"VIP 198.18.0.10 is given twice (198.18.0.10/24 and 198.18.0.10/32)"},
		{"a VIP's own check", with(func(c *GroupConfig) { c.Prefixes[1] = netip.MustParsePrefix("198.18.0.255/24") }),
			"198.18.0.255 is the broadcast address"},
		{"no interface", with(func(c *GroupConfig) { c.Interface = "" }), "interface is empty"},
		{"no source", with(func(c *GroupConfig) { c.Source = netip.Addr{} }), "source address is not set"},
		{"source of the other family", with(func(c *GroupConfig) { c.Source = src6 }),
			"source address fe80::1 is not of the VIPs' family (198.18.0.10/24)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tc.cfg.withDefaults()
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("withDefaults = %v, want ErrInvalidConfig with %q", err, tc.want)
			}
		})
	}
}

// The claim filter passes the claims of every VIP of the group and
// nothing else; claimant then checks them in full.
func TestClaimFilter(t *testing.T) {
	other := hwAddr{0x02, 0, 0, 0, 0, 2}
	v4s := []netip.Addr{netip.MustParseAddr("198.18.0.200"), netip.MustParseAddr("198.18.0.201")}
	many6 := make([]netip.Addr, 40) // long enough that 8-bit skips would overflow
	for i := range many6 {
		a := netip.MustParseAddr("2001:db8::100").As16()
		a[15] = byte(i)
		many6[i] = netip.AddrFrom16(a)
	}
	udp6 := unsolicitedNA(other, many6[0], false)
	udp6[ethHeaderLen+6] = 17
	ns6 := nsProbe(other, netip.MustParseAddr("fe80::2"), many6[0])
	tests := []struct {
		name  string
		vips  []netip.Addr
		frame []byte
		keep  bool
	}{
		{"ARP for the first VIP", v4s, arpFrame(arpReply, other, v4s[0]), true},
		{"ARP for the second VIP", v4s, arpFrame(arpReply, other, v4s[1]), true},
		{"ARP for another address", v4s, arpFrame(arpReply, other, netip.MustParseAddr("198.18.0.202")), false},
		{"NA for the first VIP", many6, unsolicitedNA(other, many6[0], false), true},
		{"NA for the last VIP", many6, unsolicitedNA(other, many6[39], false), true},
		{"NA for a VIP's neighbour", many6, unsolicitedNA(other, many6[39].Next(), false), false},
		{"NS for a VIP", many6, ns6, false},
		{"not ICMPv6", many6, udp6, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vm, err := bpf.NewVM(claimFilter(tc.vips))
			if err != nil {
				t.Fatal(err)
			}
			n, err := vm.Run(tc.frame)
			if err != nil {
				t.Fatal(err)
			}
			if (n > 0) != tc.keep {
				t.Errorf("filter kept %d bytes, want kept %v", n, tc.keep)
			}
		})
	}
}
