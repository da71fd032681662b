package status

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hapod/hapod/pkg/dhcpvip"
)

// leaseSource is a lease keeper whose status the test changes.
type leaseSource struct {
	mu sync.Mutex
	st dhcpvip.Status
}

func (s *leaseSource) Status() dhcpvip.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

func (s *leaseSource) set(f func(*dhcpvip.Status)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.st)
}

// The DHCP gauges follow the keeper and the clock at each scrape: the
// seconds left of the lease last granted, whether this node renews it, and
// whether the active node's lease has a problem (a backup's stale problem
// is not one).
func TestDHCPMetrics(t *testing.T) {
	src := activeNode()
	m, clk := newTestMonitor(src)
	lease := &leaseSource{st: dhcpvip.Status{
		State:  dhcpvip.StateRenewing,
		Active: true,
		Want:   testVIP.Addr(),
		Lease: dhcpvip.Lease{Prefix: testVIP, Server: netip.MustParseAddr("198.18.0.1"),
			Duration: 2 * time.Minute, T1: time.Minute, T2: 105 * time.Second, Obtained: t0.Add(-30 * time.Second)},
		Problem: fmt.Errorf("%w: address in use", dhcpvip.ErrNak),
	}}
	s := src.sources()
	s.DHCP = lease
	m.SetSources(s)

	const (
		remaining = "hapod_dhcp_lease_remaining_seconds"
		active    = "hapod_dhcp_lease_active"
		problem   = "hapod_dhcp_lease_problem"
	)
	check := func(step string, want map[string]float64) {
		t.Helper()
		got := metricValues(t, m)
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("%s: %s = %v (present %v), want %v", step, k, g, ok, v)
			}
		}
	}

	// The active node, NAKed while renewing, 90 s before its lease ends.
	check("NAK on the active node", map[string]float64{remaining: 90, active: 1, problem: 1})
	// Scraped over HTTP as Prometheus does.
	srv := New(netip.MustParseAddrPort("127.0.0.1:0"))
	m.Install(srv)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx)
	code, body := get(t, "http://"+srv.Addr().String()+"/metrics")
	for _, line := range []string{remaining + " 90\n", active + " 1\n", problem + " 1\n"} {
		if code != 200 || !strings.Contains(body, line) {
			t.Errorf("/metrics (%d) lacks %q", code, line)
		}
	}

	// Time runs: the gauge counts down from the lease, not from a cache.
	clk.SetTime(t0.Add(60 * time.Second))
	check("a minute later", map[string]float64{remaining: 30, active: 1, problem: 1})

	// A good ACK clears the problem and restarts the lease.
	lease.set(func(st *dhcpvip.Status) {
		st.State, st.Problem, st.Lease.Obtained = dhcpvip.StateBound, nil, t0.Add(60*time.Second)
	})
	check("renewed", map[string]float64{remaining: 120, active: 1, problem: 0})

	// Expired: no negative seconds, and the problem shows again.
	lease.set(func(st *dhcpvip.Status) {
		st.State, st.Problem = dhcpvip.StateExpired, dhcpvip.ErrLeaseExpired
	})
	clk.SetTime(t0.Add(5 * time.Minute))
	check("expired", map[string]float64{remaining: 0, active: 1, problem: 1})

	// This node hands the VIP over: it stops renewing, and its stale
	// problem is no longer the VIP's.
	lease.set(func(st *dhcpvip.Status) { st.Active = false })
	check("backup", map[string]float64{remaining: 0, active: 0, problem: 0})

	// An infinite lease (option 51 = 0xffffffff) ends centuries ahead:
	// a huge number of seconds, never a wrapped negative one.
	lease.set(func(st *dhcpvip.Status) {
		st.Active, st.State, st.Problem, st.Lease.Duration = true, dhcpvip.StateBound, nil, dhcpvip.InfiniteLease
	})
	if got := metricValues(t, m)[remaining]; got < 9e9 {
		t.Errorf("infinite lease: %s = %v, want about 9.2e9", remaining, got)
	}

	// Never granted a lease: nothing left.
	lease.set(func(st *dhcpvip.Status) { *st = dhcpvip.Status{State: dhcpvip.StateInit, Active: true} })
	check("no lease yet", map[string]float64{remaining: 0, active: 1, problem: 0})
}
