//go:build linux

package dhcpvip

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/hapod/hapod/internal/lab"
)

// inTestNS runs fn on a thread inside the namespace of a fresh lab node,
// whose eth0 (a veth on the lab's bridge) it gets as the parent. Links and
// sockets made in fn live in that namespace.
func inTestNS(t *testing.T, fn func(parent string)) {
	t.Helper()
	n := lab.New(t, 1).Nodes[0]
	if err := n.Do(func() error { fn(n.Iface); return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestOpenLink(t *testing.T) {
	mac := VirtualMAC(9, "link-test")
	inTestNS(t, func(parent string) {
		l, err := OpenLink(parent, "hv-test", mac)
		if err != nil {
			t.Error(err)
			return
		}
		link, err := netlink.LinkByName("hv-test")
		if err != nil {
			t.Error(err)
			return
		}
		a := link.Attrs()
		mv, ok := link.(*netlink.Macvlan)
		switch {
		case !ok || mv.Mode != netlink.MACVLAN_MODE_BRIDGE:
			t.Errorf("link %T %+v is not a bridge-mode macvlan", link, link)
		case a.HardwareAddr.String() != mac.String():
			t.Errorf("MAC %s, want %s", a.HardwareAddr, mac)
		case a.Flags&net.FlagUp == 0 || a.RawFlags&0x80 == 0: // IFF_NOARP
			t.Errorf("flags %v raw %#x: want up and NOARP", a.Flags, a.RawFlags)
		}
		if addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL); err != nil || len(addrs) != 0 {
			t.Errorf("addresses on the macvlan: %v %v (it must not speak from the shared MAC)", addrs, err)
		}
		if l.Name() != "hv-test" || l.Conn() == nil {
			t.Errorf("name %q conn %v", l.Name(), l.Conn())
		}

		// hapod init on a node where hapod runs: a second link with the
		// same MAC can't come up, and the error says why.
		if _, err := OpenLink(parent, "hv-init", mac); err == nil || !strings.Contains(err.Error(), "running hapod") {
			t.Errorf("a second macvlan with the same MAC: %v", err)
		}
		if _, err := netlink.LinkByName("hv-init"); err == nil {
			t.Error("the failed link was left behind")
		}

		// A killed hapod left its macvlan: the next one replaces it.
		l2, err := OpenLink(parent, "hv-test", mac)
		if err != nil {
			t.Errorf("replacing a stale macvlan: %v", err)
		} else if err := l2.Close(); err != nil {
			t.Error(err)
		}
		if _, err := netlink.LinkByName("hv-test"); !errors.As(err, &netlink.LinkNotFoundError{}) {
			t.Errorf("after Close: %v", err)
		}
		_ = l.conn.Close() // its link is gone already

		// A name taken by something else is not ours to delete.
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "taken0"}, PeerName: "taken1"}); err != nil {
			t.Error(err)
			return
		}
		if _, err := OpenLink(parent, "taken0", mac); err == nil || !strings.Contains(err.Error(), "taken") {
			t.Errorf("OpenLink over a veth: %v", err)
		}
		if _, err := netlink.LinkByName("taken0"); err != nil {
			t.Errorf("the veth was removed: %v", err)
		}
		if _, err := OpenLink("missing0", "hv-test", mac); err == nil {
			t.Error("OpenLink on a missing parent succeeded")
		}
	})
}

func TestDialKeeperConfig(t *testing.T) {
	if _, err := DialKeeper(Config{Identity: testID}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("DialKeeper without interface: %v", err)
	}
	if _, err := Acquire(t.Context(), Config{Identity: testID}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Acquire without interface: %v", err)
	}
	if _, err := OpenLink("eth0", "a-name-far-too-long", testID.MAC); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("long name: %v", err)
	}
}
