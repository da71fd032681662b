package vrrp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	wSrc4  = netip.MustParseAddr("198.18.0.1")
	wPeer4 = netip.MustParseAddr("198.18.0.2")
	wSrc6  = netip.MustParseAddr("fe80::1")
	wDst6u = netip.MustParseAddr("2001:db8::2")
)

func wAddrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// Known-answer tests: each message is written out field by field from the
// RFC layouts, with the checksum worked out independently of checksum() (by
// hand and with a separate script), so a symmetric bug in Marshal and
// Unmarshal cannot hide.
func TestKnownAnswer(t *testing.T) {
	tests := []struct {
		name     string
		src, dst netip.Addr
		wire     []byte
		pkt      Packet
	}{
		{
			name: "v2 simple auth",
			src:  wSrc4, dst: GroupIPv4,
			wire: []byte{
				0x21,       // version 2, type 1
				51,         // VRID
				100,        // priority
				1,          // count
				1,          // auth type simple
				1,          // adver int 1 s
				0x77, 0x07, // checksum over the message only
				198, 18, 0, 100, // address
				's', 'e', 'c', 'r', 'e', 't', 0, 0, // password, zero padded
			},
			pkt: Packet{Version: Version2, VRID: 51, Priority: 100, Interval: time.Second,
				AuthType: AuthSimple, Password: "secret", Addrs: wAddrs("198.18.0.100")},
		},
		{
			name: "v3 IPv4 two addresses",
			src:  wSrc4, dst: GroupIPv4,
			wire: []byte{
				0x31,      // version 3, type 1
				51,        // VRID
				150,       // priority
				2,         // count
				0x00, 100, // rsvd 0, max adver int 100 cs
				0x04, 0xd1, // checksum with pseudo-header 198.18.0.1 -> 224.0.0.18, proto 112, len 16
				198, 18, 0, 100,
				198, 18, 0, 101,
			},
			pkt: Packet{Version: Version3, VRID: 51, Priority: 150, Interval: time.Second,
				Addrs: wAddrs("198.18.0.100", "198.18.0.101")},
		},
		{
			name: "v3 IPv6 two addresses",
			src:  wSrc6, dst: GroupIPv6,
			wire: append([]byte{
				0x31, 7, 100, 2,
				0x00, 10, // 100 ms
				0x0f, 0x4a, // pseudo-header fe80::1 -> ff02::12, len 40, next header 112
			}, append(netip.MustParseAddr("2001:db8::100").AsSlice(),
				netip.MustParseAddr("2001:db8::101").AsSlice()...)...),
			pkt: Packet{Version: Version3, VRID: 7, Priority: 100, Interval: 100 * time.Millisecond,
				Addrs: wAddrs("2001:db8::100", "2001:db8::101")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.pkt.Marshal(tt.src, tt.dst)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !bytes.Equal(got, tt.wire) {
				t.Errorf("Marshal:\n got %x\nwant %x", got, tt.wire)
			}
			p, err := Unmarshal(tt.wire, tt.src, tt.dst)
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(*p, tt.pkt) {
				t.Errorf("Unmarshal:\n got %+v\nwant %+v", *p, tt.pkt)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		src, dst netip.Addr
		pkt      Packet
	}{
		{"v2 no auth", wSrc4, GroupIPv4, Packet{Version: Version2, VRID: 1, Priority: 255,
			Interval: 255 * time.Second, Addrs: wAddrs("198.18.0.10")}},
		{"v2 simple auth 8 bytes", wSrc4, GroupIPv4, Packet{Version: Version2, VRID: 255, Priority: 0,
			Interval: time.Second, AuthType: AuthSimple, Password: "12345678", Addrs: wAddrs("198.18.0.10", "198.18.0.11")}},
		{"v2 simple auth empty password", wSrc4, GroupIPv4, Packet{Version: Version2, VRID: 9, Priority: 1,
			Interval: 3 * time.Second, AuthType: AuthSimple, Addrs: wAddrs("198.18.0.10")}},
		{"v2 unicast", wSrc4, wPeer4, Packet{Version: Version2, VRID: 9, Priority: 1,
			Interval: 3 * time.Second, Addrs: wAddrs("198.18.0.10")}},
		{"v3 IPv4 unicast", wSrc4, wPeer4, Packet{Version: Version3, VRID: 200, Priority: 100,
			Interval: 10 * time.Millisecond, Addrs: wAddrs("198.18.0.10", "198.18.0.11", "198.18.0.12")}},
		{"v3 IPv4 max interval", wSrc4, GroupIPv4, Packet{Version: Version3, VRID: 200, Priority: 100,
			Interval: 40950 * time.Millisecond, Addrs: wAddrs("198.18.0.10")}},
		{"v3 IPv6 multicast", wSrc6, GroupIPv6, Packet{Version: Version3, VRID: 2, Priority: 254,
			Interval: 1230 * time.Millisecond, Addrs: wAddrs("fe80::100", "2001:db8::100", "2001:db8::101")}},
		{"v3 IPv6 unicast", netip.MustParseAddr("2001:db8::1"), wDst6u, Packet{Version: Version3, VRID: 2,
			Priority: 254, Interval: time.Second, Addrs: wAddrs("2001:db8::100")}},
		{"v3 IPv6 zoned source", netip.MustParseAddr("fe80::1%eth0"), GroupIPv6, Packet{Version: Version3, VRID: 2,
			Priority: 254, Interval: time.Second, Addrs: wAddrs("2001:db8::100")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.pkt.Marshal(tt.src, tt.dst)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			p, err := Unmarshal(b, tt.src, tt.dst)
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(*p, tt.pkt) {
				t.Errorf("round trip:\n got %+v\nwant %+v", *p, tt.pkt)
			}
		})
	}
}

// A 4-in-6 mapped address (what net.IP often holds) is the IPv4 address.
func TestMappedAddresses(t *testing.T) {
	p := Packet{Version: Version3, VRID: 1, Priority: 1, Interval: time.Second, Addrs: wAddrs("198.18.0.10")}
	mapped := netip.AddrFrom16(wSrc4.As16())
	a, err := p.Marshal(mapped, netip.AddrFrom16(GroupIPv4.As16()))
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Marshal(wSrc4, GroupIPv4)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("mapped %x, plain %x", a, b)
	}
	if _, err := Unmarshal(a, mapped, GroupIPv4); err != nil {
		t.Errorf("Unmarshal with mapped source: %v", err)
	}
}

// The VRRPv2 checksum does not cover the IP addresses: a v2 message is valid
// whatever the destination, while v3 fails with a different one.
func TestChecksumCoverage(t *testing.T) {
	v2 := Packet{Version: Version2, VRID: 1, Priority: 1, Interval: time.Second, Addrs: wAddrs("198.18.0.10")}
	b, err := v2.Marshal(netip.Addr{}, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unmarshal(b, wPeer4, netip.MustParseAddr("198.18.9.9")); err != nil {
		t.Errorf("v2 with other addresses: %v", err)
	}
	v3 := v2
	v3.Version = Version3
	b, err = v3.Marshal(wSrc4, GroupIPv4)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Unmarshal(b, wSrc4, wPeer4)
	if wReason(err) != DropChecksum {
		t.Errorf("v3 with another destination: got %v, want checksum drop", err)
	}
}

func wReason(err error) DropReason {
	var de *DropError
	if errors.As(err, &de) {
		return de.Reason
	}
	return DropUnknown
}

// fix rewrites the checksum of a hand-edited message so that only the
// intended defect remains.
func wFixSum(v Version, src, dst netip.Addr, b []byte) []byte {
	binary.BigEndian.PutUint16(b[6:], 0)
	binary.BigEndian.PutUint16(b[6:], checksum(v, src, dst, b))
	return b
}

func TestUnmarshalDrops(t *testing.T) {
	good2 := func() []byte { // v2, VRID 51, 1 address, simple "secret"
		return []byte{0x21, 51, 100, 1, 1, 1, 0x77, 0x07, 198, 18, 0, 100, 's', 'e', 'c', 'r', 'e', 't', 0, 0}
	}
	good3 := func() []byte { // v3 IPv4 198.18.0.1 -> 224.0.0.18, 2 addresses
		return []byte{0x31, 51, 150, 2, 0x00, 100, 0x04, 0xd1, 198, 18, 0, 100, 198, 18, 0, 101}
	}
	edit2 := func(f func([]byte) []byte) []byte { return wFixSum(Version2, wSrc4, GroupIPv4, f(good2())) }
	edit3 := func(f func([]byte) []byte) []byte { return wFixSum(Version3, wSrc4, GroupIPv4, f(good3())) }
	flip := func(b []byte, i int) []byte { b[i] ^= 0x01; return b }
	set := func(i int, v byte) func([]byte) []byte {
		return func(b []byte) []byte { b[i] = v; return b }
	}
	tests := []struct {
		name     string
		b        []byte
		src, dst netip.Addr
		want     DropReason
	}{
		{"empty", nil, wSrc4, GroupIPv4, DropTruncated},
		{"short header", good3()[:7], wSrc4, GroupIPv4, DropTruncated},
		{"v3 missing address", good3()[:12], wSrc4, GroupIPv4, DropTruncated},
		{"v2 missing auth data", good2()[:12], wSrc4, GroupIPv4, DropTruncated},
		{"v2 auth data cut", good2()[:19], wSrc4, GroupIPv4, DropTruncated},
		{"v3 trailing byte", append(good3(), 0), wSrc4, GroupIPv4, DropLength},
		{"v3 trailing address", edit3(func(b []byte) []byte { return append(b, 198, 18, 0, 102) }), wSrc4, GroupIPv4, DropLength},
		{"version 1", edit3(set(0, 0x11)), wSrc4, GroupIPv4, DropVersion},
		{"version 4", edit3(set(0, 0x41)), wSrc4, GroupIPv4, DropVersion},
		{"version 0", edit3(set(0, 0x01)), wSrc4, GroupIPv4, DropVersion},
		{"type 0", edit3(set(0, 0x30)), wSrc4, GroupIPv4, DropType},
		{"type 2", edit2(set(0, 0x22)), wSrc4, GroupIPv4, DropType},
		{"no source", good3(), netip.Addr{}, GroupIPv4, DropFamily},
		{"v3 no destination", good3(), wSrc4, netip.Addr{}, DropFamily},
		{"mixed families", good3(), wSrc4, GroupIPv6, DropFamily},
		{"v2 over IPv6", good2(), wSrc6, GroupIPv6, DropFamily},
		{"zero count", edit3(func(b []byte) []byte { b[3] = 0; return b[:8] }), wSrc4, GroupIPv4, DropAddrCount},
		// Checksum defects: one flipped bit in the header, an address, the
		// checksum field, the password; a v3 message from another source.
		{"v3 bad checksum priority", flip(good3(), 2), wSrc4, GroupIPv4, DropChecksum},
		{"v3 bad checksum address", flip(good3(), 15), wSrc4, GroupIPv4, DropChecksum},
		{"v3 bad checksum field", flip(good3(), 7), wSrc4, GroupIPv4, DropChecksum},
		{"v3 other source", good3(), wPeer4, GroupIPv4, DropChecksum},
		{"v2 bad checksum password", flip(good2(), 12), wSrc4, GroupIPv4, DropChecksum},
		{"v2 VRID 0", edit2(set(1, 0)), wSrc4, GroupIPv4, DropVRID},
		{"v2 interval 0", edit2(set(5, 0)), wSrc4, GroupIPv4, DropInterval},
		{"v3 interval 0", edit3(func(b []byte) []byte { b[4], b[5] = 0xf0, 0; return b }), wSrc4, GroupIPv4, DropInterval},
		{"v2 auth type 2 (AH)", edit2(set(4, 2)), wSrc4, GroupIPv4, DropAuthType},
		{"v2 auth type 255", edit2(set(4, 255)), wSrc4, GroupIPv4, DropAuthType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Unmarshal(tt.b, tt.src, tt.dst)
			if err == nil {
				t.Fatalf("accepted %+v", p)
			}
			if p != nil {
				t.Errorf("returned a packet with the error %v", err)
			}
			if got := wReason(err); got != tt.want {
				t.Errorf("reason %v (%v), want %v", got, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want.String()) {
				t.Errorf("error %q does not name the reason %v", err, tt.want)
			}
		})
	}
}

// Things a receiver must tolerate.
func TestUnmarshalLenient(t *testing.T) {
	// RFC 3768: the auth data of type 0 is ignored.
	b := wFixSum(Version2, wSrc4, GroupIPv4, []byte{0x21, 51, 100, 1, 0, 1, 0, 0, 198, 18, 0, 100, 'j', 'u', 'n', 'k', 0, 0, 0, 0})
	p, err := Unmarshal(b, wSrc4, GroupIPv4)
	if err != nil {
		t.Fatal(err)
	}
	if p.AuthType != AuthNone || p.Password != "" {
		t.Errorf("auth %v password %q, want none and empty", p.AuthType, p.Password)
	}
	// RFC 9568: the reserved bits are ignored.
	b = wFixSum(Version3, wSrc4, GroupIPv4, []byte{0x31, 51, 150, 1, 0xf0, 100, 0, 0, 198, 18, 0, 100})
	p, err = Unmarshal(b, wSrc4, GroupIPv4)
	if err != nil {
		t.Fatal(err)
	}
	if p.Interval != time.Second {
		t.Errorf("interval %v, want 1s", p.Interval)
	}
}

func TestMarshalErrors(t *testing.T) {
	ok := Packet{Version: Version3, VRID: 1, Priority: 100, Interval: time.Second, Addrs: wAddrs("198.18.0.10")}
	tests := []struct {
		name     string
		edit     func(*Packet)
		src, dst netip.Addr
	}{
		{"version 0", func(p *Packet) { p.Version = 0 }, wSrc4, GroupIPv4},
		{"version 4", func(p *Packet) { p.Version = 4 }, wSrc4, GroupIPv4},
		{"VRID 0", func(p *Packet) { p.VRID = 0 }, wSrc4, GroupIPv4},
		{"no addresses", func(p *Packet) { p.Addrs = nil }, wSrc4, GroupIPv4},
		{"256 addresses", func(p *Packet) { p.Addrs = make([]netip.Addr, 256); wFillAddrs(p.Addrs) }, wSrc4, GroupIPv4},
		{"mixed addresses", func(p *Packet) { p.Addrs = wAddrs("198.18.0.10", "2001:db8::1") }, wSrc4, GroupIPv4},
		{"zero address", func(p *Packet) { p.Addrs = []netip.Addr{{}} }, wSrc4, GroupIPv4},
		{"source of other family", nil, wSrc6, GroupIPv4},
		{"destination of other family", nil, wSrc4, GroupIPv6},
		{"v3 without source", nil, netip.Addr{}, GroupIPv4},
		{"v3 without destination", nil, wSrc4, netip.Addr{}},
		{"v3 interval 0", func(p *Packet) { p.Interval = 0 }, wSrc4, GroupIPv4},
		{"v3 interval 5ms", func(p *Packet) { p.Interval = 5 * time.Millisecond }, wSrc4, GroupIPv4},
		{"v3 interval 15ms", func(p *Packet) { p.Interval = 15 * time.Millisecond }, wSrc4, GroupIPv4},
		{"v3 interval 40.96s", func(p *Packet) { p.Interval = 40960 * time.Millisecond }, wSrc4, GroupIPv4},
		{"v3 auth type", func(p *Packet) { p.AuthType = AuthSimple }, wSrc4, GroupIPv4},
		{"v3 password", func(p *Packet) { p.Password = "x" }, wSrc4, GroupIPv4},
		{"v2 IPv6", func(p *Packet) { p.Version = Version2; p.Addrs = wAddrs("2001:db8::1") }, wSrc6, GroupIPv6},
		{"v2 interval 0", func(p *Packet) { p.Version = Version2; p.Interval = 0 }, wSrc4, GroupIPv4},
		{"v2 interval 1.5s", func(p *Packet) { p.Version = Version2; p.Interval = 1500 * time.Millisecond }, wSrc4, GroupIPv4},
		{"v2 interval 256s", func(p *Packet) { p.Version = Version2; p.Interval = 256 * time.Second }, wSrc4, GroupIPv4},
		{"v2 password 9 bytes", func(p *Packet) {
			p.Version, p.AuthType, p.Password = Version2, AuthSimple, "123456789"
		}, wSrc4, GroupIPv4},
		{"v2 password without auth", func(p *Packet) { p.Version, p.Password = Version2, "x" }, wSrc4, GroupIPv4},
		{"v2 auth type 2", func(p *Packet) { p.Version, p.AuthType = Version2, 2 }, wSrc4, GroupIPv4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ok
			if tt.edit != nil {
				tt.edit(&p)
			}
			b, err := p.Marshal(tt.src, tt.dst)
			if !errors.Is(err, ErrInvalidPacket) {
				t.Errorf("got %x, %v; want ErrInvalidPacket", b, err)
			}
		})
	}
}

func wFillAddrs(as []netip.Addr) {
	for i := range as {
		as[i] = netip.AddrFrom4([4]byte{198, 18, 1, byte(i)})
	}
}

func TestMaxLen(t *testing.T) {
	as := make([]netip.Addr, 255)
	for i := range as {
		as[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)})
	}
	p := Packet{Version: Version3, VRID: 1, Priority: 1, Interval: time.Second, Addrs: as}
	b, err := p.Marshal(wSrc6, GroupIPv6)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != MaxLen {
		t.Errorf("255 IPv6 addresses: %d bytes, MaxLen %d", len(b), MaxLen)
	}
	if _, err := Unmarshal(b, wSrc6, GroupIPv6); err != nil {
		t.Error(err)
	}
}

func TestStrings(t *testing.T) {
	for _, r := range DropReasons() {
		s := r.String()
		if s == "" || s == "unknown" || strings.HasPrefix(s, "DropReason(") {
			t.Errorf("reason %d has no name: %q", int(r), s)
		}
	}
	if len(DropReasons()) != int(numDropReasons)-1 {
		t.Errorf("DropReasons lists %d of %d", len(DropReasons()), numDropReasons-1)
	}
	for _, c := range []struct{ got, want string }{
		{DropReason(99).String(), "DropReason(99)"},
		{DropUnknown.String(), "unknown"},
		{Version2.String(), "VRRPv2"},
		{Version3.String(), "VRRPv3"},
		{Version(0).String(), "Version(0)"},
		{AuthSimple.String(), "simple"},
		{AuthType(2).String(), "AuthType(2)"},
		{(&DropError{Reason: DropTTL, Detail: "ttl 64"}).Error(), "vrrp: drop ttl: ttl 64"},
		{(&DropError{Reason: DropOwn}).Error(), "vrrp: drop own"},
		{DropAddrMismatch.String(), "addr_mismatch"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// keepalivedSample is an advert captured from keepalived 2.2.7 (Debian) by
// TestKeepalived, which also says how it was configured.
type wKeepalivedSample struct {
	file     string
	src, dst netip.Addr
	want     Packet
}

var wKeepalivedSamples = []wKeepalivedSample{
	{
		file: "keepalived-v3-ipv4.bin",
		src:  netip.MustParseAddr("198.18.0.2"), dst: GroupIPv4,
		want: Packet{Version: Version3, VRID: 61, Priority: 200, Interval: 500 * time.Millisecond,
			Addrs: wAddrs("198.18.0.100", "198.18.0.101")},
	},
	{
		file: "keepalived-v2-pass.bin",
		src:  netip.MustParseAddr("198.18.0.2"), dst: GroupIPv4,
		want: Packet{Version: Version2, VRID: 61, Priority: 200, Interval: time.Second,
			AuthType: AuthSimple, Password: "secret", Addrs: wAddrs("198.18.0.100")},
	},
}

// Regression: keepalived's own adverts decode, and we encode them byte for
// byte the same.
func TestKeepalivedSamples(t *testing.T) {
	for _, s := range wKeepalivedSamples {
		t.Run(s.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", s.file))
			if err != nil {
				t.Fatal(err)
			}
			p, err := Unmarshal(b, s.src, s.dst)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*p, s.want) {
				t.Errorf("decoded %+v, want %+v", *p, s.want)
			}
			mine, err := s.want.Marshal(s.src, s.dst)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(mine, b) {
				t.Errorf("we encode %x, keepalived sent %x", mine, b)
			}
			// The address check lets keepalived's advert through when it
			// lists our VIP, with others or alone, and drops it when not.
			cfg := ConnConfig{Interface: "x", Source: netip.MustParseAddr("198.18.0.1"), VRID: s.want.VRID,
				Version: s.want.Version, Password: s.want.Password, Interval: s.want.Interval}
			d := datagram{Src: s.src, Dst: s.dst, HopLimit: 255}
			for _, vip := range s.want.Addrs {
				cfg.Addrs = []netip.Addr{vip}
				c, _ := wNewConn(t, cfg)
				if _, de := c.check(b, d); de != nil {
					t.Errorf("protecting %v: %v", vip, de)
				}
			}
			cfg.Addrs = wAddrs("198.18.1.100")
			c, _ := wNewConn(t, cfg)
			if _, de := c.check(b, d); de == nil || de.Reason != DropAddrMismatch {
				t.Errorf("protecting 198.18.1.100: %v, want addr_mismatch", de)
			}
		})
	}
}

func BenchmarkMarshalV3(b *testing.B) {
	p := Packet{Version: Version3, VRID: 51, Priority: 100, Interval: 100 * time.Millisecond, Addrs: wAddrs("198.18.0.100")}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Marshal(wSrc4, GroupIPv4); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalV3(b *testing.B) {
	p := Packet{Version: Version3, VRID: 51, Priority: 100, Interval: 100 * time.Millisecond, Addrs: wAddrs("198.18.0.100")}
	msg, err := p.Marshal(wSrc4, GroupIPv4)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Unmarshal(msg, wSrc4, GroupIPv4); err != nil {
			b.Fatal(err)
		}
	}
}
