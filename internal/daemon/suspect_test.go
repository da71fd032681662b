package daemon

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/hapod/hapod/pkg/proxy"
	"github.com/hapod/hapod/pkg/vrrp"
)

func TestSuspectsAfter(t *testing.T) {
	peer := netip.MustParseAddr("198.18.0.11")
	backends := []netip.AddrPort{
		netip.MustParseAddrPort("198.18.0.10:6443"),
		netip.MustParseAddrPort("198.18.0.11:6443"),
		netip.MustParseAddrPort("198.18.0.12:6443"),
	}
	takeover := func(r vrrp.Reason, p netip.Addr) vrrp.Transition {
		return vrrp.Transition{From: vrrp.StateBackup, To: vrrp.StateActive, Reason: r, Peer: p}
	}
	for _, tt := range []struct {
		name string
		tr   vrrp.Transition
		want []netip.AddrPort
	}{
		{"master down names the silent router", takeover(vrrp.ReasonMasterDown, peer), backends[1:2]},
		{"master down after startup: nobody heard", takeover(vrrp.ReasonMasterDown, netip.Addr{}), nil},
		{"graceful stop is no evidence", takeover(vrrp.ReasonPriorityZero, peer), nil},
		{"preempting a live router", takeover(vrrp.ReasonPreempt, peer), nil},
		{"stepping down", vrrp.Transition{From: vrrp.StateActive, To: vrrp.StateBackup, Reason: vrrp.ReasonHigherPriority, Peer: peer}, nil},
		{"router on no backend's address", takeover(vrrp.ReasonMasterDown, netip.MustParseAddr("198.18.0.99")), nil},
	} {
		if got := suspectsAfter(tt.tr, backends); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestBackendAddrsFollowMembership: the takeover's evidence is matched
// against the pool as membership left it, not only the configured list.
func TestBackendAddrsFollowMembership(t *testing.T) {
	first := netip.MustParseAddrPort("198.18.0.10:6443")
	added := netip.MustParseAddrPort("198.18.0.11:6443")
	pool := proxy.NewPool([]netip.AddrPort{first}, nil)
	pool.Add(added)
	got := suspectsAfter(vrrp.Transition{From: vrrp.StateBackup, To: vrrp.StateActive, Reason: vrrp.ReasonMasterDown, Peer: added.Addr()}, backendAddrs(pool))
	if !slices.Equal(got, []netip.AddrPort{added}) {
		t.Errorf("suspects %v, want the discovered member %v", got, added)
	}
}
