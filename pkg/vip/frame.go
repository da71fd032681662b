package vip

import (
	"encoding/binary"
	"net/netip"
)

// Wire constants for the two announcement frames. Values from RFC 826
// (ARP), RFC 8200 (IPv6) and RFC 4861 (Neighbor Discovery).
const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd

	ethHeaderLen = 14
	// minFrameLen is the shortest Ethernet frame without FCS. ARP frames
	// are padded to it here rather than trusting every driver to pad.
	minFrameLen = 60

	arpHardwareEthernet = 1
	arpLen              = 28

	ipv6HeaderLen    = 40
	protoICMPv6      = 58
	ndHopLimit       = 255 // RFC 4861 7.1.2: receivers drop NDP with any other hop limit
	icmpv6NeighAdv   = 136
	naLen            = 24 // type, code, checksum, flags+reserved, target
	ndOptTargetLL    = 2
	ndOptTargetLLLen = 8 // one 8-octet unit: type, length, 6-byte MAC

	naFlagRouter    = 0x80
	naFlagSolicited = 0x40
	naFlagOverride  = 0x20
)

// arpOp is an ARP operation code.
type arpOp uint16

const (
	arpRequest arpOp = 1
	arpReply   arpOp = 2
)

// hwAddr is an Ethernet MAC address; a fixed array so a wrong length
// cannot reach the encoders.
type hwAddr [6]byte

var (
	ethBroadcast = hwAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	// allNodesMAC is ff02::1 mapped to Ethernet (RFC 2464 section 7).
	allNodesMAC  = hwAddr{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}
	allNodesAddr = netip.AddrFrom16([16]byte{0xff, 0x02, 15: 0x01})
)

// arpFrame returns a gratuitous ARP Ethernet frame announcing that ip is at
// mac: sender and target protocol addresses are both ip, the frame goes to
// the broadcast MAC, and the target hardware address is broadcast too, as
// keepalived and MetalLB send it (receivers ignore it). ip must be IPv4.
func arpFrame(op arpOp, mac hwAddr, ip netip.Addr) []byte {
	b := make([]byte, minFrameLen) // ARP needs 42 bytes; the rest is zero padding
	putEthernet(b, ethBroadcast, mac, etherTypeARP)
	a := b[ethHeaderLen:]
	binary.BigEndian.PutUint16(a[0:2], arpHardwareEthernet)
	binary.BigEndian.PutUint16(a[2:4], etherTypeIPv4)
	a[4] = 6 // hardware address length
	a[5] = 4 // protocol address length
	binary.BigEndian.PutUint16(a[6:8], uint16(op))
	ip4 := ip.As4()
	copy(a[8:14], mac[:])
	copy(a[14:18], ip4[:])
	copy(a[18:24], ethBroadcast[:])
	copy(a[24:28], ip4[:])
	return b
}

// unsolicitedNA returns an Ethernet frame carrying an unsolicited Neighbor
// Advertisement (RFC 4861 section 7.2.6) for ip at mac: from ip to ff02::1,
// hop limit 255, Override set and Solicited clear so every neighbour that
// has an entry for ip replaces its link-layer address, and a Target
// Link-Layer Address option. router sets the R flag; it should say whether
// the interface forwards, since a receiver that sees R clear for a
// neighbour it knew as a router drops it as a default router. ip must be
// IPv6.
func unsolicitedNA(mac hwAddr, ip netip.Addr, router bool) []byte {
	const icmpLen = naLen + ndOptTargetLLLen
	b := make([]byte, ethHeaderLen+ipv6HeaderLen+icmpLen)
	putEthernet(b, allNodesMAC, mac, etherTypeIPv6)

	h := b[ethHeaderLen:]
	h[0] = 6 << 4 // version 6, traffic class 0, flow label 0
	binary.BigEndian.PutUint16(h[4:6], icmpLen)
	h[6] = protoICMPv6
	h[7] = ndHopLimit
	src, dst := ip.As16(), allNodesAddr.As16()
	copy(h[8:24], src[:])
	copy(h[24:40], dst[:])

	m := h[ipv6HeaderLen:]
	m[0] = icmpv6NeighAdv
	m[1] = 0 // code
	flags := byte(naFlagOverride)
	if router {
		flags |= naFlagRouter
	}
	m[4] = flags
	copy(m[8:24], src[:])
	m[24] = ndOptTargetLL
	m[25] = ndOptTargetLLLen / 8
	copy(m[26:32], mac[:])
	binary.BigEndian.PutUint16(m[2:4], icmpv6Checksum(ip, allNodesAddr, m))
	return b
}

func putEthernet(b []byte, dst, src hwAddr, etherType uint16) {
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:14], etherType)
}

// icmpv6Checksum is the RFC 8200 section 8.1 checksum of msg (whose
// checksum field must be zero) with the IPv6 pseudo-header. A raw AF_PACKET
// frame bypasses the kernel's ICMPv6 socket, so nobody else fills it in.
func icmpv6Checksum(src, dst netip.Addr, msg []byte) uint16 {
	s, d := src.As16(), dst.As16()
	var sum uint32
	sum = onesSum(sum, s[:])
	sum = onesSum(sum, d[:])
	sum += uint32(len(msg)) >> 16
	sum += uint32(len(msg)) & 0xffff
	sum += protoICMPv6
	sum = onesSum(sum, msg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// onesSum adds b as big-endian 16-bit words to sum; an odd last byte is
// padded with zero.
func onesSum(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// announcement returns the frames of one announcement round for addr: a
// gratuitous ARP request and reply for IPv4 (some hosts and switches only
// learn from one of the two forms, so both go out, as MetalLB does), one
// unsolicited NA for IPv6.
func announcement(mac hwAddr, addr netip.Addr, router bool) [][]byte {
	if addr.Is4() {
		return [][]byte{arpFrame(arpRequest, mac, addr), arpFrame(arpReply, mac, addr)}
	}
	return [][]byte{unsolicitedNA(mac, addr, router)}
}

// broadcast returns the IPv4 directed broadcast address of p, or the zero
// Addr when p has none: IPv6, /31 (RFC 3021) and /32.
func broadcast(p netip.Prefix) netip.Addr {
	if !p.Addr().Is4() || p.Bits() > 30 {
		return netip.Addr{}
	}
	a := p.Addr().As4()
	host := ^uint32(0) >> p.Bits()
	v := binary.BigEndian.Uint32(a[:]) | host
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}
