package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// backend is a loopback test server; handler serves each connection.
type backend struct {
	addr  netip.AddrPort
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startBackend(t *testing.T, handler func(c *net.TCPConn)) *backend {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: ln.Addr().(*net.TCPAddr).AddrPort(), ln: ln}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer c.Close()
				handler(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(b.close)
	return b
}

func (b *backend) close() {
	b.ln.Close()
	b.mu.Lock()
	for _, c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// echo copies back what it reads and passes the client's FIN on.
func echo(c *net.TCPConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	return a
}

// startHooks run on every proxy startProxy makes, before its own hooks;
// each may return a check to run when the test ends, before the proxy
// stops.
var startHooks []func(*testing.T, *Proxy) func()

// startProxy runs a proxy on 127.0.0.1:0 until the test ends.
func startProxy(t *testing.T, pool *Pool, mod func(*Config), hooks ...func(*Proxy)) *Proxy {
	t.Helper()
	cfg := DefaultConfig(netip.MustParseAddrPort("127.0.0.1:0"))
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg, pool)
	if err != nil {
		t.Fatal(err)
	}
	var checks []func()
	for _, h := range startHooks {
		if check := h(t, p); check != nil {
			checks = append(checks, check)
		}
	}
	for _, h := range hooks {
		h(p)
	}
	if err := p.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { served <- p.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		p.closeAll() // do not wait for DrainTimeout on a fake clock
		if err := <-served; err != nil && !errors.Is(err, ErrDrainTimeout) && !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v", err)
		}
	})
	for _, check := range checks {
		t.Cleanup(check) // before the proxy stops: cleanups run last first
	}
	return p
}

func dial(t *testing.T, addr netip.AddrPort) *net.TCPConn {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends msg and expects it echoed.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if !bytes.Equal(got, []byte(msg)) {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

// closedByPeer reports whether reading c ends in EOF or a reset (within
// a generous bound: the proxy closes asynchronously).
func closedByPeer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// eventually polls cond until it holds or 10s pass. It waits for an
// asynchronous effect; it does not measure speed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// activeOf returns the Active count per backend address.
func activeOf(p *Proxy) map[netip.AddrPort]int64 {
	m := map[netip.AddrPort]int64{}
	for _, b := range p.Stats().Backends {
		m[b.Addr] = b.Active
	}
	return m
}
