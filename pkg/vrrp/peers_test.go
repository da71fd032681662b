package vrrp

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// The table holds at most MaxPeers routers; a new one replaces the one
// heard least recently, and a router heard again is fresh.
func TestPeerTableBounded(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 1, byte(i)}) }
	tab := make(peerTable)
	for i := range MaxPeers {
		tab.heard(t0.Add(time.Duration(i)*time.Second), addr(i), 100, time.Second)
	}
	tab.heard(t0.Add(100*time.Second), addr(0), 0, time.Second) // 0 is now the freshest
	for i := MaxPeers; i < MaxPeers+8; i++ {
		tab.heard(t0.Add(time.Duration(100+i)*time.Second), addr(i), 50, 2*time.Second)
	}
	got := tab.list()
	if len(got) != MaxPeers {
		t.Fatalf("%d peers, want %d", len(got), MaxPeers)
	}
	var want []netip.Addr
	want = append(want, addr(0))
	for i := 9; i < MaxPeers+8; i++ {
		want = append(want, addr(i))
	}
	var addrs []netip.Addr
	for _, p := range got {
		addrs = append(addrs, p.Addr)
	}
	if !slices.Equal(addrs, want) {
		t.Errorf("kept %v, want %v (1..8 evicted)", addrs, want)
	}
	if p := got[0]; p.Adverts != 2 || p.Priority != 0 || !p.LastHeard.Equal(t0.Add(100*time.Second)) {
		t.Errorf("peer heard twice: %+v", p)
	}
	if p := got[len(got)-1]; p.Adverts != 1 || p.Priority != 50 || p.Interval != 2*time.Second {
		t.Errorf("newest peer: %+v", p)
	}
}
