package vip

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

var testMAC = hwAddr{0x02, 0x42, 0xc6, 0x12, 0x00, 0x0a}

// unhex decodes hex written with spaces and line breaks for readability.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestARPFrame(t *testing.T) {
	ip := netip.MustParseAddr("198.18.0.10")
	for _, tc := range []struct {
		op   arpOp
		want string
	}{
		{arpRequest, `
			ffffffffffff 0242c612000a 0806
			0001 0800 06 04 0001
			0242c612000a c612000a
			ffffffffffff c612000a
			000000000000000000000000000000000000`},
		{arpReply, `
			ffffffffffff 0242c612000a 0806
			0001 0800 06 04 0002
			0242c612000a c612000a
			ffffffffffff c612000a
			000000000000000000000000000000000000`},
	} {
		got := arpFrame(tc.op, testMAC, ip)
		if want := unhex(t, tc.want); !bytes.Equal(got, want) {
			t.Errorf("arpFrame(op %d):\n got %x\nwant %x", tc.op, got, want)
		}
		if len(got) != minFrameLen {
			t.Errorf("arpFrame(op %d) is %d bytes, want the Ethernet minimum %d", tc.op, len(got), minFrameLen)
		}
	}
}

func TestUnsolicitedNA(t *testing.T) {
	ip := netip.MustParseAddr("2001:db8::10")
	// Checksums computed independently (a few lines of Python over the
	// pseudo-header and message) for these exact bytes.
	for _, tc := range []struct {
		router bool
		want   string
	}{
		{false, `
			333300000001 0242c612000a 86dd
			60000000 0020 3a ff
			20010db8000000000000000000000010
			ff020000000000000000000000000001
			88 00 32af 20000000
			20010db8000000000000000000000010
			02 01 0242c612000a`},
		{true, `
			333300000001 0242c612000a 86dd
			60000000 0020 3a ff
			20010db8000000000000000000000010
			ff020000000000000000000000000001
			88 00 b2ae a0000000
			20010db8000000000000000000000010
			02 01 0242c612000a`},
	} {
		got := unsolicitedNA(testMAC, ip, tc.router)
		if want := unhex(t, tc.want); !bytes.Equal(got, want) {
			t.Errorf("unsolicitedNA(router=%v):\n got %x\nwant %x", tc.router, got, want)
		}
	}
}

// TestICMPv6ChecksumVerifies checks the receiver's rule (RFC 1071): the
// ones' complement sum over pseudo-header and message, checksum included,
// is all ones, for several addresses and both flag settings.
func TestICMPv6ChecksumVerifies(t *testing.T) {
	for _, s := range []string{"2001:db8::10", "2001:db8:ffff:ffff:ffff:ffff:ffff:fffe", "fe80::1", "2001:db8::"} {
		for _, router := range []bool{false, true} {
			ip := netip.MustParseAddr(s)
			f := unsolicitedNA(hwAddr{0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa}, ip, router)
			msg := f[ethHeaderLen+ipv6HeaderLen:]
			src, dst := ip.As16(), allNodesAddr.As16()
			sum := onesSum(0, src[:])
			sum = onesSum(sum, dst[:])
			sum += uint32(len(msg)) + protoICMPv6
			sum = onesSum(sum, msg)
			for sum > 0xffff {
				sum = sum>>16 + sum&0xffff
			}
			if sum != 0xffff {
				t.Errorf("%s router=%v: checksum does not verify (sum %#x)", s, router, sum)
			}
		}
	}
}

func TestOnesSumOddLength(t *testing.T) {
	if got := onesSum(0, []byte{0x12, 0x34, 0x56}); got != 0x1234+0x5600 {
		t.Errorf("onesSum = %#x, want %#x", got, 0x1234+0x5600)
	}
}

func TestAnnouncement(t *testing.T) {
	v4 := announcement(testMAC, netip.MustParseAddr("198.18.0.10"), false)
	if len(v4) != 2 || v4[0][21] != byte(arpRequest) || v4[1][21] != byte(arpReply) {
		t.Errorf("IPv4 round: want an ARP request then a reply, got %x", v4)
	}
	v6 := announcement(testMAC, netip.MustParseAddr("2001:db8::10"), true)
	if len(v6) != 1 || !bytes.Equal(v6[0], unsolicitedNA(testMAC, netip.MustParseAddr("2001:db8::10"), true)) {
		t.Errorf("IPv6 round: want one NA with the router flag, got %x", v6)
	}
}

func TestBroadcast(t *testing.T) {
	for _, tc := range []struct{ prefix, want string }{
		{"198.18.0.10/24", "198.18.0.255"},
		{"198.18.0.10/16", "198.18.255.255"},
		{"198.18.5.10/15", "198.19.255.255"},
		{"198.18.0.9/30", "198.18.0.11"},
		{"198.18.0.10/31", ""},
		{"198.18.0.10/32", ""},
		{"10.1.2.3/0", "255.255.255.255"},
		{"2001:db8::10/64", ""},
	} {
		got := broadcast(netip.MustParsePrefix(tc.prefix))
		if (tc.want == "" && got.IsValid()) || (tc.want != "" && got != netip.MustParseAddr(tc.want)) {
			t.Errorf("broadcast(%s) = %v, want %q", tc.prefix, got, tc.want)
		}
	}
}

func TestUsable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags uint32
		oper  uint8
		want  bool
	}{
		{"up with carrier", iffUp | iffRunning | iffLowerUp, operUp, true},
		{"admin down", iffLowerUp, operDown, false},
		{"no carrier", iffUp, operDown, false},
		{"peer veth down", iffUp, operLowerLayerDown, false},
		{"carrier but oper down", iffUp | iffLowerUp, operDown, false},
		{"dormant (802.1X not done)", iffUp | iffLowerUp, operDormant, false},
		{"testing", iffUp | iffLowerUp, operTesting, false},
		{"not present", iffUp | iffLowerUp, operNotPresent, false},
		{"driver without oper state", iffUp | iffLowerUp, operUnknown, true},
		{"unknown oper state, no carrier", iffUp, operUnknown, false},
		{"running without lower up", iffUp | iffRunning, operUp, false},
	} {
		if got := usable(tc.flags, tc.oper); got != tc.want {
			t.Errorf("%s: usable(%#x, %d) = %v, want %v", tc.name, tc.flags, tc.oper, got, tc.want)
		}
	}
}
