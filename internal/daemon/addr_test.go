package daemon

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/hapod/hapod/pkg/vrrp"
)

// Loopback exists everywhere, so primaryAddr is tested on it without
// privileges: IPv4 has 127.0.0.1; IPv6 multicast needs a link-local
// address, which lo never has.
func TestPrimaryAddr(t *testing.T) {
	got, err := primaryAddr("lo", netip.MustParseAddr("198.18.0.10"), false)
	if err != nil || got != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("IPv4 on lo: %v %v", got, err)
	}
	_, err = primaryAddr("lo", netip.MustParseAddr("2001:db8::10"), false)
	if err == nil || !strings.Contains(err.Error(), "lo has no IPv6 link-local address of its own") {
		t.Errorf("IPv6 multicast on lo: %v, want an error asking for a link-local address", err)
	}
	if _, err := primaryAddr("lo", netip.MustParseAddr("127.0.0.1"), false); err == nil {
		t.Error("the VIP itself was taken as the primary address")
	}
}

func TestAuthType(t *testing.T) {
	if authType("") != vrrp.AuthNone || authType("pw") != vrrp.AuthSimple {
		t.Error("auth type does not follow the password")
	}
}
