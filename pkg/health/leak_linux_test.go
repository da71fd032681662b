package health

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// frozenServer is a backend that stops answering at one stage of a check,
// like a SIGSTOPped or wedged kube-apiserver. It records the connections
// it accepted that the client has not closed yet.
type frozenServer struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	open map[net.Conn]bool
}

// freeze is what a frozenServer does with an accepted connection before it
// waits for the client to close it; nil means it never calls Accept at
// all (the kernel still completes the TCP handshake from its backlog).
type freeze func(c net.Conn)

func startFrozen(t *testing.T, f freeze) *frozenServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &frozenServer{ln: ln, open: make(map[net.Conn]bool)}
	t.Cleanup(s.close)
	if f == nil {
		return s
	}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.open[c] = true
			s.mu.Unlock()
			s.wg.Go(func() {
				defer func() {
					s.mu.Lock()
					delete(s.open, c)
					s.mu.Unlock()
					c.Close()
				}()
				f(c)
				// Silent from here on: wait for the client to go away.
				_, _ = io.Copy(io.Discard, c)
			})
		}
	})
	return s
}

func (s *frozenServer) addr() netip.AddrPort { return netip.MustParseAddrPort(s.ln.Addr().String()) }

func (s *frozenServer) openConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

func (s *frozenServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.open {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestChecksLeaveNothingBehind runs checks of every kind against backends
// frozen at each stage of a check (TCP accepted but never taken from the
// backlog, accepted but silent, silent after the TLS handshake, silent in
// the middle of the answer's body) and checks that every check gives up
// by its timeout and that afterwards this process holds no more file
// descriptors and goroutines than before, and every backend sees its
// connections closed. Before checks were bounded end to end, each https
// check of a silent backend left a socket and two goroutines behind,
// waiting forever for a TLS handshake.
func TestChecksLeaveNothingBehind(t *testing.T) {
	ca := newTestCA(t)
	cert := ca.leaf(t, []net.IP{net.IPv4(127, 0, 0, 1)}, nil)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
	handshake := func(c net.Conn) *tls.Conn {
		tc := tls.Server(c, serverTLS)
		if tc.Handshake() != nil {
			return nil
		}
		return tc
	}
	backends := []struct {
		name   string
		freeze freeze
		// handshakes: the TLS check passes against this backend.
		handshakes bool
	}{
		{"never accepts", nil, false},
		{"accepts, never speaks", func(net.Conn) {}, false},
		{"silent after the TLS handshake", func(c net.Conn) {
			if tc := handshake(c); tc != nil {
				_, _ = io.Copy(io.Discard, tc)
			}
		}, true},
		{"stalls in the body", func(c net.Conn) {
			tc := handshake(c)
			if tc == nil {
				return
			}
			if _, err := http.ReadRequest(bufio.NewReader(tc)); err != nil {
				return
			}
			fmt.Fprint(tc, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\no")
			_, _ = io.Copy(io.Discard, tc)
		}, true},
	}
	checkers := []Checker{&TCPChecker{}, &TLSChecker{}, &HTTPSChecker{}}
	servers := make([]*frozenServer, len(backends))
	for i, b := range backends {
		servers[i] = startFrozen(t, b.freeze)
	}

	const rounds = 8
	const timeout = 200 * time.Millisecond
	fds0, gs0 := openFDs(t), runtime.NumGoroutine()
	for i, b := range backends {
		for _, c := range checkers {
			var wg sync.WaitGroup
			errs := make([]error, rounds)
			for r := range rounds {
				wg.Go(func() { errs[r] = check(c, servers[i].addr(), timeout) })
			}
			wg.Wait()
			// The TCP check passes against all of them (the kernel
			// completes the TCP handshake), the TLS check against those
			// that complete the TLS handshake; the rest must time out.
			_, tcp := c.(*TCPChecker)
			_, tlsOnly := c.(*TLSChecker)
			passes := tcp || (tlsOnly && b.handshakes)
			for _, err := range errs {
				if passes && err != nil {
					t.Errorf("%T against a backend that %s: %v", c, b.name, err)
				}
				if !passes && !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%T against a backend that %s: %v, want a timeout", c, b.name, err)
				}
			}
		}
	}

	// Closing is synchronous in the checks, but a backend's goroutines
	// notice the close a moment later.
	var fds, gs, open int
	deadline := time.Now().Add(5 * time.Second)
	for {
		fds, gs, open = openFDs(t), runtime.NumGoroutine(), 0
		for _, s := range servers {
			open += s.openConns()
		}
		if (fds <= fds0 && gs <= gs0 && open == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	checks := rounds * len(backends) * len(checkers)
	t.Logf("%d checks: fds %d -> %d, goroutines %d -> %d, connections left open at the backends %d", checks, fds0, fds, gs0, gs, open)
	if fds > fds0 || gs > gs0 || open != 0 {
		buf := make([]byte, 16<<10)
		t.Errorf("after %d checks against frozen backends: %d more fds, %d more goroutines, %d connections never closed\n%s",
			checks, fds-fds0, gs-gs0, open, buf[:runtime.Stack(buf, true)])
	}
}
