package proxy

import (
	"net"
	"net/netip"
	"testing"

	"github.com/hapod/hapod/internal/lab"
)

// TestFreebind binds the proxy to an address that is on no interface of
// a lab node (as every node does before VRRP gives it the VIP), then adds
// the address and connects through it.
func TestFreebind(t *testing.T) {
	l := lab.New(t, 1)
	n := l.Nodes[0]
	b := startBackend(t, echo)

	for _, tc := range []struct {
		vip    netip.Addr
		prefix string
	}{
		{l.VIP4(0), "/32"},
		{l.VIP6(0), "/128"},
	} {
		t.Run(tc.vip.String(), func(t *testing.T) {
			vip := netip.AddrPortFrom(tc.vip, 8443)
			var p *Proxy
			var plainErr, listenErr error
			inNode(t, n, func() {
				// Without IP_FREEBIND the bind fails: the check is real.
				var ln net.Listener
				if ln, plainErr = net.Listen("tcp", vip.String()); plainErr == nil {
					ln.Close()
				}
				cfg := DefaultConfig(vip)
				if p, listenErr = New(cfg, NewPool([]netip.AddrPort{b.addr}, nil)); listenErr == nil {
					listenErr = p.Listen()
				}
			})
			if plainErr == nil {
				t.Fatalf("plain bind to %v succeeded: the address is not absent", vip)
			}
			if listenErr != nil {
				t.Fatalf("freebind listen on %v: %v", vip, listenErr)
			}
			go p.Serve(t.Context())
			t.Cleanup(func() { p.closeAll() })

			n.Run(t, "ip", "addr", "add", tc.vip.String()+tc.prefix, "dev", "lo", "nodad")
			// The kernel installs the local route of a new IPv6 address
			// asynchronously: "network is unreachable" for a moment.
			var c net.Conn
			var err error
			eventually(t, "a connection to "+vip.String(), func() bool {
				inNode(t, n, func() { c, err = net.Dial("tcp", vip.String()) })
				return err == nil
			})
			defer c.Close()
			roundTrip(t, c, "through the VIP")
		})
	}
}

// inNode runs f on a thread inside n's namespace: sockets f creates stay
// there.
func inNode(t *testing.T, n *lab.Node, f func()) {
	t.Helper()
	if err := n.Do(func() error { f(); return nil }); err != nil {
		t.Fatal(err)
	}
}
