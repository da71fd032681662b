package vip

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// keeperHarness drives a Keeper's sync and conflict steps against a fake
// kernel: the fake table of the current binding is the interface's
// address list.
type keeperHarness struct {
	k         *Keeper
	clock     *clocktesting.FakeClock
	kernel    Kernel // Index, Usable, Source; VIP comes from the table
	bindings  []*binding
	tables    []*fakeTable
	senders   []*fakeSender
	links     []bool
	rebinds   []int
	rebindErr error
	log       *bytes.Buffer
}

func newKeeperHarness(t *testing.T) *keeperHarness {
	t.Helper()
	h := &keeperHarness{
		clock:  clocktesting.NewFakeClock(time.Unix(1_700_000_000, 0)),
		kernel: Kernel{Index: 7, Usable: true, Source: true},
		log:    &bytes.Buffer{},
	}
	cfg, err := Config{Interface: "eth0", Prefix: vip4, RepeatAfter: -1, Clock: h.clock,
		Logger: slog.New(slog.NewTextHandler(h.log, nil))}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	kcfg := KeeperConfig{Config: cfg, Source: netip.MustParseAddr("198.18.0.1"),
		OnRebind: func(i int) error { h.rebinds = append(h.rebinds, i); return h.rebindErr }}
	bind := func() (*binding, error) {
		// A new interface starts without addresses: a new table.
		table, sender := newFakeTable(), &fakeSender{}
		h.tables, h.senders = append(h.tables, table), append(h.senders, sender)
		b := &binding{index: h.kernel.Index, m: newManager(cfg, table, sender, announcement(testMAC, vip4.Addr(), false))}
		h.bindings = append(h.bindings, b)
		return b, nil
	}
	read := func() (Kernel, error) {
		k := h.kernel
		if k.Index != 0 && k.Index == h.bindings[len(h.bindings)-1].index {
			_, k.VIP = h.tables[len(h.tables)-1].addrs[vip4.Addr()]
		}
		return k, nil
	}
	watch := func(context.Context) (<-chan struct{}, error) { return nil, errors.New("not used") }
	h.k, err = newKeeper(kcfg, read, bind, watch)
	if err != nil {
		t.Fatal(err)
	}
	h.k.onLink = func(up bool) { h.links = append(h.links, up) }
	return h
}

func (h *keeperHarness) table() *fakeTable { return h.tables[len(h.tables)-1] }

func (h *keeperHarness) vipOn() bool {
	_, ok := h.table().addrs[vip4.Addr()]
	return ok
}

func TestKeeperFollowsTheKernel(t *testing.T) {
	h := newKeeperHarness(t)
	if !h.k.sync() {
		t.Fatal("first sync failed")
	}
	if len(h.links) != 1 || !h.links[0] {
		t.Fatalf("link reports %v, want [true]", h.links)
	}
	if err := h.k.Acquire(); err != nil {
		t.Fatal(err)
	}
	h.k.sync()
	if st := h.k.Status(); !st.Held || !st.Wanted {
		t.Fatalf("after Acquire: %+v, want held and wanted", st)
	}

	// ip addr del VIP: added back at the next change notification.
	delete(h.table().addrs, vip4.Addr())
	h.clock.Step(time.Second)
	h.k.sync()
	if !h.vipOn() {
		t.Fatal("VIP not added back")
	}
	h.k.sync() // the kernel's notification of the add
	if st := h.k.Status(); !st.Held || !st.HeldSince.Equal(h.clock.Now()) {
		t.Errorf("status after re-adding: %+v", st)
	}

	// ip addr flush: the own address goes too; the speaker hears "down",
	// nothing is added while it releases.
	h.kernel.Source = false
	delete(h.table().addrs, vip4.Addr())
	h.k.sync()
	if h.vipOn() || len(h.links) != 2 || h.links[1] {
		t.Errorf("after the flush: VIP on %v, link reports %v; want off, [true false]", h.vipOn(), h.links)
	}
	if err := h.k.Release(); err != nil {
		t.Fatal(err)
	}
	if st := h.k.Status(); st.LinkUp || st.LinkReason != "interface eth0 lost this node's address 198.18.0.1, which VRRP adverts are sent from" {
		t.Errorf("status after the flush: %+v", st)
	}

	// A VIP added by hand while not wanted is removed.
	h.kernel.Source = true
	h.table().addrs[vip4.Addr()] = vip4
	h.k.sync()
	if h.vipOn() {
		t.Error("VIP added by hand not removed")
	}
}

func TestKeeperRebinds(t *testing.T) {
	h := newKeeperHarness(t)
	h.k.sync()
	if err := h.k.Acquire(); err != nil {
		t.Fatal(err)
	}

	// Deleted: the address went with it; Release has nothing to do.
	h.kernel = Kernel{}
	h.k.sync()
	if err := h.k.Release(); err != nil {
		t.Errorf("Release with the interface gone = %v", err)
	}
	if err := h.k.Acquire(); err == nil {
		t.Error("Acquire with the interface gone succeeded")
	}
	h.k.Release()

	// Created again, but the VRRP socket cannot be opened yet: retried.
	h.kernel = Kernel{Index: 9, Usable: true, Source: true}
	h.rebindErr = errors.New("no such device")
	if h.k.sync() {
		t.Error("sync with a failing rebind reported success")
	}
	if st := h.k.Status(); st.LinkUp || st.LastError == "" {
		t.Errorf("status after a failed rebind: %+v, want link down and the error", st)
	}
	h.rebindErr = nil
	if !h.k.sync() {
		t.Fatal("sync after the rebind works failed")
	}
	if len(h.rebinds) != 2 || h.rebinds[1] != 9 || h.k.b.index != 9 {
		t.Fatalf("rebinds %v, bound to %d; want [9 9], 9", h.rebinds, h.k.b.index)
	}
	if last := h.links[len(h.links)-1]; !last {
		t.Errorf("link reports %v, want up last", h.links)
	}
	if !h.bindings[0].m.closed || !h.bindings[1].m.closed || h.bindings[2].m.closed {
		t.Errorf("managers closed: %v %v %v, want the old and the failed one closed", h.bindings[0].m.closed, h.bindings[1].m.closed, h.bindings[2].m.closed)
	}
	if err := h.k.Acquire(); err != nil || !h.vipOn() {
		t.Errorf("Acquire on the new interface: %v, VIP on: %v", err, h.vipOn())
	}
}

func TestKeeperDefendsAgainstConflicts(t *testing.T) {
	h := newKeeperHarness(t)
	h.k.sync()
	other := hwAddr{0x02, 0, 0, 0, 0, 9}
	claimNow := func() { h.k.conflict(claim{b: h.k.b, mac: other}) }

	claimNow() // a backup hears the active node: no conflict
	if st := h.k.Status(); st.Conflicts != 0 {
		t.Fatalf("conflicts while not holding: %d", st.Conflicts)
	}
	if err := h.k.Acquire(); err != nil {
		t.Fatal(err)
	}
	h.k.sync()
	sent := h.senders[0].count()
	claimNow() // in the first ProbeInterval: a handover's overlap
	if st := h.k.Status(); st.Conflicts != 0 || h.senders[0].count() != sent {
		t.Fatalf("a claim right after taking the VIP counted: %+v", st)
	}
	h.clock.Step(ProbeInterval)
	claimNow()
	st := h.k.Status()
	if st.Conflicts != 1 || st.LastConflict.MAC.String() != "02:00:00:00:00:09" || !st.LastConflict.At.Equal(h.clock.Now()) {
		t.Fatalf("after a claim: %+v", st)
	}
	if n := h.senders[0].count() - sent; n != 6 {
		t.Errorf("re-announced %d frames, want one burst of 6", n)
	}
	h.clock.Step(500 * time.Millisecond)
	claimNow()
	if n := h.senders[0].count() - sent; n != 6 || h.k.Status().Conflicts != 2 {
		t.Errorf("a second claim within DefendInterval: %d frames in all, %d conflicts; want 6, 2", n, h.k.Status().Conflicts)
	}
	h.clock.Step(DefendInterval)
	claimNow()
	if n := h.senders[0].count() - sent; n != 12 {
		t.Errorf("a claim after DefendInterval: %d frames in all, want 12", n)
	}
	if bytes.Count(h.log.Bytes(), []byte("another host answers for the VIP")) != 1 {
		t.Errorf("want one warning for one claimant:\n%s", h.log)
	}
	// A claim read from a binding since replaced is stale.
	h.k.conflict(claim{b: &binding{}, mac: other})
	if h.k.Status().Conflicts != 3 {
		t.Errorf("a stale binding's claim counted")
	}
}
