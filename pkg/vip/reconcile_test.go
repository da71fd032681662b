package vip

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestReconcile(t *testing.T) {
	vip := netip.MustParseAddr("198.18.0.200")
	src := netip.MustParseAddr("198.18.0.10")
	up := SetLink{Up: true, Reason: "interface eth0 is usable"}
	ok := Kernel{Index: 7, Usable: true, Source: true}
	with := func(k Kernel, f func(*Kernel)) Kernel { f(&k); return k }
	tests := []struct {
		name string
		d    Desired
		k    Kernel
		want []Action
	}{
		{"backup, all in order", Desired{Bound: 7}, ok, []Action{up}},
		{"active, holding", Desired{Held: true, Bound: 7}, with(ok, func(k *Kernel) { k.VIPs = []netip.Addr{vip} }), []Action{up}},
		{"active, VIP deleted behind our back", Desired{Held: true, Bound: 7}, ok,
			[]Action{up, AddVIP{VIP: vip, Reason: "198.18.0.200 is missing from eth0 while this node is active"}}},
		{"backup, VIP added by hand", Desired{Bound: 7}, with(ok, func(k *Kernel) { k.VIPs = []netip.Addr{vip} }),
			[]Action{up, RemoveVIP{VIP: vip, Reason: "198.18.0.200 is on eth0 while this node is not active"}}},
		{"backup with the link down still removes the VIP", Desired{Bound: 7}, Kernel{Index: 7, Source: true, VIPs: []netip.Addr{vip}},
			[]Action{SetLink{Reason: "interface eth0 is down or has no carrier"},
				RemoveVIP{VIP: vip, Reason: "198.18.0.200 is on eth0 while this node is not active"}}},
		{"active, link down: the speaker releases, nothing is added", Desired{Held: true, Bound: 7}, Kernel{Index: 7, Source: true},
			[]Action{SetLink{Reason: "interface eth0 is down or has no carrier"}}},
		{"active, ip addr flush took the own address and the VIP", Desired{Held: true, Bound: 7}, Kernel{Index: 7, Usable: true},
			[]Action{SetLink{Reason: "interface eth0 lost this node's address 198.18.0.10, which VRRP adverts are sent from"}}},
		{"interface deleted", Desired{Held: true, Bound: 7}, Kernel{},
			[]Action{SetLink{Reason: "interface eth0 does not exist"}}},
		{"interface created again, still down", Desired{Bound: 7}, Kernel{Index: 9, Source: true},
			[]Action{Rebind{Index: 9, Reason: "interface eth0 was created again (index 9, was 7)"},
				SetLink{Reason: "interface eth0 is down or has no carrier"}}},
		{"interface created again and configured, active", Desired{Held: true, Bound: 7}, with(ok, func(k *Kernel) { k.Index = 9 }),
			[]Action{Rebind{Index: 9, Reason: "interface eth0 was created again (index 9, was 7)"}, up,
				AddVIP{VIP: vip, Reason: "198.18.0.200 is missing from eth0 while this node is active"}}},
		{"never bound", Desired{}, ok,
			[]Action{Rebind{Index: 7, Reason: "interface eth0 appeared with index 7"}, up}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Reconcile(tc.d, tc.k, "eth0", []netip.Addr{vip}, src)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Reconcile(%+v, %+v)\n got %#v\nwant %#v", tc.d, tc.k, got, tc.want)
			}
		})
	}
}

// Several VIPs share the link, reported once, and the speaker's wish;
// each is put in line on its own, in order, and those in line are left
// alone.
func TestReconcileSeveralVIPs(t *testing.T) {
	a, b, c := netip.MustParseAddr("198.18.0.200"), netip.MustParseAddr("198.18.0.201"), netip.MustParseAddr("198.18.0.202")
	vips := []netip.Addr{a, b, c}
	src := netip.MustParseAddr("198.18.0.10")
	up := SetLink{Up: true, Reason: "interface eth0 is usable"}
	down := SetLink{Reason: "interface eth0 is down or has no carrier"}
	k := func(usable bool, on ...netip.Addr) Kernel {
		return Kernel{Index: 7, Usable: usable, Source: true, VIPs: on}
	}
	add := func(v netip.Addr) Action {
		return AddVIP{VIP: v, Reason: v.String() + " is missing from eth0 while this node is active"}
	}
	remove := func(v netip.Addr) Action {
		return RemoveVIP{VIP: v, Reason: v.String() + " is on eth0 while this node is not active"}
	}
	held, backup := Desired{Held: true, Bound: 7}, Desired{Bound: 7}
	tests := []struct {
		name string
		d    Desired
		k    Kernel
		want []Action
	}{
		{"active, all held", held, k(true, a, b, c), []Action{up}},
		{"backup, none held", backup, k(true), []Action{up}},
		{"active, the middle one deleted behind our back", held, k(true, a, c), []Action{up, add(b)}},
		{"active, after ip addr flush of the VIPs", held, k(true), []Action{up, add(a), add(b), add(c)}},
		{"backup, two added by hand", backup, k(true, c, a), []Action{up, remove(a), remove(c)}},
		{"active, link down: nothing added", held, k(false, b), []Action{down}},
		{"backup, link down: still removed", backup, k(false, b), []Action{down, remove(b)}},
		{"interface created again, active", Desired{Held: true, Bound: 5}, k(true),
			[]Action{Rebind{Index: 7, Reason: "interface eth0 was created again (index 7, was 5)"}, up, add(a), add(b), add(c)}},
		{"interface deleted: the link once, nothing per VIP", held, Kernel{},
			[]Action{SetLink{Reason: "interface eth0 does not exist"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Reconcile(tc.d, tc.k, "eth0", vips, src)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Reconcile(%+v, %+v)\n got %#v\nwant %#v", tc.d, tc.k, got, tc.want)
			}
		})
	}
}
