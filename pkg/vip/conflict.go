package vip

import (
	"encoding/binary"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/bpf"
)

// Duplicate address detection while active, in the manner of RFC 5227
// section 2.4 ("ongoing address conflict detection"): the active node asks
// who has the VIP and listens to the answers. An answer from another MAC
// means a second host holds the VIP: a
// node whose hapod was SIGKILLed (kubeadm reset stops pods without a grace
// period), an address added by hand, a stale keepalived. Clients whose
// neighbour entry points there get "connection refused" or worse.
// hapod cannot take the address off another host; it defends it as RFC
// 5227 section 2.4 (c) allows a host that must keep its address: announce
// again, so the clients' caches point here, and report the conflict.
const (
	// ProbeInterval is how often the active node asks who has the VIP.
	// Answers to requests from clients are unicast to them and never seen
	// here, so a stale holder is found by asking: one 60-byte frame a
	// second bounds the time a client may stay misdirected to about a
	// second plus its ARP cache's own refresh.
	ProbeInterval = time.Second
	// DefendInterval is the least time between two re-announcements for
	// conflicts. A stale holder answers every probe and every client, and
	// each answer would otherwise cost a burst.
	DefendInterval = time.Second
)

// Conflict is another host claiming the VIP.
type Conflict struct {
	// MAC is the other host's hardware address.
	MAC net.HardwareAddr
	// At is when its claim was seen.
	At time.Time
}

// More wire constants: the probes and the claims they draw (RFC 826, RFC
// 4861).
const (
	icmpv6NeighSol = 135
	nsLen          = 24 // type, code, checksum, reserved, target
	ndOptSourceLL  = 1
)

// arpProbe returns an ARP probe for ip (RFC 5227 section 2.1.1): a
// broadcast request with sender protocol address 0.0.0.0, so that a host
// holding ip answers to our MAC without learning anything from it.
func arpProbe(mac hwAddr, ip netip.Addr) []byte {
	b := make([]byte, minFrameLen)
	putEthernet(b, ethBroadcast, mac, etherTypeARP)
	a := b[ethHeaderLen:]
	binary.BigEndian.PutUint16(a[0:2], arpHardwareEthernet)
	binary.BigEndian.PutUint16(a[2:4], etherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], uint16(arpRequest))
	copy(a[8:14], mac[:])
	// Sender protocol address and target hardware address stay zero.
	ip4 := ip.As4()
	copy(a[24:28], ip4[:])
	return b
}

// solicitedNode returns the solicited-node multicast address of ip and
// its Ethernet mapping (RFC 4291 section 2.7.1, RFC 2464 section 7).
func solicitedNode(ip netip.Addr) (netip.Addr, hwAddr) {
	a := ip.As16()
	g := netip.AddrFrom16([16]byte{0xff, 0x02, 11: 0x01, 12: 0xff, 13: a[13], 14: a[14], 15: a[15]})
	return g, hwAddr{0x33, 0x33, 0xff, a[13], a[14], a[15]}
}

// nsProbe returns a Neighbor Solicitation for ip from src (the node's own
// address) at mac. Not the DAD form from "::": a host holding ip answers
// that one with an NA to all nodes with the Override flag, which would
// point every client at it. From src, the answer is unicast to us.
func nsProbe(mac hwAddr, src, ip netip.Addr) []byte {
	const icmpLen = nsLen + 8 // one Source Link-Layer Address option
	dst, dstMAC := solicitedNode(ip)
	b := make([]byte, ethHeaderLen+ipv6HeaderLen+icmpLen)
	putEthernet(b, dstMAC, mac, etherTypeIPv6)
	h := b[ethHeaderLen:]
	h[0] = 6 << 4
	binary.BigEndian.PutUint16(h[4:6], icmpLen)
	h[6] = protoICMPv6
	h[7] = ndHopLimit
	s, d, t := src.As16(), dst.As16(), ip.As16()
	copy(h[8:24], s[:])
	copy(h[24:40], d[:])
	m := h[ipv6HeaderLen:]
	m[0] = icmpv6NeighSol
	copy(m[8:24], t[:])
	m[24] = ndOptSourceLL
	m[25] = 1
	copy(m[26:32], mac[:])
	binary.BigEndian.PutUint16(m[2:4], icmpv6Checksum(src, dst, m))
	return b
}

// probe returns the frame that asks who has ip: an ARP probe for IPv4, a
// Neighbor Solicitation from src for IPv6.
func probe(mac hwAddr, src, ip netip.Addr) []byte {
	if ip.Is4() {
		return arpProbe(mac, ip)
	}
	return nsProbe(mac, src, ip)
}

// claimant returns the hardware address of a host that frame says holds
// ip, when that is not own: an ARP packet (request or reply) whose sender
// protocol address is ip, or a Neighbor Advertisement whose target is ip
// (its Target Link-Layer Address option, else the frame's source MAC).
// Only frames sent to own count: the answers to our probes. Broadcast
// announcements are left out on purpose: two routers that both take over
// at once (equal priorities, a healed partition) announce the VIP until
// VRRP sorts them out a round trip later, and their mutual announcements
// are no conflict worth reporting; a host that really holds the VIP
// answers the next probe. Our own announcements, which a packet socket
// also sees, are not claims either.
func claimant(frame []byte, ip netip.Addr, own hwAddr) (hwAddr, bool) {
	if len(frame) < ethHeaderLen || hwAddr(frame[0:6]) != own {
		return hwAddr{}, false
	}
	var mac hwAddr
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherTypeARP:
		a := frame[ethHeaderLen:]
		if !ip.Is4() || len(a) < arpLen || binary.BigEndian.Uint16(a[0:2]) != arpHardwareEthernet ||
			binary.BigEndian.Uint16(a[2:4]) != etherTypeIPv4 || a[4] != 6 || a[5] != 4 {
			return hwAddr{}, false
		}
		if netip.AddrFrom4([4]byte(a[14:18])) != ip {
			return hwAddr{}, false
		}
		mac = hwAddr(a[8:14])
	case etherTypeIPv6:
		h := frame[ethHeaderLen:]
		if !ip.Is6() || len(h) < ipv6HeaderLen+naLen || h[6] != protoICMPv6 || h[7] != ndHopLimit {
			return hwAddr{}, false
		}
		m := h[ipv6HeaderLen:]
		if m[0] != icmpv6NeighAdv || m[1] != 0 || netip.AddrFrom16([16]byte(m[8:24])) != ip {
			return hwAddr{}, false
		}
		mac = hwAddr(frame[6:12])
		for opts := m[naLen:]; len(opts) >= 8 && opts[1] > 0 && len(opts) >= int(opts[1])*8; opts = opts[int(opts[1])*8:] {
			if opts[0] == ndOptTargetLL {
				mac = hwAddr(opts[2:8])
				break
			}
		}
	default:
		return hwAddr{}, false
	}
	if mac == own || mac == (hwAddr{}) {
		return hwAddr{}, false
	}
	return mac, true
}

// defense rate-limits re-announcements for conflicts to one per
// DefendInterval.
type defense struct{ last time.Time }

// allow reports whether a re-announcement may go out at now, and if so
// counts it.
func (d *defense) allow(now time.Time) bool {
	if !d.last.IsZero() && now.Sub(d.last) < DefendInterval {
		return false
	}
	d.last = now
	return true
}

// claimFilter passes ARP packets whose sender protocol address is one of
// vips and ICMPv6 Neighbor Advertisements whose target is one of vips;
// claimant checks them in full. Offsets count from the Ethernet header.
// Each VIP's test ends in a long jump to "keep", so that the 8-bit skips
// of conditional jumps stay short whatever the number of VIPs.
func claimFilter(vips []netip.Addr) []bpf.Instruction {
	const keep, drop = 256, 0
	var prog []bpf.Instruction
	// toKeep is a placeholder for the jump to "keep", patched at the end.
	var toKeep []int
	if vips[0].Is4() {
		prog = append(prog, bpf.LoadAbsolute{Off: ethHeaderLen + 14, Size: 4}) // sender protocol address
		for _, v := range vips {
			a := v.As4()
			prog = append(prog, bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: be32(a[:]), SkipTrue: 1})
			toKeep = append(toKeep, len(prog))
			prog = append(prog, bpf.Jump{})
		}
	} else {
		const icmp = ethHeaderLen + ipv6HeaderLen
		prog = append(prog,
			bpf.LoadAbsolute{Off: ethHeaderLen + 6, Size: 1}, // next header
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: protoICMPv6, SkipTrue: 1},
			bpf.RetConstant{Val: drop},
			bpf.LoadAbsolute{Off: icmp, Size: 1}, // ICMPv6 type
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpv6NeighAdv, SkipTrue: 1},
			bpf.RetConstant{Val: drop},
		)
		for _, v := range vips {
			// Four words of the target address; a mismatch skips to the
			// next VIP's test (after this one's jump to "keep").
			a := v.As16()
			for i := range 4 {
				prog = append(prog,
					bpf.LoadAbsolute{Off: icmp + 8 + uint32(4*i), Size: 4}, // target address
					bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: be32(a[4*i : 4*i+4]), SkipTrue: uint8(7 - 2*i)},
				)
			}
			toKeep = append(toKeep, len(prog))
			prog = append(prog, bpf.Jump{})
		}
	}
	prog = append(prog, bpf.RetConstant{Val: drop}, bpf.RetConstant{Val: keep})
	for _, at := range toKeep {
		prog[at] = bpf.Jump{Skip: uint32(len(prog) - 1 - at - 1)}
	}
	return prog
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
