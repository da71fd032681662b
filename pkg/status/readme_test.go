package status

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/hapod/hapod/pkg/dhcpvip"
	"github.com/hapod/hapod/pkg/vip"
)

var updateReadme = flag.Bool("update", false, "rewrite the README's metric reference")

const (
	metricsBegin = "<!-- metric-reference:begin (generated: go test ./pkg/status -update) -->\n"
	metricsEnd   = "<!-- metric-reference:end -->"
)

// metricReference renders every hapod_ metric a fully fed Monitor
// exports as the README's Markdown table: name, type, labels, help.
func metricReference(t *testing.T) string {
	t.Helper()
	m, _ := newTestMonitor(activeNode())
	src := activeNode().sources()
	src.DHCP = fakeDHCP{}
	src.Redirect = &fakeRedirect{}
	src.Routers[0].Kernel = kernelOf(&vip.Status{Prefix: testVIP, Held: true})
	src.Membership = membersOf()
	m.SetSources(src)
	// Vector metrics appear once they have a child.
	m.ObserveCheck(be1, time.Millisecond, nil)
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("| metric | type | labels | meaning |\n|---|---|---|---|\n")
	for _, f := range fams {
		if !strings.HasPrefix(f.GetName(), namespace+"_") {
			continue
		}
		var labels []string
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels = append(labels, "`"+l.GetName()+"`")
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", f.GetName(), typeName(f.GetType()),
			strings.Join(labels, ", "), strings.ReplaceAll(f.GetHelp(), "|", "\\|"))
	}
	return b.String()
}

func typeName(t dto.MetricType) string {
	return strings.ToLower(t.String())
}

// TestREADMEMetricReference keeps the README's metric table equal to the
// metrics the code registers.
func TestREADMEMetricReference(t *testing.T) {
	const path = "../../README.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i, j := strings.Index(s, metricsBegin), strings.Index(s, metricsEnd)
	if i < 0 || j < i {
		t.Fatal(errors.New("README.md lacks the metric-reference markers"))
	}
	want := metricReference(t)
	if got := s[i+len(metricsBegin) : j]; got == want {
		return
	}
	if *updateReadme {
		if err := os.WriteFile(path, []byte(s[:i+len(metricsBegin)]+want+s[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's metric reference is stale: run go test ./pkg/status -update")
}

// Prometheus naming conventions: a counter ends in _total, a value with
// a unit names it in base units, and nothing else ends in _total.
func TestMetricNamingConventions(t *testing.T) {
	m, _ := newTestMonitor(activeNode())
	m.ObserveCheck(be1, time.Millisecond, nil)
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		name := f.GetName()
		if !strings.HasPrefix(name, namespace+"_") {
			continue
		}
		isCounter := f.GetType() == dto.MetricType_COUNTER
		if isCounter != strings.HasSuffix(name, "_total") {
			t.Errorf("%s is a %v: only counters end in _total, and all do", name, f.GetType())
		}
		for _, bad := range []string{"_ms", "_millis", "_milliseconds", "_kb", "_count"} {
			if strings.Contains(name, bad+"_") || strings.HasSuffix(name, bad) {
				t.Errorf("%s: use base units (seconds, bytes)", name)
			}
		}
		if f.GetHelp() == "" {
			t.Errorf("%s has no help", name)
		}
		// No label may carry a peer's address or a free-text reason.
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "reason" && strings.Contains(l.GetValue(), " ") {
					t.Errorf("%s{reason=%q}: free text in a label", name, l.GetValue())
				}
			}
		}
	}
	if !slices.ContainsFunc(fams, func(f *dto.MetricFamily) bool { return f.GetName() == "go_goroutines" }) {
		t.Errorf("the Go runtime metrics are missing")
	}
}

// fakeDHCP is the lease keeper of a DHCP-leased VIP, for the reference.
// kernelGroup is a router's VIPs as a Group reports them; tests change
// the statuses between reads.
type kernelGroup struct{ vips []*vip.Status }

func kernelOf(vips ...*vip.Status) kernelGroup { return kernelGroup{vips} }

func (k kernelGroup) Status() vip.GroupStatus {
	var gs vip.GroupStatus
	for _, v := range k.vips {
		gs.VIPs = append(gs.VIPs, *v)
	}
	if len(k.vips) > 0 {
		gs.LinkUp, gs.LinkReason = k.vips[0].LinkUp, k.vips[0].LinkReason
	}
	return gs
}

type fakeDHCP struct{}

func (fakeDHCP) Status() dhcpvip.Status { return dhcpvip.Status{Active: true} }
