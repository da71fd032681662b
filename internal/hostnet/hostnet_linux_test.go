package hostnet

import (
	"net"
	"net/netip"
	"testing"
)

// Loopback exists on every Linux host, so these run without privileges.
func TestAddrsHasLoopback(t *testing.T) {
	addrs, err := Addrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if a.Prefix.Addr() == netip.MustParseAddr("127.0.0.1") && a.Interface == "lo" {
			return
		}
	}
	t.Errorf("127.0.0.1 on lo not among %v", addrs)
}

func TestRouteInterfaceRefusesLoopback(t *testing.T) {
	if _, err := RouteInterface(netip.MustParseAddr("127.0.0.1")); err == nil {
		t.Error("a route over lo was accepted as the VIP's interface")
	}
}

// A socket listening on loopback is found in the real /proc/net/tcp, in
// whatever byte order this machine writes it.
func TestListening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	if ok, err := Listening(lo); err != nil || !ok {
		t.Errorf("Listening(127.0.0.1) with %s open = %v, %v", ln.Addr(), ok, err)
	}
	ln.Close()
	if ok, err := Listening(netip.MustParseAddr("198.18.255.254")); err != nil || ok {
		t.Errorf("Listening on an address nobody has = %v, %v", ok, err)
	}
}
