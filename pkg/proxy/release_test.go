package proxy

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestCloseAll: the clients of every open connection see them end (EOF,
// or a reset when data was unread) at once, the proxy goes on serving new
// ones, and the closes are counted as VIPReleased.
func TestCloseAll(t *testing.T) {
	b := startBackend(t, echo)
	p := startProxy(t, NewPool([]netip.AddrPort{b.addr}, nil), nil)
	if n := (&Proxy{}).CloseAll(); n != 0 {
		t.Errorf("CloseAll before Serve = %d, want 0", n)
	}
	var clients []*net.TCPConn
	for range 3 {
		c := dial(t, p.Addrs()[0])
		roundTrip(t, c, "hello")
		clients = append(clients, c)
	}
	if n := p.CloseAll(); n != 3 {
		t.Errorf("CloseAll = %d, want 3", n)
	}
	for i, c := range clients {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Errorf("client %d: read after CloseAll = %v, want EOF or a reset", i, err)
		} else if err != io.EOF {
			t.Logf("client %d: %v", i, err)
		}
	}
	c := dial(t, p.Addrs()[0])
	roundTrip(t, c, "still serving")
	eventually(t, "the 3 closed connections are gone", func() bool { return p.Stats().Active == 1 })
	if s := p.Stats(); s.VIPReleased != 3 || s.DrainClosed != 0 {
		t.Errorf("VIPReleased, DrainClosed = %d, %d; want 3, 0", s.VIPReleased, s.DrainClosed)
	}
}
