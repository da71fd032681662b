package vrrp

import (
	"fmt"
	"strconv"
)

// DropReason says why a received VRRP packet was discarded. Every receive
// check has its own reason so that each one can be counted and exported as a
// metric: a silent drop is the usual symptom of a misconfigured peer (wrong
// VRID, password or version), and the counter is what tells them apart.
// The zero value is invalid.
type DropReason int

// The drop reasons, in roughly the order the checks run.
const (
	// DropUnknown is the invalid zero value.
	DropUnknown DropReason = iota
	// DropOwn: the packet came from our own source address (a looped-back
	// advert, or another node misconfigured with our address).
	DropOwn
	// DropInterface: the packet arrived on an interface other than the
	// configured one.
	DropInterface
	// DropTTL: the IPv4 TTL or IPv6 hop limit was not 255, so the packet may
	// have been forwarded by a router (RFC 9568 section 7.1).
	DropTTL
	// DropUnknownPeer: in unicast mode, the sender is not a configured peer.
	DropUnknownPeer
	// DropTruncated: the message is shorter than its header or than its
	// address count says.
	DropTruncated
	// DropLength: the message is longer than its address count says.
	DropLength
	// DropVersion: the version is neither 2 nor 3, or not the configured one.
	DropVersion
	// DropType: the type is not 1 (Advertisement), the only type defined.
	DropType
	// DropFamily: the IP addresses are of mixed families, or VRRPv2 was
	// carried over IPv6.
	DropFamily
	// DropAddrCount: the address count is zero.
	DropAddrCount
	// DropChecksum: the checksum does not match.
	DropChecksum
	// DropInterval: the advertisement interval is zero.
	DropInterval
	// DropVRID: the packet is for another virtual router. Normal on a LAN
	// with several virtual routers, so the counter is informational. It is
	// checked first, right after the interface, so that another virtual
	// router's adverts never count as any other reason.
	DropVRID
	// DropAuthType: the VRRPv2 authentication type is unknown or differs
	// from the configured one.
	DropAuthType
	// DropAuth: the VRRPv2 simple password differs from the configured one.
	DropAuth
	// DropIntervalMismatch: a VRRPv2 advert whose interval differs from
	// ours. RFC 3768 section 7.1 says to discard it: v2 routers time out on
	// their own interval, so a mismatch is a misconfiguration that would
	// otherwise end in takeovers. (VRRPv3 backups learn the interval.)
	DropIntervalMismatch
	// DropAddrMismatch: an advert of our VRID that does not list every
	// virtual address we protect (ConnConfig.Addrs). Another virtual
	// router shares our VRID, typically a second cluster on the LAN whose
	// VIP ends in the same byte (the default VRID); obeying it would merge
	// the two and leave one VIP unheld (RFC 9568 section 7.1).
	DropAddrMismatch

	numDropReasons // keep last: sizes the counters
)

var dropNames = [numDropReasons]string{
	DropUnknown:     "unknown",
	DropOwn:         "own",
	DropInterface:   "interface",
	DropTTL:         "ttl",
	DropUnknownPeer: "unknown_peer",
	DropTruncated:   "truncated",
	DropLength:      "length",
	DropVersion:     "version",
	DropType:        "type",
	DropFamily:      "family",
	DropAddrCount:   "addr_count",
	DropChecksum:    "checksum",
	DropInterval:    "interval",
	DropVRID:        "vrid",
	DropAuthType:    "auth_type",
	DropAuth:        "auth",

	DropIntervalMismatch: "interval_mismatch",
	DropAddrMismatch:     "addr_mismatch",
}

// String returns a short snake_case name, suitable as a metric label.
func (r DropReason) String() string {
	if r >= 0 && r < numDropReasons {
		return dropNames[r]
	}
	return "DropReason(" + strconv.Itoa(int(r)) + ")"
}

// DropReasons lists every valid reason (all but DropUnknown), for callers
// that want to export a counter per reason, zeros included.
func DropReasons() []DropReason {
	rs := make([]DropReason, 0, numDropReasons-1)
	for r := DropUnknown + 1; r < numDropReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// Misconfigured reports whether a drop for this reason points at a peer
// configured differently from us (another version, password, interval or
// virtual address, or a sender missing from --peer): what keeps two routers
// from hearing each other and ends in two active ones, or, for another
// virtual router on our VRID, what would merge the two. Other drops are
// normal on a shared LAN (another VRID) or not a peer's fault.
func (r DropReason) Misconfigured() bool {
	switch r {
	case DropVersion, DropAuthType, DropAuth, DropIntervalMismatch, DropUnknownPeer, DropAddrMismatch:
		return true
	}
	return false
}

// DropError is the error Unmarshal returns for a packet that must be
// discarded. Use errors.As to get the Reason.
type DropError struct {
	Reason DropReason
	Detail string
}

// Error names the reason and the detail.
func (e *DropError) Error() string {
	if e.Detail == "" {
		return "vrrp: drop " + e.Reason.String()
	}
	return "vrrp: drop " + e.Reason.String() + ": " + e.Detail
}

func drop(r DropReason, format string, args ...any) *DropError {
	return &DropError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}
