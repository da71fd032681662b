package status

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hapod/hapod/pkg/membership"
)

type fakeMembership struct{ st membership.Status }

func (f fakeMembership) Status() membership.Status { return f.st }

var be4 = netip.MustParseAddrPort("198.18.0.14:6443")

// membersOf: one static member, one discovered, one missing from the
// API's list and leaving in 4 minutes.
func membersOf() fakeMembership {
	return fakeMembership{membership.Status{
		Members: []membership.Member{
			{Addr: be1, Static: true, Reason: membership.ReasonStatic, Since: t0.Add(-time.Hour)},
			{Addr: be2, Reason: membership.ReasonDiscovered, Since: t0.Add(-time.Minute)},
			{Addr: be4, Reason: membership.ReasonPersisted, Since: t0.Add(-time.Hour),
				MissingSince: t0.Add(-time.Minute), RemoveAt: t0.Add(4 * time.Minute)},
		},
		Reachable: true, LastRead: t0.Add(-2 * time.Second),
		Reads:   map[membership.ReadResult]uint64{membership.ReadOK: 40, membership.ReadDenied: 1},
		Added:   map[membership.Reason]uint64{membership.ReasonStatic: 1, membership.ReasonDiscovered: 2, membership.ReasonPersisted: 1},
		Removed: map[membership.Reason]uint64{membership.ReasonGone: 1},
	}}
}

func membersMonitor() *Monitor {
	m, _ := newTestMonitor(activeNode())
	src := activeNode().sources()
	src.Membership = membersOf()
	m.SetSources(src)
	return m
}

func TestReportMembership(t *testing.T) {
	r := membersMonitor().Report()
	mr := r.Membership
	if mr == nil || !mr.APIReachable || len(mr.Members) != 3 || mr.Reads["ok"] != 40 || mr.Reads["denied"] != 1 {
		t.Fatalf("membership report %+v", mr)
	}
	if m := mr.Members[2]; m.Address != be4 || m.Source != "persisted" || !m.RemoveAt.Equal(t0.Add(4*time.Minute)) {
		t.Errorf("member %+v", m)
	}
	var out bytes.Buffer
	if err := WriteTable(&out, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MEMBER", "API reachable", "198.18.0.12:6443  discovered", "198.18.0.14:6443  persisted   missing from the API's list, removed in 4m"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestReportMembershipAPIDown(t *testing.T) {
	f := membersOf()
	f.st.Reachable, f.st.LastErr = false, "dial tcp 198.18.0.11:6443: connection refused"
	r := BuildReport(t0, testInfo, Snapshot{Membership: &f.st})
	var out bytes.Buffer
	if err := WriteTable(&out, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "API NOT REACHABLE (members kept): dial tcp") {
		t.Errorf("table:\n%s", out.String())
	}
}

func TestMembershipMetrics(t *testing.T) {
	m := membersMonitor()
	for _, tc := range []struct {
		name string
		want string
	}{
		{"hapod_membership_members", `
# HELP hapod_membership_members Members (kube-apiservers the proxy uses) by source: static (--backend), persisted (saved by an earlier run), discovered (listed by the API).
# TYPE hapod_membership_members gauge
hapod_membership_members{source="discovered"} 1
hapod_membership_members{source="persisted"} 1
hapod_membership_members{source="static"} 1
`},
		{"hapod_membership_changes_total", `
# HELP hapod_membership_changes_total Members added (static, persisted, discovered) and removed (gone: missing from the API's list for --member-grace) since start.
# TYPE hapod_membership_changes_total counter
hapod_membership_changes_total{change="added",reason="discovered"} 2
hapod_membership_changes_total{change="added",reason="persisted"} 1
hapod_membership_changes_total{change="added",reason="static"} 1
hapod_membership_changes_total{change="removed",reason="gone"} 1
`},
		{"hapod_membership_pending_removals", `
# HELP hapod_membership_pending_removals Members missing from the API's list whose grace period runs.
# TYPE hapod_membership_pending_removals gauge
hapod_membership_pending_removals 1
`},
	} {
		if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(tc.want), tc.name); err != nil {
			t.Error(err)
		}
	}
}

func TestPageShowsMembers(t *testing.T) {
	m := membersMonitor()
	rec := httptest.NewRecorder()
	m.servePage(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	body := rec.Body.String()
	for _, want := range []string{`id="membership"`, "198.18.0.14:6443", "persisted", "missing, leaves at"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}
