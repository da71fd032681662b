package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/hapod/hapod/pkg/config"
)

// TestRenderBenchTableDualStack: a dual-stack case's rows name their
// family, runs that missed a VIP are counted apart under the table, and an
// implementation with no run left prints n/a, not zeros.
func TestRenderBenchTableDualStack(t *testing.T) {
	c := benchCase{name: "v3 100ms dual-stack", dualStack: true}
	d := func(ms ...int) []time.Duration {
		var out []time.Duration
		for _, m := range ms {
			out = append(out, time.Duration(m)*time.Millisecond)
		}
		return out
	}
	row := func(f config.Family, h, k []time.Duration, missed int) *benchRow {
		return &benchRow{c: c, f: faultGraceful, family: f, runs: 3, missed: map[string]int{"keepalived": missed},
			tcp: map[string][]time.Duration{"hapod": h, "keepalived": k}, gap: map[string][]time.Duration{"hapod": h, "keepalived": k},
			icmp: map[string][]time.Duration{"hapod": h, "keepalived": k}}
	}
	out := renderBenchTable([]*benchRow{
		row(config.IPv4, d(0, 0, 0), d(16, 22, 68), 0),
		row(config.IPv6, d(0, 0, 0), nil, 3),
	})
	for _, want := range []string{
		"| v3 100ms dual-stack, IPv4 VIP | graceful (SIGTERM) | 3 | 0 / 0 / 0 | 16 / 22 / 68 | 0.00 | 0 / 68 | 0 / 68 | 3 / 0 | 0 / 68 | 0 / 22 |\n",
		"| v3 100ms dual-stack, IPv6 VIP | graceful (SIGTERM) | 3 / 0 | 0 / 0 / 0 | n/a | n/a | 0 / n/a | 0 / n/a | 3 / 0 | 0 / n/a | 0 / n/a |\n",
		"- v3 100ms dual-stack, IPv6 VIP, graceful (SIGTERM), keepalived: in 3 of 3 runs the faulted node did not hold this VIP",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n- "); n != 1 {
		t.Errorf("%d notes, want 1:\n%s", n, out)
	}
}
