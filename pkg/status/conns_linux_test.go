package status

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"
)

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// probe GETs /healthz on a fresh connection, as kubelet does.
func probe(addr string) error {
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + addr + "/healthz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// TestServerBoundsConnections holds a thousand idle keep-alive connections
// and two hundred that send half a request header open against the real
// server: the server keeps at most maxConns of them (fds and goroutines),
// and a probe on a fresh connection still passes while they all hold on.
// Before the bounds it kept every one: 1,200 fds and goroutines.
func TestServerBoundsConnections(t *testing.T) {
	s := New(netip.MustParseAddrPort("127.0.0.1:0"))
	s.AddLiveness("loops", func() error { return nil })
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	addr := s.Addr().String()
	fds0, gs0 := openFDs(t), runtime.NumGoroutine()

	const idle, slow = 1000, 200
	var clients []net.Conn
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		return c
	}
	for range idle {
		c := dial()
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: status\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("keep-alive client %d: %v", len(clients), err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for range slow {
		if _, err := io.WriteString(dial(), "GET /healthz HTTP/1.1\r\nHost: status\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if err := probe(addr); err != nil {
			t.Fatalf("probe %d with %d idle and %d slow clients holding connections: %v", i, idle, slow, err)
		}
	}

	// The clients' own fds stay open: the server's are the rest. Evicted
	// connections' goroutines end a moment after their close.
	const slack = 4
	var serverFDs, serverGs int
	deadline := time.Now().Add(5 * time.Second)
	for {
		serverFDs, serverGs = openFDs(t)-fds0-len(clients), runtime.NumGoroutine()-gs0
		if (serverFDs <= maxConns+slack && serverGs <= maxConns+slack) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d idle and %d slow clients: the server holds %d more fds and %d more goroutines (cap %d)", idle, slow, serverFDs, serverGs, maxConns)
	if serverFDs > maxConns+slack || serverGs > maxConns+slack {
		t.Errorf("the server holds %d fds and %d goroutines for its clients, want at most %d", serverFDs, serverGs, maxConns)
	}
}
