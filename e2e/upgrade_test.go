package e2e

import (
	"context"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
)

// gracefulGoal is the bound on the client's outage when the VIP
// holder's pod is restarted (upgrade, settings change): keepalived needs
// 64 ms at 100 ms adverts (make bench-failover); hapod keeps serving until
// its successor holds the VIP.
const gracefulGoal = 50 * time.Millisecond

// TestUpgradeRestart does what kubelet does when `hapod init`/`join`
// rewrites the manifest of the VIP holder: SIGTERM the old process, start
// the new one. A client connecting through the proxy every 10 ms must see
// no outage longer than the graceful-handover goal, on every node's turn.
func TestUpgradeRestart(t *testing.T) {
	c := newCluster(t, clusterOptions{})
	c.stableOneHolder(500 * time.Millisecond)
	target := netip.AddrPortFrom(c.vip.Addr(), frontendPort)
	c.reach(3 * time.Second)

	// Node by node, as the README's upgrade procedure says: the holder
	// last would be ideal, but a rolling restart hits the holder anyway.
	for round := 0; round < len(c.lab.Nodes); round++ {
		holder, _ := c.waitOneHolder(2 * time.Second)
		i := c.index(holder)
		probe := lab.StartProbe(context.Background(), c.lab.Client, target, 10*time.Millisecond)
		time.Sleep(200 * time.Millisecond)
		fault := time.Now()
		if err := c.kill(i, syscall.SIGTERM); err != nil {
			t.Fatalf("round %d: SIGTERM of %s: %v", round, holder.Name, err)
		}
		c.start(i) // the "new version"
		next, _ := c.waitOneHolder(3*time.Second, holder)
		time.Sleep(500 * time.Millisecond)
		res := probe.Stop()
		// The client's outage is the time it went without a successful
		// connect. Measured from the SIGTERM instead, one connect failing
		// as the VIP moves, 60 ms after the signal while the old holder
		// still served, would count as 80 ms (seen in CI) though the
		// client missed a single 10 ms probe. The outage taken is the one
		// containing or following the SIGTERM; one that had ended before
		// it is not the handover's.
		var outage time.Duration
		if o, ok := res.OutageAt(fault); ok {
			outage = o.Duration
			if !o.Recovered {
				t.Errorf("round %d: the client never reached the VIP again\n%s", round, res)
			}
		}
		t.Logf("round %d: restart of holder %s, %s took over; client outage %v, %v after the SIGTERM (%d of %d connects failed)",
			round, holder.Name, next.Name, outage, res.OutageAfter(fault), res.Failures, res.Attempts)
		if outage > gracefulGoal {
			t.Errorf("round %d: client outage %v exceeds the graceful-handover goal %v\n%s", round, outage, gracefulGoal, res)
		}
		// The restarted node must not take the VIP back (equal priorities).
		if h := c.stableOneHolder(300 * time.Millisecond); h != next {
			t.Fatalf("round %d: restarted %s took the VIP back", round, holder.Name)
		}
	}
}

// TestShutdownClosesConnectionsAndExits: SIGTERM of the holder while
// clients hold API watches through the VIP. Once the VIP is handed over
// those connections are unreachable (the clients' packets reach the new
// holder), so hapod closes them at once and exits within a second instead
// of draining them; the clients re-open their watches through the new
// holder. The nodes run with --drain-timeout, which manifests written by
// earlier builds pass: it must be accepted (and ignored), not crash-loop
// the pod after an image upgrade.
func TestShutdownClosesConnectionsAndExits(t *testing.T) {
	c := newCluster(t, clusterOptions{apiservers: true, extra: []string{"--drain-timeout=5s"}})
	holder := c.stableOneHolder(500 * time.Millisecond)
	i := c.index(holder)
	lab.WaitFor(t, 10*time.Second, "the holder's log warns about --drain-timeout", func() bool {
		return strings.Contains(c.procs[i].Log(), "drain-timeout is obsolete and ignored")
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var watches []*watch
	lab.WaitFor(t, 10*time.Second, "3 watches open through the VIP", func() bool {
		w, err := c.openWatch(ctx)
		if err == nil {
			watches = append(watches, w)
		}
		return len(watches) == 3
	})

	start := time.Now()
	if err := c.kill(i, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM with open connections: hapod did not exit 0: %v", err)
	}
	exited := time.Since(start)
	t.Logf("SIGTERM of %s with %d watches open: exited after %v", holder.Name, len(watches), exited.Round(time.Millisecond))
	if exited > 1500*time.Millisecond {
		t.Errorf("exit took %v, want about a second at most", exited)
	}
	// Closed before the VIP left (their FINs must come from it): without
	// that, an idle watch hangs until its keepalive gives up, minutes.
	for k, w := range watches {
		select {
		case <-w.ended:
		case <-time.After(time.Second):
			t.Errorf("watch %d (via %s) still open a second after the holder exited", k, w.server)
		}
	}
	next, _ := c.waitOneHolder(3*time.Second, holder)
	w, err := c.openWatch(ctx)
	if err != nil {
		t.Fatalf("re-opening a watch through %s: %v", next.Name, err)
	}
	t.Logf("watch re-opened through new holder %s, served by %s", next.Name, w.server)
}
