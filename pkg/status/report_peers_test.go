package status

import (
	"encoding/json"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hapod/hapod/pkg/health"
	"github.com/hapod/hapod/pkg/vrrp"
)

// A backup's view: the active router and a router that said goodbye,
// as the speaker reports them, in /status, on the page and in the table.
func TestReportPeers(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	active, gone := netip.MustParseAddr("198.18.0.12"), netip.MustParseAddr("198.18.0.13")
	snap := Snapshot{
		Routers: oneRouter(vrrp.Status{State: vrrp.StateBackup, Since: now.Add(-time.Minute), ActiveRouter: active,
			Peers: []vrrp.Peer{
				{Addr: active, Priority: 120, Interval: 100 * time.Millisecond, LastHeard: now.Add(-40 * time.Millisecond), Adverts: 600},
				{Addr: gone, Priority: 0, Interval: 100 * time.Millisecond, LastHeard: now.Add(-61 * time.Second), Adverts: 35},
			}}),
		Health: []health.Result{{Backend: be1, Healthy: true, Checks: 1}},
	}
	r := BuildReport(now, testInfo, snap)
	want := []PeerReport{
		{Address: active, Priority: 120, IntervalSeconds: 0.1, LastHeard: now.Add(-40 * time.Millisecond),
			LastHeardSecondsAgo: 0.04, Adverts: 600, Active: true},
		{Address: gone, Priority: 0, IntervalSeconds: 0.1, LastHeard: now.Add(-61 * time.Second),
			LastHeardSecondsAgo: 61, Adverts: 35},
	}
	if len(r.Routers[0].Peers) != len(want) {
		t.Fatalf("peers %+v", r.Routers[0].Peers)
	}
	for i := range want {
		if r.Routers[0].Peers[i] != want[i] {
			t.Errorf("peer %d = %+v\nwant     %+v", i, r.Routers[0].Peers[i], want[i])
		}
	}

	// /status: what `hapod status -o json` and scripts read.
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		`"peers":[{"address":"198.18.0.12","priority":120,"intervalSeconds":0.1,"lastHeard":"2026-03-01T11:59:59.96Z","lastHeardSecondsAgo":0.04,"adverts":600,"active":true}`,
		`{"address":"198.18.0.13","priority":0,"intervalSeconds":0.1,`,
	} {
		if !strings.Contains(string(data), s) {
			t.Errorf("JSON lacks %s:\n%s", s, data)
		}
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil || len(back.Routers[0].Peers) != 2 || back.Routers[0].Peers[0] != want[0] {
		t.Errorf("decoded peers %+v (%v)", back.Routers[0].Peers, err)
	}

	// The page: one table row per peer, the active one tagged.
	var page strings.Builder
	if err := WritePage(&page, r); err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile(`(?s)<section class="card section" id="peers-ipv4">.*?</section>`).FindString(page.String())
	for _, re := range []string{
		`<td class="mono">198.18.0.12<span class="tag">active</span></td>\s*<td class="num">120</td>\s*<td class="num">100 ms</td>\s*<td>40 ms ago</td>\s*<td class="num">600</td>`,
		`<td class="mono">198.18.0.13</td>\s*<td class="num">0 \(leaving\)</td>\s*<td class="num">100 ms</td>\s*<td>1m 01s ago</td>\s*<td class="num">35</td>`,
	} {
		if !regexp.MustCompile(re).MatchString(rows) {
			t.Errorf("peers table lacks %s:\n%s", re, rows)
		}
	}

	// `hapod status`: one line per peer.
	var table strings.Builder
	if err := WriteTable(&table, r); err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{
		`(?m)^PEER +198\.18\.0\.12 +priority 120, every 100 ms, heard 40 ms ago, 600 adverts, active router$`,
		`(?m)^PEER +198\.18\.0\.13 +priority 0 \(leaving\), every 100 ms, heard 1m 01s ago, 35 adverts$`,
	} {
		if !regexp.MustCompile(re).MatchString(table.String()) {
			t.Errorf("table lacks %s:\n%s", re, table.String())
		}
	}
}

// Alone on its LAN a node reports an empty list (not null), says so on the
// page, and prints one line in the table.
func TestReportNoPeers(t *testing.T) {
	r := BuildReport(t0, testInfo, Snapshot{Routers: oneRouter(vrrp.Status{State: vrrp.StateActive})})
	data, _ := json.Marshal(r)
	if !strings.Contains(string(data), `"peers":[]`) {
		t.Errorf("JSON: %s", data)
	}
	var page, table strings.Builder
	if err := WritePage(&page, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page.String(), "no other router heard") {
		t.Error("page does not say that no peer was heard")
	}
	if err := WriteTable(&table, r); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^PEERS +none heard *$`).MatchString(table.String()) {
		t.Errorf("table:\n%s", table.String())
	}
}
