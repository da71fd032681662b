package status

import (
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/health"
	"github.com/hapod/hapod/pkg/vip"
	"github.com/hapod/hapod/pkg/vrrp"
)

// TestReportHolding: HoldsVIP is the kernel's, and a node whose kernel
// disagrees with its VRRP state for more than VIPSettle, whose link cannot
// carry VRRP, or whose VIP another host claimed lately is not healthy.
func TestReportHolding(t *testing.T) {
	now := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	info := Info{Interface: "eth0"}
	prefix := netip.MustParsePrefix("198.18.0.200/24")
	backends := []health.Result{{Backend: netip.MustParseAddrPort("198.18.0.11:6443"), Healthy: true, Checks: 1}}
	mac, _ := net.ParseMAC("02:00:00:00:00:09")
	long := now.Add(-time.Hour)
	up := vip.Status{LinkUp: true, LinkReason: "interface eth0 is usable"}
	with := func(s vip.Status, f func(*vip.Status)) vip.Status { f(&s); return s }
	tests := []struct {
		name     string
		state    vrrp.State
		since    time.Time // of the VRRP state
		vip      vip.Status
		holds    bool
		problems []string
	}{
		{"active and holding", vrrp.StateActive, long, with(up, func(s *vip.Status) { s.Held, s.HeldSince = true, long }), true, nil},
		{"backup, not holding", vrrp.StateBackup, long, with(up, func(s *vip.Status) { s.HeldSince = long }), false, nil},
		{"active, the VIP gone for a moment", vrrp.StateActive, long, with(up, func(s *vip.Status) { s.HeldSince = now.Add(-300 * time.Millisecond) }), false, nil},
		{"active, the VIP gone for two seconds", vrrp.StateActive, long,
			with(up, func(s *vip.Status) {
				s.HeldSince, s.LastError = now.Add(-2*time.Second), "add the VIP again: permission denied"
			}), false,
			[]string{"ipv4: Active, but 198.18.0.200 is not on eth0 (for 2s): add the VIP again: permission denied"}},
		{"just became active, the VIP missing for an hour before", vrrp.StateActive, now.Add(-200 * time.Millisecond),
			with(up, func(s *vip.Status) { s.HeldSince = long }), false, nil},
		{"backup holding the VIP", vrrp.StateBackup, long, with(up, func(s *vip.Status) { s.Held, s.HeldSince = true, now.Add(-1500*time.Millisecond) }), true,
			[]string{"ipv4: 198.18.0.200 is on eth0 while Backup (for 1.5s)"}},
		{"own address flushed", vrrp.StateInit, long,
			vip.Status{HeldSince: long, LinkReason: "interface eth0 lost this node's address 198.18.0.10, which VRRP adverts are sent from"}, false,
			[]string{"ipv4: VRRP is in state Init", "ipv4: interface eth0 lost this node's address 198.18.0.10, which VRRP adverts are sent from"}},
		{"a conflict a second ago", vrrp.StateActive, long,
			with(up, func(s *vip.Status) {
				s.Held, s.HeldSince, s.Conflicts, s.LastConflict = true, long, 3, vip.Conflict{MAC: mac, At: now.Add(-time.Second)}
			}), true,
			[]string{"ipv4: another host (02:00:00:00:00:09) answered for 198.18.0.200 1s ago (3 conflicts)"}},
		{"a conflict long ago", vrrp.StateActive, long,
			with(up, func(s *vip.Status) {
				s.Held, s.HeldSince, s.Conflicts, s.LastConflict = true, long, 3, vip.Conflict{MAC: mac, At: now.Add(-ConflictRecent)}
			}), true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.vip
			r := BuildReport(now, info, Snapshot{
				Routers: []RouterSnapshot{{
					Family: config.IPv4,
					// The speaker's intent says the opposite: the kernel wins.
					VRRP: vrrp.Status{State: tc.state, Since: tc.since, VIPHeld: !tc.holds},
					VIPs: []VIPSnapshot{{Prefix: prefix, Kernel: &st}},
				}},
				Health: backends,
			})
			if v := r.Routers[0].VIPs[0]; v.Held != tc.holds || v.Holding == nil {
				t.Errorf("VIP %+v, Holding %+v; want held %v", v, v.Holding, tc.holds)
			}
			if !reflect.DeepEqual(r.Problems, tc.problems) || r.Healthy != (tc.problems == nil) {
				t.Errorf("problems %q (healthy %v), want %q", r.Problems, r.Healthy, tc.problems)
			}
		})
	}
}

// TestMetricsHoldingFromTheKernel: with a VIP source, hapod_vrrp_vip_held
// is the kernel's, and the conflicts are counted.
func TestMetricsHoldingFromTheKernel(t *testing.T) {
	src := activeNode() // the speaker believes it holds the VIP
	m, _ := newTestMonitor(src)
	s := src.sources()
	s.Routers[0].Kernel = kernelOf(&vip.Status{Prefix: testVIP, Held: false, Conflicts: 4})
	m.SetSources(s)
	got := metricValues(t, m)
	const held, conflicts = "hapod_vrrp_vip_held{family=ipv4,vip=198.18.0.10/24}", "hapod_vip_conflicts_total{family=ipv4,vip=198.18.0.10/24}"
	if got[held] != 0 || got[conflicts] != 4 {
		t.Errorf("vip_held %v, conflicts %v; want 0 (the kernel's), 4", got[held], got[conflicts])
	}
}
