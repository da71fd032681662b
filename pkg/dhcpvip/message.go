package dhcpvip

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// maxMessageSize is option 57: what the client accepts, a full Ethernet
// frame's worth (RFC 2132 section 9.10).
const maxMessageSize = 1500

// requestedOptions is option 55: what the client needs from the lease.
var requestedOptions = []dhcpv4.OptionCode{
	dhcpv4.OptionSubnetMask,
	dhcpv4.OptionIPAddressLeaseTime,
	dhcpv4.OptionRenewTimeValue,
	dhcpv4.OptionRebindingTimeValue,
	dhcpv4.OptionServerIdentifier,
}

// buildMessage turns a Machine's Message into the DHCP packet to send.
// Every message carries the same identity (chaddr, option 61), the
// broadcast flag and ciaddr 0, so the server broadcasts its reply: see the
// package documentation for why. hostname (option 12) is optional.
func buildMessage(id Identity, msg Message, xid dhcpv4.TransactionID, hostname string) (*dhcpv4.DHCPv4, error) {
	var mt dhcpv4.MessageType
	switch msg.Type {
	case MessageDiscover:
		mt = dhcpv4.MessageTypeDiscover
	case MessageRequest:
		mt = dhcpv4.MessageTypeRequest
		if !msg.Requested.Is4() {
			return nil, fmt.Errorf("dhcpvip: a Request needs an IPv4 address, got %v", msg.Requested)
		}
	default:
		return nil, fmt.Errorf("dhcpvip: cannot build %v", msg.Type)
	}
	mods := []dhcpv4.Modifier{
		dhcpv4.WithTransactionID(xid),
		dhcpv4.WithHwAddr(id.MAC),
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithBroadcast(true),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(id.ClientID)),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(maxMessageSize)),
		dhcpv4.WithRequestedOptions(requestedOptions...),
	}
	if msg.Requested.Is4() {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP(msg.Requested.AsSlice()))))
	}
	if msg.Server.Is4() {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(msg.Server.AsSlice()))))
	}
	if hostname != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(hostname)))
	}
	return dhcpv4.New(mods...)
}

// decodeReply turns a received packet into a Machine input. ok is false
// for a packet that is not a reply to this client's transaction xid (other
// clients' replies on a broadcast segment are normal and dropped quietly),
// except the cluster's ACK for want (see clusterAck); err is set for a
// reply to us that can't be used.
func decodeReply(id Identity, xids []dhcpv4.TransactionID, want netip.Addr, p *dhcpv4.DHCPv4) (in Input, ok bool, err error) {
	if p.OpCode != dhcpv4.OpcodeBootReply || !sameMAC(p.ClientHWAddr, id.MAC) {
		return nil, false, nil
	}
	mine := slices.Contains(xids, p.TransactionID) || clusterAck(p, want)
	if !mine || !id.matchesClientID(p.Options.Get(dhcpv4.OptionClientIdentifier)) {
		return nil, false, nil
	}
	server, _ := addr4(p.Options.Get(dhcpv4.OptionServerIdentifier))
	if !server.IsValid() {
		// RFC 2131 requires option 54 in OFFER, ACK and NAK; fall back on
		// siaddr for servers that forget it, to have something to log.
		server, _ = ipToAddr4(p.ServerIPAddr)
	}
	switch p.MessageType() {
	case dhcpv4.MessageTypeOffer:
		a, err := leasable(p.YourIPAddr)
		if err != nil {
			return nil, true, fmt.Errorf("%w: offer from %s: %w", ErrMalformedReply, server, err)
		}
		return OfferReceived{Addr: a, Server: server}, true, nil
	case dhcpv4.MessageTypeAck:
		a, err := leasable(p.YourIPAddr)
		if err != nil {
			return nil, true, fmt.Errorf("%w: ACK from %s: %w", ErrMalformedReply, server, err)
		}
		lease, err := seconds(p.Options.Get(dhcpv4.OptionIPAddressLeaseTime))
		if err != nil || lease == 0 {
			// RFC 2131 section 4.3.1: an ACK to a Request carries the lease
			// time. Guessing one could let the VIP expire unnoticed.
			return nil, true, fmt.Errorf("%w: ACK from %s for %s has no usable lease time (option 51)", ErrMalformedReply, server, a)
		}
		t1, _ := seconds(p.Options.Get(dhcpv4.OptionRenewTimeValue))
		t2, _ := seconds(p.Options.Get(dhcpv4.OptionRebindingTimeValue))
		return AckReceived{Addr: a, PrefixLen: maskLen(p.Options.Get(dhcpv4.OptionSubnetMask)),
			Server: server, Lease: lease, T1: t1, T2: t2}, true, nil
	case dhcpv4.MessageTypeNak:
		return NakReceived{Server: server, Message: p.Message()}, true, nil
	default:
		return nil, false, nil
	}
}

// clusterAck reports whether p, a reply to another transaction with this
// cluster's identity, is an ACK for want, the VIP. Every node asks for the
// lease with the same identity, and when two take the VIP over for a moment
// both ask: the ACK the one that keeps it sees may answer the other's
// request, its own going unanswered. That ACK is the cluster's lease all
// the same. Dropping it left the holder in CI with no lease of its own
// while the server was down: no T2 warning, and no report of the lease's
// end. Offers and NAKs to other transactions stay someone else's.
func clusterAck(p *dhcpv4.DHCPv4, want netip.Addr) bool {
	if !want.IsValid() || p.MessageType() != dhcpv4.MessageTypeAck {
		return false
	}
	a, ok := ipToAddr4(p.YourIPAddr)
	return ok && a == want
}

func sameMAC(chaddr net.HardwareAddr, mac net.HardwareAddr) bool {
	return len(chaddr) >= len(mac) && string(chaddr[:len(mac)]) == string(mac)
}

// leasable checks yiaddr: an address a VIP can be, not 0.0.0.0, broadcast,
// multicast or loopback.
func leasable(ip net.IP) (netip.Addr, error) {
	a, ok := ipToAddr4(ip)
	switch {
	case !ok:
		return netip.Addr{}, fmt.Errorf("yiaddr %v is not IPv4", ip)
	case a.IsUnspecified() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) ||
		a.IsMulticast() || a.IsLoopback():
		return netip.Addr{}, fmt.Errorf("yiaddr %v is not a unicast address", a)
	}
	return a, nil
}

func ipToAddr4(ip net.IP) (netip.Addr, bool) {
	ip4 := ip.To4()
	if ip4 == nil {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte(ip4)), true
}

func addr4(b []byte) (netip.Addr, bool) {
	if len(b) != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte(b)), true
}

// seconds decodes a 32-bit time option; 0xffffffff is InfiniteLease.
func seconds(b []byte) (time.Duration, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("time option of %d bytes, want 4", len(b))
	}
	v := binary.BigEndian.Uint32(b)
	if v == 0xffffffff {
		return InfiniteLease, nil
	}
	return time.Duration(v) * time.Second, nil
}

// maskLen is the length of a contiguous subnet mask option, -1 when absent,
// zero or not contiguous.
func maskLen(b []byte) int {
	if len(b) != 4 {
		return -1
	}
	v := binary.BigEndian.Uint32(b)
	n := bits.LeadingZeros32(^v) // the leading ones of v
	if n == 0 || v<<n != 0 {
		return -1
	}
	return n
}
