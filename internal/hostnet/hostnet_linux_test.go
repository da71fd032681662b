package hostnet

import (
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
