package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/health"
	"github.com/hapod/hapod/pkg/status"
)

// silentServer accepts connections and never writes a byte, like an
// apiserver wedged after accept; it closes each one when the client does.
type silentServer struct {
	ln net.Listener
	wg sync.WaitGroup
	mu sync.Mutex
	cs map[net.Conn]bool
}

func serveSilent(t *testing.T, n *lab.Node, addr netip.AddrPort) {
	t.Helper()
	ln, err := n.Listen("tcp4", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	s := &silentServer{ln: ln, cs: make(map[net.Conn]bool)}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.cs[c] = true
			s.mu.Unlock()
			s.wg.Go(func() {
				_, _ = io.Copy(io.Discard, c)
				s.mu.Lock()
				delete(s.cs, c)
				s.mu.Unlock()
				c.Close()
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.cs {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

// countFDs counts the open file descriptors of process pid.
func countFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestHealthChecksOfFrozenBackends runs hapod's default https check
// against two frozen apiservers, one that never takes connections from its
// backlog (a SIGSTOPped process: the kernel still completes the TCP
// handshake) and one that accepts and never speaks, and watches hapod's
// file descriptors and goroutines while the checks keep failing by
// timeout: they must stay flat. Each such check used to leave a socket and
// two goroutines behind, waiting forever for the TLS handshake (~1,800 fds
// an hour per frozen backend at the default 2 s interval).
func TestHealthChecksOfFrozenBackends(t *testing.T) {
	l := lab.New(t, 1)
	n := l.Nodes[0]
	stopped := netip.AddrPortFrom(n.IPv4, backendPort)
	silent := netip.AddrPortFrom(n.IPv4, holdPort)
	ln, err := n.Listen("tcp4", stopped.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() }) // never Accept()ed
	serveSilent(t, n, silent)

	c := &statusCluster{cluster: &cluster{t: t, lab: l, vip: l.VIP4Prefix(0)}}
	cfg := hapodConfig(c.vip, n, stopped, silent)
	cfg.Health.Check = health.KindHTTPS
	cfg.Health.Interval, cfg.Health.Timeout = 300*time.Millisecond, 200*time.Millisecond
	c.args = [][]string{append([]string{hapodBin}, runArgs(cfg)...)}
	c.procs = []*lab.Process{nil}
	c.start(0)
	pid := c.procs[0].Pid()

	failed := func(m map[string]float64, b netip.AddrPort) float64 {
		return m[`hapod_health_check_duration_seconds_count{backend="`+b.String()+`",result="fail"}`]
	}
	// sample waits until each backend has failed at least checks checks,
	// then returns hapod's fds and goroutines.
	sample := func(checks float64) (fds int, goroutines float64) {
		t.Helper()
		var m map[string]float64
		lab.WaitFor(t, 60*time.Second, fmt.Sprintf("%v failed checks of each backend", checks), func() bool {
			var err error
			m, err = c.metrics(0)
			return err == nil && failed(m, stopped) >= checks && failed(m, silent) >= checks
		})
		return countFDs(t, pid), m["go_goroutines"]
	}

	// A few checks first, so that everything hapod opens once is open.
	fds0, gs0 := sample(3)
	const rounds, per = 5, 10
	fds, gs := []int{fds0}, []float64{gs0}
	for r := 1; r <= rounds; r++ {
		f, g := sample(3 + float64(r*per))
		fds, gs = append(fds, f), append(gs, g)
	}
	checks := 2 * rounds * per
	t.Logf("hapod over %d more failed checks (sampled every %d checks of each backend): fds %v, goroutines %v", checks, per, fds, gs)
	// Slack for what a scrape or a log write holds for a moment; each
	// leaking check would add a socket and two goroutines.
	const slack = 4
	if last := fds[len(fds)-1]; last > fds0+slack {
		t.Errorf("hapod's fds grew from %d to %d over %d failed checks of frozen backends", fds0, last, checks)
	}
	if last := gs[len(gs)-1]; last > gs0+slack {
		t.Errorf("hapod's goroutines grew from %v to %v over %d failed checks of frozen backends", gs0, last, checks)
	}

	// The checks failed by their timeout, not by a refused connection.
	code, body, err := c.status(0, "/status")
	if err != nil || code != 200 {
		t.Fatalf("/status: %d %v", code, err)
	}
	var rep status.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("/status: %v", err)
	}
	if len(rep.Backends) != 2 {
		t.Fatalf("/status lists %d backends, want 2", len(rep.Backends))
	}
	for _, b := range rep.Backends {
		if b.Health != "down" || !strings.Contains(b.LastError, context.DeadlineExceeded.Error()) {
			t.Errorf("backend %v: %s, last error %q; want down by timeout", b.Address, b.Health, b.LastError)
		}
	}
}
