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
		{"active, holding", Desired{Held: true, Bound: 7}, with(ok, func(k *Kernel) { k.VIP = true }), []Action{up}},
		{"active, VIP deleted behind our back", Desired{Held: true, Bound: 7}, ok,
			[]Action{up, AddVIP{Reason: "198.18.0.200 is missing from eth0 while this node is active"}}},
		{"backup, VIP added by hand", Desired{Bound: 7}, with(ok, func(k *Kernel) { k.VIP = true }),
			[]Action{up, RemoveVIP{Reason: "198.18.0.200 is on eth0 while this node is not active"}}},
		{"backup with the link down still removes the VIP", Desired{Bound: 7}, Kernel{Index: 7, Source: true, VIP: true},
			[]Action{SetLink{Reason: "interface eth0 is down or has no carrier"},
				RemoveVIP{Reason: "198.18.0.200 is on eth0 while this node is not active"}}},
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
				AddVIP{Reason: "198.18.0.200 is missing from eth0 while this node is active"}}},
		{"never bound", Desired{}, ok,
			[]Action{Rebind{Index: 7, Reason: "interface eth0 appeared with index 7"}, up}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Reconcile(tc.d, tc.k, "eth0", vip, src)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Reconcile(%+v, %+v)\n got %#v\nwant %#v", tc.d, tc.k, got, tc.want)
			}
		})
	}
}
