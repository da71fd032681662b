package e2e

import (
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBenchFailoverHandoverUnderLoad counts graceful handovers (SIGTERM
// to the holder) after which two of the three nodes were active together,
// with every CPU saturated by busy loops. Each backup delays its takeover
// by its address-ranked tie-break (vrrp.TieBreakDelay) so that the one the
// RFC's tie-break would pick goes first and its advert stops the others;
// the count shows whether that step outlasts a busy host's wake-up lag.
// Two routers active together show as the winner re-announcing the VIP
// when the loser's adverts reach it. Set HAPOD_BENCH=1 to run it.
func TestBenchFailoverHandoverUnderLoad(t *testing.T) {
	if os.Getenv("HAPOD_BENCH") != "1" {
		t.Skip("a benchmark: set HAPOD_BENCH=1 (make bench-failover)")
	}
	const runs = 30
	hogs := 2 * runtime.NumCPU()
	startBusyLoops(t, hogs)
	c := newCluster(t, clusterOptions{})
	reannounced := func(i int) int { return strings.Count(c.procs[i].Log(), "another router was active too") }
	both := 0
	for r := range runs {
		h := c.stableOneHolder(300 * time.Millisecond)
		i := c.index(h)
		before := make([]int, len(c.procs))
		for j := range c.procs {
			before[j] = reannounced(j)
		}
		if err := c.procs[i].Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := c.procs[i].Wait(5 * time.Second); err != nil {
			t.Fatalf("run %d: SIGTERM: %v", r, err)
		}
		c.waitOneHolder(5*time.Second, h)
		time.Sleep(300 * time.Millisecond) // the loser's adverts arrive within an interval
		for j := range c.procs {
			if j != i && reannounced(j) > before[j] {
				both++
				t.Logf("run %d: two routers were active after %s handed over", r, h.Name)
				break
			}
		}
		c.start(i)
	}
	t.Logf("graceful handover under load (%d busy loops on %d CPUs): two routers active together in %d of %d handovers",
		hogs, runtime.NumCPU(), both, runs)
}
