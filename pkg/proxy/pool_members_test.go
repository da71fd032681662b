package proxy

import (
	"net/netip"
	"slices"
	"testing"
)

// picks returns the backends pick chooses over n selections (RoundRobin
// visits every candidate), releasing each slot at once.
func picks(p *Pool, n int) []netip.AddrPort {
	var out []netip.AddrPort
	for range n {
		b := p.pick(netip.AddrPort{}, nil)
		if b == nil {
			continue
		}
		b.active.Add(-1)
		if !slices.Contains(out, b.Addr) {
			out = append(out, b.Addr)
		}
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}

func TestPoolAddRemove(t *testing.T) {
	a := netip.MustParseAddrPort("198.18.0.11:6443")
	b := netip.MustParseAddrPort("198.18.0.12:6443")
	c := netip.MustParseAddrPort("198.18.0.13:6443")
	p := NewPool([]netip.AddrPort{a, b}, &RoundRobin{})
	var healthy []int
	p.onHealthy = func(n int) { healthy = append(healthy, n) }

	if !p.Add(c) || p.Add(c) || p.Add(a) {
		t.Fatal("Add: want true for a new address only")
	}
	// Added down: no client until its first check passes.
	if got := picks(p, 10); !slices.Equal(got, []netip.AddrPort{a, b}) {
		t.Fatalf("before c's first check: picked %v", got)
	}
	p.SetHealthy(c, true)
	if got := picks(p, 10); !slices.Equal(got, []netip.AddrPort{a, b, c}) {
		t.Fatalf("after c's check: picked %v", got)
	}

	if !p.Remove(a) || p.Remove(a) {
		t.Fatal("Remove: want true once")
	}
	if got := picks(p, 10); !slices.Equal(got, []netip.AddrPort{b, c}) {
		t.Fatalf("after removing a: picked %v", got)
	}
	if got := p.Healthy(); got != 2 {
		t.Fatalf("Healthy() = %d after removing a healthy backend, want 2", got)
	}
	// The health checker's late verdict on a removed backend is ignored.
	p.SetHealthy(a, false)
	p.SetHealthy(a, true)
	if got := picks(p, 10); !slices.Equal(got, []netip.AddrPort{b, c}) {
		t.Fatalf("a verdict on a removed backend brought it back: picked %v", got)
	}
	var addrs []netip.AddrPort
	for _, x := range p.Backends() {
		addrs = append(addrs, x.Addr)
	}
	if !slices.Equal(addrs, []netip.AddrPort{b, c}) {
		t.Fatalf("Backends() = %v", addrs)
	}
	// OnHealthy heard c come up (3) and a leave (2).
	if !slices.Equal(healthy, []int{3, 2}) {
		t.Fatalf("OnHealthy calls %v, want [3 2]", healthy)
	}
	// Removing every backend leaves nothing to pick.
	p.Remove(b)
	p.Remove(c)
	if got := p.pick(netip.AddrPort{}, nil); got != nil {
		t.Fatalf("empty pool picked %v", got.Addr)
	}
}
