package vrrp

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// fuzzAddrs picks the IP source and destination a fuzzed message is checked
// against: IPv4 or IPv6, multicast or unicast.
func wFuzzAddrs(v6, unicast bool) (src, dst netip.Addr) {
	switch {
	case !v6 && !unicast:
		return wSrc4, GroupIPv4
	case !v6:
		return wSrc4, wPeer4
	case !unicast:
		return wSrc6, GroupIPv6
	default:
		return netip.MustParseAddr("2001:db8::1"), wDst6u
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, s := range [][]byte{
		{0x21, 51, 100, 1, 1, 1, 0x77, 0x07, 198, 18, 0, 100, 's', 'e', 'c', 'r', 'e', 't', 0, 0},
		{0x31, 51, 150, 2, 0x00, 100, 0x04, 0xd1, 198, 18, 0, 100, 198, 18, 0, 101},
		{0x31, 51, 150, 2, 0xf0, 100, 0x04, 0xd1, 198, 18, 0, 100},
		{0x21, 51, 100, 1, 0, 1, 0, 0, 198, 18, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0},
	} {
		f.Add(s, false, false, false)
		f.Add(s, false, false, true)
	}
	// Captured keepalived adverts (see conn_linux_test.go) as seeds too.
	caps, _ := filepath.Glob("testdata/keepalived-*.bin")
	for _, c := range caps {
		if b, err := os.ReadFile(c); err == nil {
			f.Add(b, false, false, false)
		}
	}
	// fixSum repairs the checksum first: random bytes almost never carry a
	// right one, and the fields behind the checksum check need coverage too.
	f.Fuzz(func(t *testing.T, b []byte, v6, unicast, fixSum bool) {
		src, dst := wFuzzAddrs(v6, unicast)
		if fixSum && len(b) >= headerLen {
			b = wFixSum(Version(b[0]>>4), src, dst, b)
		}
		p, err := Unmarshal(b, src, dst)
		if err != nil {
			if wReason(err) == DropUnknown {
				t.Fatalf("error without a drop reason: %v", err)
			}
			return
		}
		out, err := p.Marshal(src, dst)
		if err != nil {
			t.Fatalf("accepted %+v but cannot marshal it: %v", p, err)
		}
		if len(out) != len(b) {
			t.Fatalf("marshal gives %d bytes, input was %d", len(out), len(b))
		}
		q, err := Unmarshal(out, src, dst)
		if err != nil {
			t.Fatalf("cannot unmarshal own output %x: %v", out, err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip changed the packet:\n%+v\n%+v", p, q)
		}
	})
}

// FuzzMarshal builds packets from arbitrary fields: whatever Marshal accepts
// must decode to the same packet.
func FuzzMarshal(f *testing.F) {
	f.Add(uint8(3), uint8(51), uint8(100), int64(time.Second), uint8(0), "", []byte{198, 18, 0, 100}, false, false)
	f.Add(uint8(2), uint8(51), uint8(100), int64(time.Second), uint8(1), "secret", []byte{198, 18, 0, 100, 198, 18, 0, 101}, false, false)
	f.Add(uint8(3), uint8(7), uint8(255), int64(10*time.Millisecond), uint8(0), "", make([]byte, 32), true, true)
	f.Fuzz(func(t *testing.T, ver, vrid, prio uint8, interval int64, auth uint8, pw string, raw []byte, v6, unicast bool) {
		src, dst := wFuzzAddrs(v6, unicast)
		alen := 4
		if v6 {
			alen = 16
		}
		var as []netip.Addr
		for len(raw) >= alen {
			a, _ := netip.AddrFromSlice(raw[:alen])
			as = append(as, a)
			raw = raw[alen:]
		}
		p := &Packet{Version: Version(ver), VRID: vrid, Priority: prio, Interval: time.Duration(interval),
			AuthType: AuthType(auth), Password: pw, Addrs: as}
		b, err := p.Marshal(src, dst)
		if err != nil {
			return
		}
		q, err := Unmarshal(b, src, dst)
		if err != nil {
			t.Fatalf("Marshal(%+v) = %x, Unmarshal: %v", p, b, err)
		}
		want := *p
		if want.AuthType == AuthNone {
			want.Password = ""
		}
		// Trailing zero bytes of a password are padding on the wire.
		for len(want.Password) > 0 && want.Password[len(want.Password)-1] == 0 {
			want.Password = want.Password[:len(want.Password)-1]
		}
		if !reflect.DeepEqual(*q, want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", *q, want)
		}
	})
}
