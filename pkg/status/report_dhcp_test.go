package status

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hapod/hapod/pkg/dhcpvip"
	"github.com/hapod/hapod/pkg/health"
	"github.com/hapod/hapod/pkg/vrrp"
)

// TestReportDHCP: a problem with the active node's lease makes the node
// unhealthy (hapod status exits non-zero); a backup's stale lease does not.
func TestReportDHCP(t *testing.T) {
	now := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	lease := dhcpvip.Lease{Prefix: netip.MustParsePrefix("198.18.0.164/24"), Server: netip.MustParseAddr("198.18.0.1"),
		Duration: 2 * time.Minute, T1: time.Minute, T2: 105 * time.Second, Obtained: now.Add(-30 * time.Second)}
	backend := netip.MustParseAddrPort("198.18.0.11:6443")
	snap := func(active bool, problem error) Snapshot {
		return Snapshot{
			Routers: oneRouter(vrrp.Status{State: vrrp.StateActive}),
			Health:  []health.Result{{Backend: backend, Healthy: true, Checks: 1}},
			DHCP:    &dhcpvip.Status{State: dhcpvip.StateBound, Active: active, Lease: lease, Problem: problem},
		}
	}
	r := BuildReport(now, Info{}, snap(true, nil))
	if !r.Healthy || r.DHCP == nil || r.DHCP.RemainingSeconds != 90 || r.DHCP.Address != lease.Prefix {
		t.Fatalf("healthy lease: %+v %+v", r.Problems, r.DHCP)
	}
	nak := fmt.Errorf("%w: address in use", dhcpvip.ErrNak)
	r = BuildReport(now, Info{}, snap(true, nak))
	if r.Healthy || len(r.Problems) != 1 || !strings.HasPrefix(r.Problems[0], "DHCP lease of the VIP: ") {
		t.Errorf("NAK on the active node: healthy=%v %q", r.Healthy, r.Problems)
	}
	if r := BuildReport(now, Info{}, snap(false, nak)); !r.Healthy {
		t.Errorf("a backup's stale problem made it unhealthy: %q", r.Problems)
	}
	if r := BuildReport(now, Info{}, Snapshot{Routers: oneRouter(vrrp.Status{State: vrrp.StateBackup}), Health: snap(true, nil).Health}); r.DHCP != nil {
		t.Error("a static VIP reports a DHCP section")
	}
}
