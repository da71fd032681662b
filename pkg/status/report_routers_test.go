package status

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/vip"
	"github.com/hapod/hapod/pkg/vrrp"
)

var (
	testVIP2  = netip.MustParsePrefix("198.18.0.20/24")
	testVIP6  = netip.MustParsePrefix("2001:db8::10/64")
	testAddr6 = netip.MustParseAddr("2001:db8::11")
	peer6     = netip.MustParseAddr("2001:db8::12")
)

// dualStack is node cp1 with two routers: IPv4 active, holding two VIPs,
// and IPv6 backup, hearing 2001:db8::12 hold its VIP. The kernel agrees
// with both; the test changes what it needs.
type dualStack struct {
	v4, v6      *fakeSources
	k4, k4b, k6 *vip.Status
	monitor     *Monitor
}

func newDualStack() *dualStack {
	long := t0.Add(-time.Hour)
	up := func(p netip.Prefix, held bool, why string) *vip.Status {
		return &vip.Status{Prefix: p, Held: held, HeldSince: long, Wanted: held, LinkUp: true, LinkReason: why}
	}
	d := &dualStack{
		v4:  activeNode(),
		v6:  activeNode(),
		k4:  up(testVIP, true, "interface eth0 is usable"),
		k4b: up(testVIP2, true, "interface eth0 is usable"),
		k6:  up(testVIP6, false, "interface eth0 is usable"),
	}
	d.v6.vrrp = vrrp.Status{
		State: vrrp.StateBackup, Since: t0.Add(-80 * time.Second), LastReason: "startup",
		BasePriority: 100, EffectivePriority: 100, ActiveRouter: peer6,
		AdvertsReceived: 800, Transitions: 1,
		TransitionsBy: map[vrrp.TransitionKey]uint64{{To: vrrp.StateBackup, Reason: vrrp.ReasonStartup}: 1},
		Peers:         []vrrp.Peer{{Addr: peer6, Priority: 150, Interval: 100 * time.Millisecond, LastHeard: t0.Add(-50 * time.Millisecond), Adverts: 800}},
	}
	d.v6.drops = map[vrrp.DropReason]uint64{vrrp.DropVRID: 2}
	d.monitor, _ = newTestMonitor(d.v4)
	d.monitor.SetSources(Sources{
		Routers: []Router{
			{Family: config.IPv4, VRID: 10, Version: 3, Address: testAddr, VRRP: d.v4, Drops: d.v4,
				VIPs: []netip.Prefix{testVIP, testVIP2}, Kernel: kernelOf(d.k4, d.k4b)},
			{Family: config.IPv6, VRID: 11, Version: 3, Address: testAddr6, VRRP: d.v6, Drops: d.v6,
				VIPs: []netip.Prefix{testVIP6}, Kernel: kernelOf(d.k6)},
		},
		Proxy: d.v4, Health: d.v4,
	})
	return d
}

// An IPv4 router active and an IPv6 one backup is a healthy node: each
// router is reported on its own, with its VIPs, in /status, the table,
// the page and the metrics.
func TestTwoRoutersActiveAndBackup(t *testing.T) {
	d := newDualStack()
	r := d.monitor.Report()
	if !r.Healthy || r.Err() != nil {
		t.Fatalf("healthy %v: %q", r.Healthy, r.Problems)
	}
	if len(r.Routers) != 2 {
		t.Fatalf("routers %+v", r.Routers)
	}
	v4, v6 := r.Routers[0], r.Routers[1]
	if v4.Family != config.IPv4 || v4.State != "Active" || v4.VRID != 10 || v4.Address != testAddr ||
		len(v4.VIPs) != 2 || !v4.VIPs[0].Held || !v4.VIPs[1].Held || v4.VIPs[1].Prefix != testVIP2 || v4.Drops["vrid"] != 7 {
		t.Errorf("ipv4 router %+v", v4)
	}
	if v6.Family != config.IPv6 || v6.State != "Backup" || v6.VRID != 11 || v6.Address != testAddr6 || v6.ActiveRouter != peer6 ||
		len(v6.VIPs) != 1 || v6.VIPs[0].Held || v6.VIPs[0].Prefix != testVIP6 || v6.VIPs[0].Holding == nil ||
		len(v6.Peers) != 1 || !v6.Peers[0].Active || v6.Drops["vrid"] != 2 {
		t.Errorf("ipv6 router %+v", v6)
	}

	var table strings.Builder
	if err := WriteTable(&table, r); err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{
		`(?m)^NODE +cp1 +healthy$`,
		`(?m)^VRRP ipv4 +ACTIVE +VRID 10, for 1m 30s`,
		`(?m)^VIP +198\.18\.0\.10/24 +held here: yes, active router: 198\.18\.0\.11$`,
		`(?m)^VIP +198\.18\.0\.20/24 +held here: yes, active router: 198\.18\.0\.11$`,
		`(?m)^VRRP ipv6 +BACKUP +VRID 11, for 1m 20s`,
		`(?m)^VIP +2001:db8::10/64 +held here: no, active router: 2001:db8::12$`,
		`(?m)^PEER +2001:db8::12 +priority 150, every 100 ms, heard 50 ms ago, 800 adverts, active router$`,
		// The IPv4 block, then the IPv6 one, then the proxy.
		`(?s)VRRP ipv4.*198\.18\.0\.20/24.*VRRP ipv6.*2001:db8::10/64.*PROXY`,
	} {
		if !regexp.MustCompile(re).MatchString(table.String()) {
			t.Errorf("table lacks %s:\n%s", re, table.String())
		}
	}

	var page strings.Builder
	if err := WritePage(&page, r); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"<title>hapod Active/Backup · cp1</title>",
		`id="state-ipv4">Active<`, `id="state-ipv6">Backup<`,
		"This node holds <b>198.18.0.10/24</b>", "This node holds <b>198.18.0.20/24</b>",
		"<b>2001:db8::10/64</b> is held by <b>2001:db8::12</b>",
		`id="peers-ipv4"`, `id="peers-ipv6"`, "Peers heard · IPv6 · VRID 11",
	} {
		if !strings.Contains(page.String(), s) {
			t.Errorf("page lacks %q", s)
		}
	}
}

// One router's trouble makes the node unhealthy, and the problem names
// the router's family and the VIP: `hapod status` must not say healthy
// while a VIP this node should carry is not reachable through it.
func TestTwoRoutersProblems(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*dualStack)
		want   []string
	}{
		{"ipv6 link down", func(d *dualStack) {
			d.v6.vrrp.State, d.v6.vrrp.LastReason, d.v6.vrrp.Since = vrrp.StateInit, "link down", t0.Add(-3*time.Second)
			d.k6.LinkUp, d.k6.LinkReason = false, "interface eth0 has no usable IPv6 address of this node"
		}, []string{"ipv6: VRRP is in state Init (link down)", "ipv6: interface eth0 has no usable IPv6 address of this node"}},
		{"one of two VIPs not held while active", func(d *dualStack) {
			d.k4b.Held, d.k4b.HeldSince, d.k4b.LastError = false, t0.Add(-3*time.Second), "add 198.18.0.20/24: file exists"
		}, []string{"ipv4: Active, but 198.18.0.20 is not on eth0 (for 3s): add 198.18.0.20/24: file exists"}},
		{"the backup holds its VIP", func(d *dualStack) {
			d.k6.Held, d.k6.HeldSince = true, t0.Add(-2*time.Second)
		}, []string{"ipv6: 2001:db8::10 is on eth0 while Backup (for 2s)"}},
		{"both VIPs of the ipv4 router on a link without the node's address", func(d *dualStack) {
			for _, k := range []*vip.Status{d.k4, d.k4b} {
				k.LinkUp, k.LinkReason = false, "interface eth0 lost this node's address 198.18.0.11"
			}
			d.v4.vrrp.State, d.v4.vrrp.LastReason, d.v4.vrrp.VIPHeld = vrrp.StateInit, "link down", false
			d.k4.Held, d.k4b.Held = false, false
		}, []string{"ipv4: VRRP is in state Init (link down)", "ipv4: interface eth0 lost this node's address 198.18.0.11"}},
		{"a VIP taken a moment ago is not a problem yet", func(d *dualStack) {
			d.v6.vrrp.State, d.v6.vrrp.Since = vrrp.StateActive, t0.Add(-200*time.Millisecond)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDualStack()
			tc.change(d)
			r := d.monitor.Report()
			if !reflect.DeepEqual(r.Problems, tc.want) || r.Healthy != (tc.want == nil) {
				t.Errorf("healthy %v, problems %q\nwant %q", r.Healthy, r.Problems, tc.want)
			}
			if tc.want != nil && (!errors.Is(r.Err(), ErrUnhealthy) || !strings.Contains(r.Err().Error(), tc.want[0])) {
				t.Errorf("Err = %v", r.Err())
			}
			var table strings.Builder
			if err := WriteTable(&table, r); err != nil {
				t.Fatal(err)
			}
			if tc.want != nil && !strings.Contains(table.String(), "NOT HEALTHY: "+strings.Join(tc.want, "; ")) {
				t.Errorf("table:\n%s", table.String())
			}
		})
	}
}

// A report without a router is not healthy: no VIP can be carried.
func TestNoRouterIsAProblem(t *testing.T) {
	src := activeNode()
	m, _ := newTestMonitor(src)
	s := src.sources()
	s.Routers = nil
	m.SetSources(s)
	if r := m.Report(); r.Healthy || len(r.Problems) != 1 || r.Problems[0] != "no VRRP router" {
		t.Errorf("healthy %v, problems %q", r.Healthy, r.Problems)
	}
}

// Per-router series carry the router's family, per-VIP ones the VIP too.
func TestTwoRoutersMetrics(t *testing.T) {
	d := newDualStack()
	d.k6.Conflicts = 2
	for _, tc := range []struct{ name, want string }{
		{"hapod_vrrp_state", `
# HELP hapod_vrrp_state 1 for the protocol state the family's virtual router is in (init, backup, active), 0 for the others.
# TYPE hapod_vrrp_state gauge
hapod_vrrp_state{family="ipv4",state="active"} 1
hapod_vrrp_state{family="ipv4",state="backup"} 0
hapod_vrrp_state{family="ipv4",state="init"} 0
hapod_vrrp_state{family="ipv6",state="active"} 0
hapod_vrrp_state{family="ipv6",state="backup"} 1
hapod_vrrp_state{family="ipv6",state="init"} 0
`},
		{"hapod_vrrp_vip_held", `
# HELP hapod_vrrp_vip_held 1 when this node has the VIP on its interface, as the kernel says (not as the VRRP state wants).
# TYPE hapod_vrrp_vip_held gauge
hapod_vrrp_vip_held{family="ipv4",vip="198.18.0.10/24"} 1
hapod_vrrp_vip_held{family="ipv4",vip="198.18.0.20/24"} 1
hapod_vrrp_vip_held{family="ipv6",vip="2001:db8::10/64"} 0
`},
		{"hapod_vip_conflicts_total", `
# HELP hapod_vip_conflicts_total Times another host answered ARP or Neighbor Discovery for the VIP while this node held it (each answer is re-announced, at most once a second).
# TYPE hapod_vip_conflicts_total counter
hapod_vip_conflicts_total{family="ipv4",vip="198.18.0.10/24"} 0
hapod_vip_conflicts_total{family="ipv4",vip="198.18.0.20/24"} 0
hapod_vip_conflicts_total{family="ipv6",vip="2001:db8::10/64"} 2
`},
		{"hapod_vrrp_info", `
# HELP hapod_vrrp_info Static VRRP configuration of this node, one series per VIP of each virtual router (family: ipv4, ipv6); the value is always 1.
# TYPE hapod_vrrp_info gauge
hapod_vrrp_info{family="ipv4",interface="eth0",vip="198.18.0.10/24",vrid="10",vrrp_version="3"} 1
hapod_vrrp_info{family="ipv4",interface="eth0",vip="198.18.0.20/24",vrid="10",vrrp_version="3"} 1
hapod_vrrp_info{family="ipv6",interface="eth0",vip="2001:db8::10/64",vrid="11",vrrp_version="3"} 1
`},
		{"hapod_vrrp_adverts_received_total", `
# HELP hapod_vrrp_adverts_received_total VRRP advertisements for the virtual router received from other routers.
# TYPE hapod_vrrp_adverts_received_total counter
hapod_vrrp_adverts_received_total{family="ipv4"} 12
hapod_vrrp_adverts_received_total{family="ipv6"} 800
`},
		{"hapod_vrrp_transitions_total", `
# HELP hapod_vrrp_transitions_total VRRP state changes of the virtual router, by new state and reason (` + transitionReasonNames() + `).
# TYPE hapod_vrrp_transitions_total counter
hapod_vrrp_transitions_total{family="ipv4",reason="master_down",to="active"} 1
hapod_vrrp_transitions_total{family="ipv4",reason="startup",to="backup"} 1
hapod_vrrp_transitions_total{family="ipv6",reason="startup",to="backup"} 1
`},
	} {
		if err := testutil.GatherAndCompare(d.monitor.Gatherer(), strings.NewReader(tc.want), tc.name); err != nil {
			t.Error(err)
		}
	}
	got := metricValues(t, d.monitor)
	for k, v := range map[string]float64{
		"hapod_vrrp_dropped_packets_total{family=ipv4,reason=vrid}": 7,
		"hapod_vrrp_dropped_packets_total{family=ipv6,reason=vrid}": 2,
		"hapod_vrrp_time_in_state_seconds{family=ipv6}":             80,
		"hapod_vrrp_effective_priority{family=ipv6}":                100,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// What `hapod status` fetches from a two-router node is what the node
// reports, and the lines about a router name it in the events.
func TestTwoRoutersFetchRoundTrip(t *testing.T) {
	d := newDualStack()
	d.k6.Conflicts, d.k6.LastConflict = 1, vip.Conflict{At: t0.Add(-time.Minute)}
	log := slog.New(d.monitor.Handler(slog.DiscardHandler))
	log.With("family", string(config.IPv6)).Info("vrrp state change", "vrid", 11, "from", "Init", "to", "Backup", "reason", "startup")
	log.Info("backend up", "backend", be1)
	s := New(netip.MustParseAddrPort("127.0.0.1:0"))
	d.monitor.Install(s)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx)
	got, err := Fetch(ctx, nil, netip.MustParseAddrPort(s.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	want := d.monitor.Report()
	if !reflect.DeepEqual(got.Routers, want.Routers) {
		t.Errorf("fetched routers differ:\n%+v\n%+v", got.Routers, want.Routers)
	}
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	if string(a) != string(b) {
		t.Errorf("fetched report differs:\n%s\n%s", a, b)
	}
	for _, s := range []string{`"family":"ipv6","state":"Backup","vrid":11`,
		`"vips":[{"prefix":"2001:db8::10/64","held":false,"holding":{`, `"conflicts":1`} {
		if !strings.Contains(string(a), s) {
			t.Errorf("JSON lacks %s:\n%s", s, a)
		}
	}
	if len(got.Events) != 2 || got.Events[1].Family != config.IPv6 || got.Events[0].Family != "" ||
		!strings.Contains(got.Events[1].Details, "family=ipv6") {
		t.Errorf("events %+v", got.Events)
	}
}

// The kernel's view is matched to the router's VIPs by prefix, whatever
// order the group reports them in; a VIP it does not report is the
// speaker's.
func TestKernelViewByPrefix(t *testing.T) {
	src := activeNode()
	m, _ := newTestMonitor(src)
	s := src.sources()
	s.Routers[0].VIPs = []netip.Prefix{testVIP, testVIP2, netip.MustParsePrefix("198.18.0.30/24")}
	s.Routers[0].Kernel = kernelOf(&vip.Status{Prefix: testVIP2, HeldSince: t0.Add(-time.Hour)}, &vip.Status{Prefix: testVIP, Held: true})
	m.SetSources(s)
	vips := m.Report().Routers[0].VIPs
	if len(vips) != 3 || !vips[0].Held || vips[0].Holding == nil || vips[1].Held || vips[1].Holding == nil ||
		!vips[2].Held || vips[2].Holding != nil {
		t.Errorf("vips %+v", vips)
	}
	got := metricValues(t, m)
	for k, v := range map[string]float64{
		"hapod_vrrp_vip_held{family=ipv4,vip=198.18.0.10/24}": 1,
		"hapod_vrrp_vip_held{family=ipv4,vip=198.18.0.20/24}": 0,
		"hapod_vrrp_vip_held{family=ipv4,vip=198.18.0.30/24}": 1, // the speaker's
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if r := m.Report(); r.Healthy || len(r.Problems) != 1 || !strings.HasPrefix(r.Problems[0], "ipv4: Active, but 198.18.0.20 is not on eth0") {
		t.Errorf("problems %q", r.Problems)
	}
}
