package vip

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

func TestClaimant(t *testing.T) {
	own := hwAddr{0x02, 0, 0, 0, 0, 1}
	other := hwAddr{0x02, 0, 0, 0, 0, 2}
	v4 := netip.MustParseAddr("198.18.0.200")
	v6 := netip.MustParseAddr("2001:db8::200")
	src6 := netip.MustParseAddr("fe80::1")

	naNoOption := unsolicitedNA(other, v6, false)[:ethHeaderLen+ipv6HeaderLen+naLen]
	binary.BigEndian.PutUint16(naNoOption[ethHeaderLen+4:], naLen)
	naHop64 := unsolicitedNA(other, v6, false)
	naHop64[ethHeaderLen+7] = 64
	arpOtherTLLA := arpFrame(arpReply, own, v4)
	copy(arpOtherTLLA[ethHeaderLen+8:], other[:]) // sender hardware address is what counts

	// to addresses a frame to own: claims are answers to our probes.
	to := func(f []byte) []byte {
		f = append([]byte(nil), f...)
		copy(f[0:6], own[:])
		return f
	}
	tests := []struct {
		name  string
		frame []byte
		vip   netip.Addr
		want  hwAddr
		claim bool
	}{
		{"ARP reply from another host", to(arpFrame(arpReply, other, v4)), v4, other, true},
		{"ARP request from another host, to us", to(arpFrame(arpRequest, other, v4)), v4, other, true},
		{"broadcast gratuitous ARP from another router is no answer", arpFrame(arpRequest, other, v4), v4, hwAddr{}, false},
		{"sender hardware address, not the Ethernet source", to(arpOtherTLLA), v4, other, true},
		{"our own announcement", to(arpFrame(arpReply, own, v4)), v4, hwAddr{}, false},
		{"another address", to(arpFrame(arpReply, other, netip.MustParseAddr("198.18.0.11"))), v4, hwAddr{}, false},
		{"someone else probing for the VIP claims nothing", to(arpProbe(other, v4)), v4, hwAddr{}, false},
		{"our own probe", arpProbe(own, v4), v4, hwAddr{}, false},
		{"truncated ARP", to(arpFrame(arpReply, other, v4))[:ethHeaderLen+20], v4, hwAddr{}, false},
		{"runt frame", []byte{1, 2, 3}, v4, hwAddr{}, false},
		{"ARP for an IPv6 VIP", to(arpFrame(arpReply, other, v4)), v6, hwAddr{}, false},
		{"NA from another host, to us", to(unsolicitedNA(other, v6, false)), v6, other, true},
		{"unsolicited NA to all nodes is no answer", unsolicitedNA(other, v6, false), v6, hwAddr{}, false},
		{"NA without a link-layer option: the Ethernet source", to(naNoOption), v6, other, true},
		{"our own NA", to(unsolicitedNA(own, v6, true)), v6, hwAddr{}, false},
		{"NA for another target", to(unsolicitedNA(other, netip.MustParseAddr("2001:db8::11"), false)), v6, hwAddr{}, false},
		{"NA with hop limit 64 (forwarded)", to(naHop64), v6, hwAddr{}, false},
		{"our NS probe", to(nsProbe(own, src6, v6)), v6, hwAddr{}, false},
		{"NA for an IPv4 VIP", to(unsolicitedNA(other, v6, false)), v4, hwAddr{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := claimant(tc.frame, tc.vip, own)
			if ok != tc.claim || got != tc.want {
				t.Errorf("claimant = %v, %v; want %v, %v", got, ok, tc.want, tc.claim)
			}
		})
	}
}

func TestProbeFrames(t *testing.T) {
	mac := hwAddr{0x02, 0, 0, 0, 0, 1}
	v4 := netip.MustParseAddr("198.18.0.200")
	p := probe(mac, netip.MustParseAddr("198.18.0.10"), v4)
	a := p[ethHeaderLen:]
	if hwAddr(p[0:6]) != ethBroadcast || binary.BigEndian.Uint16(a[6:8]) != uint16(arpRequest) ||
		hwAddr(a[8:14]) != mac || netip.AddrFrom4([4]byte(a[14:18])) != netip.IPv4Unspecified() ||
		netip.AddrFrom4([4]byte(a[24:28])) != v4 {
		t.Errorf("ARP probe: % x", p)
	}

	v6 := netip.MustParseAddr("2001:db8::aa:bbcc")
	src := netip.MustParseAddr("fe80::1")
	n := probe(mac, src, v6)
	h := n[ethHeaderLen:]
	m := h[ipv6HeaderLen:]
	group := netip.MustParseAddr("ff02::1:ffaa:bbcc")
	switch {
	case hwAddr(n[0:6]) != (hwAddr{0x33, 0x33, 0xff, 0xaa, 0xbb, 0xcc}):
		t.Errorf("NS probe to %x, want the solicited-node group's MAC", n[0:6])
	case netip.AddrFrom16([16]byte(h[8:24])) != src || netip.AddrFrom16([16]byte(h[24:40])) != group:
		t.Errorf("NS probe from %x to %x, want %s to %s", h[8:24], h[24:40], src, group)
	case h[7] != ndHopLimit || m[0] != icmpv6NeighSol || netip.AddrFrom16([16]byte(m[8:24])) != v6:
		t.Errorf("NS probe: hop limit %d, type %d, target %x", h[7], m[0], m[8:24])
	case hwAddr(m[26:32]) != mac:
		t.Errorf("NS probe's source link-layer option %x, want %x", m[26:32], mac)
	case icmpv6Checksum(src, group, m) != 0:
		t.Errorf("NS probe's checksum does not verify")
	}
}

func TestDefense(t *testing.T) {
	var d defense
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at   time.Duration
		want bool
	}{{0, true}, {100 * time.Millisecond, false}, {999 * time.Millisecond, false}, {time.Second, true}, {1500 * time.Millisecond, false}, {5 * time.Second, true}}
	for _, s := range steps {
		if got := d.allow(t0.Add(s.at)); got != s.want {
			t.Errorf("allow at +%v = %v, want %v", s.at, got, s.want)
		}
	}
}
