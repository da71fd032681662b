package proxy

import (
	"net/netip"
	"testing"
)

// Linux hands out connect() source ports in steps of two (even ports
// first, since 4.6), so a client opening connection after connection
// against idle backends comes with ports of one parity only. Ties broken
// by port modulo the backend count then never reached half of an even
// number of backends: with 4 apiservers (a control-plane node being
// replaced) two got nothing.
func TestLeastConnTiesSpreadOverSourcePorts(t *testing.T) {
	for _, n := range []int{2, 3, 4, 5, 6, 8} {
		bs := make([]*Backend, n)
		for i := range bs {
			bs[i] = &Backend{index: i}
		}
		for _, seq := range []struct {
			name        string
			first, step uint16
		}{
			{"consecutive", 40000, 1},
			{"even, as connect() hands them out", 40000, 2},
			{"odd", 40001, 2},
		} {
			seen := map[int]bool{}
			port := seq.first
			for range 64 {
				seen[(LeastConn{}).Select(bs, netip.AddrPortFrom(netip.IPv4Unspecified(), port)).index] = true
				port += seq.step
			}
			if len(seen) != n {
				t.Errorf("%d idle backends, 64 %s source ports: hit %d backends (%v), want all", n, seq.name, len(seen), seen)
			}
		}
	}
}
