package proxy

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestClientResetClosesBackend: a client that resets makes the proxy
// close the backend connection too.
func TestClientResetClosesBackend(t *testing.T) {
	closed := make(chan struct{})
	b := startBackend(t, func(c *net.TCPConn) {
		io.Copy(io.Discard, c)
		close(closed)
	})
	p := startProxy(t, NewPool([]netip.AddrPort{b.addr}, nil), nil)
	c := dial(t, p.Addrs()[0])
	eventually(t, "connection established", func() bool { return p.Stats().Backends[0].Active == 1 })
	c.SetLinger(0)
	c.Close() // RST
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("backend connection not closed after the client reset")
	}
	eventually(t, "no connection left", func() bool { return p.Stats().Active == 0 })
}
