package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
)

// TestStatusServerBoundsConnections opens 5,000 keep-alive connections to
// hapod's status server (one request each, then idle) and 500 that send
// half a request header, all from the node itself, and keeps them open.
// hapod must hold no more than its cap of them (fds), kubelet's probe (GET
// /healthz on a fresh connection) must keep passing while they hold on,
// and the idle and header timeouts must give every fd back although the
// clients never close. Before the bounds hapod held one fd and one
// goroutine per idle connection, forever.
func TestStatusServerBoundsConnections(t *testing.T) {
	l := lab.New(t, 1)
	n := l.Nodes[0]
	backend := netip.AddrPortFrom(n.IPv4, backendPort)
	n.ServeTCP(t, backend)
	c := &statusCluster{cluster: &cluster{t: t, lab: l, vip: l.VIP4Prefix(0)}}
	c.args = [][]string{append([]string{hapodBin}, runArgs(hapodConfig(c.vip, n, backend))...)}
	c.procs = []*lab.Process{nil}
	c.start(0)
	pid := c.procs[0].Pid()
	c.waitMetric(0, "hapod_proxy_healthy_backends", "= 1", func(v float64) bool { return v == 1 })
	fds0 := countFDs(t, pid)
	gs0 := c.mustMetrics(0)["go_goroutines"]

	const status = "127.0.0.1:10270"
	const idle, slow = 5000, 500
	var clients []net.Conn
	t.Cleanup(func() {
		for _, cl := range clients {
			cl.Close()
		}
	})
	dial := func() net.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cl, err := n.Dial(ctx, "tcp4", status)
		if err != nil {
			t.Fatalf("after %d clients: %v", len(clients), err)
		}
		clients = append(clients, cl)
		_ = cl.SetDeadline(time.Now().Add(5 * time.Second))
		return cl
	}
	start := time.Now()
	// Interleaved, so that both kinds are among the newest, which the
	// server keeps at its cap.
	for i := range idle + slow {
		cl := dial()
		if i%((idle+slow)/slow) == 0 {
			if _, err := io.WriteString(cl, "GET /healthz HTTP/1.1\r\nHost: status\r\n"); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := io.WriteString(cl, "GET /healthz HTTP/1.1\r\nHost: status\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(cl), nil)
		if err != nil {
			t.Fatalf("keep-alive client %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	opened := time.Now()
	t.Logf("%d idle and %d half-header connections opened in %v", idle, slow, opened.Sub(start).Round(time.Millisecond))

	// kubelet's probe, while they all hold on.
	for i := range 5 {
		code, body, err := c.status(0, "/healthz")
		if err != nil || code != 200 {
			t.Fatalf("probe %d with %d clients holding connections: %d %q %v", i, len(clients), code, body, err)
		}
	}
	const slack = 8
	const capacity = 64
	fdsHeld := countFDs(t, pid)
	gsHeld := c.mustMetrics(0)["go_goroutines"]
	t.Logf("hapod with %d clients holding connections: fds %d -> %d, goroutines %v -> %v", len(clients), fds0, fdsHeld, gs0, gsHeld)
	if fdsHeld > fds0+capacity+slack || gsHeld > gs0+capacity+slack {
		t.Errorf("hapod holds %d more fds and %v more goroutines for %d clients, want at most %d",
			fdsHeld-fds0, gsHeld-gs0, len(clients), capacity)
	}

	// The clients never close; the server's timeouts (header 5 s, idle
	// 30 s) give everything back.
	var timeline []string
	last := fdsHeld
	lab.WaitFor(t, 90*time.Second, fmt.Sprintf("hapod's fds back to %d (+%d)", fds0, slack), func() bool {
		fds := countFDs(t, pid)
		if fds != last {
			timeline = append(timeline, fmt.Sprintf("%v: %d", time.Since(opened).Round(100*time.Millisecond), fds))
			last = fds
		}
		return fds <= fds0+slack
	})
	t.Logf("hapod's fds after the clients went quiet: %s", strings.Join(timeline, ", "))
	if code, _, err := c.status(0, "/healthz"); err != nil || code != 200 {
		t.Errorf("probe after the timeouts: %d %v", code, err)
	}
}
