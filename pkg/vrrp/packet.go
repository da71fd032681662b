// The wire layer's pure codec: VRRP version 2 (RFC 3768, IPv4 only,
// optional simple password) and version 3 (RFC 9568, IPv4 and IPv6), byte
// for byte what keepalived sends. conn*.go carry adverts over raw IP sockets
// and apply the receive checks that need the IP header (TTL, source,
// interface) or the configuration (VRID, version, password).

package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// IPProtocol is the IP protocol number of VRRP (IPv4 protocol, IPv6 next
// header).
const IPProtocol = 112

// The multicast groups adverts are sent to (RFC 9568 section 5.1). Link
// scope: routers never forward them, which the TTL 255 check relies on.
var (
	GroupIPv4 = netip.AddrFrom4([4]byte{224, 0, 0, 18})
	GroupIPv6 = netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 0x12})
)

// Version is the VRRP protocol version. The zero value is invalid.
type Version uint8

// The supported versions.
const (
	Version2 Version = 2 // RFC 3768: IPv4 only, interval in seconds, auth field
	Version3 Version = 3 // RFC 9568: IPv4 and IPv6, interval in centiseconds, no auth
)

// String returns "VRRPv2" or "VRRPv3".
func (v Version) String() string {
	switch v {
	case Version2, Version3:
		return "VRRPv" + strconv.Itoa(int(v))
	}
	return "Version(" + strconv.Itoa(int(v)) + ")"
}

// AuthType is the VRRPv2 authentication type. VRRPv3 has none.
type AuthType uint8

// The VRRPv2 authentication types hapod speaks. Type 2 (IP Authentication
// Header) was removed by RFC 3768 and is rejected.
const (
	AuthNone   AuthType = 0
	AuthSimple AuthType = 1 // clear-text password, up to 8 bytes
)

// String returns "none", "simple" or the number.
func (a AuthType) String() string {
	switch a {
	case AuthNone:
		return "none"
	case AuthSimple:
		return "simple"
	}
	return "AuthType(" + strconv.Itoa(int(a)) + ")"
}

// Wire layout constants.
const (
	headerLen    = 8 // version/type, VRID, priority, count, auth/rsvd+interval, checksum
	authLen      = 8 // VRRPv2 authentication data, present whatever the auth type
	typeAdvert   = 1 // the only VRRP message type
	maxPassword  = authLen
	maxV2Seconds = 255
	maxV3Centis  = 0x0fff // 12-bit Max Adver Int
	centisecond  = 10 * time.Millisecond
)

// MaxLen is the longest valid VRRP message: 255 IPv6 addresses in VRRPv3.
const MaxLen = headerLen + 255*16

// Packet is a decoded VRRP advertisement, the only VRRP message type.
type Packet struct {
	Version  Version
	VRID     uint8 // 1-255
	Priority uint8 // 0 = stepping down, 255 = address owner
	// Interval is the advertisement interval: whole seconds 1-255 in v2,
	// centiseconds (10ms-40.95s) in v3.
	Interval time.Duration
	AuthType AuthType // v2 only
	// Password is the v2 simple password, at most 8 bytes; zero padded on
	// the wire and trailing zeros removed on receive.
	Password string
	// Addrs are the virtual addresses, all of the IP family of the packet.
	Addrs []netip.Addr
}

// ErrInvalidPacket is wrapped by every Marshal error: the Packet cannot be
// encoded (a field out of range or inconsistent with the addresses).
var ErrInvalidPacket = errors.New("vrrp: invalid packet")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidPacket}, args...)...)
}

// Marshal encodes p as a VRRP message (without IP header) sent from src to
// dst. The VRRPv3 checksum covers an IPv4 or IPv6 pseudo-header, so both
// addresses are needed and must be of the family of p.Addrs; the VRRPv2
// checksum covers the message only, and src and dst may be left zero.
func (p *Packet) Marshal(src, dst netip.Addr) ([]byte, error) {
	src, dst = src.Unmap().WithZone(""), dst.Unmap().WithZone("")
	if p.Version != Version2 && p.Version != Version3 {
		return nil, invalid("version %d", p.Version)
	}
	if p.VRID == 0 {
		return nil, invalid("VRID 0")
	}
	if len(p.Addrs) == 0 || len(p.Addrs) > 255 {
		return nil, invalid("%d addresses, want 1-255", len(p.Addrs))
	}
	is4 := p.Addrs[0].Is4()
	for _, a := range p.Addrs {
		if !a.IsValid() || a.Is4() != is4 {
			return nil, invalid("address %v: addresses must be all IPv4 or all IPv6", a)
		}
	}
	for _, a := range []netip.Addr{src, dst} {
		if a.IsValid() && a.Is4() != is4 {
			return nil, invalid("IP address %v is not of the family of the virtual addresses", a)
		}
	}
	alen := 16
	if is4 {
		alen = 4
	}
	n := headerLen + alen*len(p.Addrs)

	var b []byte
	switch p.Version {
	case Version2:
		if !is4 {
			return nil, invalid("VRRPv2 is IPv4 only")
		}
		secs := p.Interval / time.Second
		if p.Interval%time.Second != 0 || secs < 1 || secs > maxV2Seconds {
			return nil, invalid("VRRPv2 interval %v: want whole seconds 1s-255s", p.Interval)
		}
		switch p.AuthType {
		case AuthNone:
			if p.Password != "" {
				return nil, invalid("password set with auth type none")
			}
		case AuthSimple:
			if len(p.Password) > maxPassword {
				return nil, invalid("password longer than %d bytes", maxPassword)
			}
		default:
			return nil, invalid("auth type %d", p.AuthType)
		}
		b = make([]byte, n+authLen)
		b[4] = byte(p.AuthType)
		b[5] = byte(secs)
		copy(b[n:], p.Password) // zero padded by make
	case Version3:
		if p.AuthType != AuthNone || p.Password != "" {
			return nil, invalid("VRRPv3 has no authentication")
		}
		if !src.IsValid() || !dst.IsValid() {
			return nil, invalid("VRRPv3 checksum needs source and destination addresses")
		}
		cs := p.Interval / centisecond
		if p.Interval%centisecond != 0 || cs < 1 || cs > maxV3Centis {
			return nil, invalid("VRRPv3 interval %v: want a multiple of 10ms in 10ms-40.95s", p.Interval)
		}
		b = make([]byte, n)
		binary.BigEndian.PutUint16(b[4:], uint16(cs)) // reserved high 4 bits stay zero
	}
	b[0] = byte(p.Version)<<4 | typeAdvert
	b[1] = p.VRID
	b[2] = p.Priority
	b[3] = byte(len(p.Addrs))
	for i, a := range p.Addrs {
		copy(b[headerLen+i*alen:], a.AsSlice())
	}
	binary.BigEndian.PutUint16(b[6:], checksum(p.Version, src, dst, b))
	return b, nil
}

// Unmarshal decodes the VRRP message b (without IP header) received from src
// and addressed to dst (the destination of the IP header: the group or, in
// unicast mode, our own address). Both are needed for the VRRPv3 checksum;
// for VRRPv2 src only gives the family and dst may be zero.
//
// It checks everything the message alone can tell (RFC 9568 section 7.1,
// RFC 3768 section 7.1): version, type, length, address count and family,
// checksum, VRID and interval non-zero, known auth type. Checks against
// configuration (VRID, version, password) and the IP header (TTL) are the
// receiver's. Every error is a *DropError.
func Unmarshal(b []byte, src, dst netip.Addr) (*Packet, error) {
	src, dst = src.Unmap().WithZone(""), dst.Unmap().WithZone("")
	if len(b) < headerLen {
		return nil, drop(DropTruncated, "%d bytes, header is %d", len(b), headerLen)
	}
	v := Version(b[0] >> 4)
	if v != Version2 && v != Version3 {
		return nil, drop(DropVersion, "version %d", v)
	}
	if t := b[0] & 0x0f; t != typeAdvert {
		return nil, drop(DropType, "type %d", t)
	}
	if !src.IsValid() {
		return nil, drop(DropFamily, "no source address")
	}
	if dst.IsValid() && dst.Is4() != src.Is4() {
		return nil, drop(DropFamily, "source %v and destination %v of different families", src, dst)
	}
	if v == Version2 && !src.Is4() {
		return nil, drop(DropFamily, "VRRPv2 from IPv6 source %v", src)
	}
	if v == Version3 && !dst.IsValid() {
		return nil, drop(DropFamily, "no destination address for the VRRPv3 checksum")
	}
	count := int(b[3])
	if count == 0 {
		return nil, drop(DropAddrCount, "zero addresses")
	}
	alen := 16
	if src.Is4() {
		alen = 4
	}
	n := headerLen + count*alen
	want := n
	if v == Version2 {
		want += authLen
	}
	if len(b) < want {
		return nil, drop(DropTruncated, "%d bytes, %d addresses need %d", len(b), count, want)
	}
	if len(b) > want {
		return nil, drop(DropLength, "%d bytes, %d addresses need %d", len(b), count, want)
	}
	if got := checksum(v, src, dst, b); got != 0 {
		// Summing a message whose checksum is right gives zero; report
		// what the sender should have put in the field.
		return nil, drop(DropChecksum, "field %#04x, want %#04x",
			binary.BigEndian.Uint16(b[6:]), checksumWant(v, src, dst, b))
	}
	p := &Packet{Version: v, VRID: b[1], Priority: b[2]}
	if p.VRID == 0 {
		return nil, drop(DropVRID, "VRID 0")
	}
	switch v {
	case Version2:
		p.Interval = time.Duration(b[5]) * time.Second
		p.AuthType = AuthType(b[4])
		switch p.AuthType {
		case AuthNone:
			// RFC 3768: the auth data of type 0 is ignored on receive.
		case AuthSimple:
			pw := b[n:want]
			for len(pw) > 0 && pw[len(pw)-1] == 0 {
				pw = pw[:len(pw)-1]
			}
			p.Password = string(pw)
		default:
			return nil, drop(DropAuthType, "auth type %d", p.AuthType)
		}
	case Version3:
		// The 4 reserved bits are ignored on receive (RFC 9568 5.2.7).
		p.Interval = time.Duration(binary.BigEndian.Uint16(b[4:])&maxV3Centis) * centisecond
	}
	if p.Interval == 0 {
		return nil, drop(DropInterval, "zero advertisement interval")
	}
	p.Addrs = make([]netip.Addr, count)
	for i := range p.Addrs {
		off := headerLen + i*alen
		if alen == 4 {
			p.Addrs[i] = netip.AddrFrom4([4]byte(b[off : off+4]))
		} else {
			p.Addrs[i] = netip.AddrFrom16([16]byte(b[off : off+16]))
		}
	}
	return p, nil
}

// checksum returns the Internet checksum (RFC 1071) of msg, preceded for
// VRRPv3 by the pseudo-header of RFC 9568 5.2.8 (IPv4: src, dst, zero,
// protocol, length; IPv6: src, dst, 32-bit length, zeros, next header).
// With the checksum field filled in correctly the result is zero.
func checksum(v Version, src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	if v == Version3 {
		var ph []byte
		if src.Is4() {
			s, d := src.As4(), dst.As4()
			ph = make([]byte, 0, 12)
			ph = append(ph, s[:]...)
			ph = append(ph, d[:]...)
			ph = append(ph, 0, IPProtocol)
			ph = binary.BigEndian.AppendUint16(ph, uint16(len(msg)))
		} else {
			s, d := src.As16(), dst.As16()
			ph = make([]byte, 0, 40)
			ph = append(ph, s[:]...)
			ph = append(ph, d[:]...)
			ph = binary.BigEndian.AppendUint32(ph, uint32(len(msg)))
			ph = append(ph, 0, 0, 0, IPProtocol)
		}
		sum = sum16(sum, ph) // even length, so msg starts on a word boundary
	}
	sum = sum16(sum, msg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// checksumWant is the value msg's checksum field should hold.
func checksumWant(v Version, src, dst netip.Addr, msg []byte) uint16 {
	c := make([]byte, len(msg))
	copy(c, msg)
	c[6], c[7] = 0, 0
	return checksum(v, src, dst, c)
}

// sum16 adds b as big-endian 16-bit words (an odd last byte padded with zero).
func sum16(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
		if sum > 0xffff {
			sum = sum>>16 + sum&0xffff
		}
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}
