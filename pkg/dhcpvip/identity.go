package dhcpvip

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net"
)

// Identity is the DHCP client identity of one cluster's VIP: the same on
// every node, so the server sees one client whichever node renews.
type Identity struct {
	// MAC is the virtual MAC: chaddr of every message and the source MAC of
	// the macvlan that sends them.
	MAC net.HardwareAddr
	// ClientID is option 61, sent in every Discover and Request. Servers
	// key leases on it when present (RFC 2132 section 9.14).
	ClientID []byte
}

// macSalt keeps the hash domain-separated from any other use of SHA-256
// over a cluster name.
const macSalt = "hapod/dhcpvip virtual MAC\x00"

// NewIdentity returns the identity for the VIP of VRRP group vrid in the
// named cluster. See VirtualMAC and ClientID.
func NewIdentity(vrid uint8, cluster string) Identity {
	mac := VirtualMAC(vrid, cluster)
	return Identity{MAC: mac, ClientID: clientIDFor(mac)}
}

// String is the MAC, for logs.
func (id Identity) String() string { return id.MAC.String() }

// VirtualMAC is the stable MAC the VIP's lease is held for:
//
//	02:h0:h1:h2:h3:VRID   with h = SHA-256("hapod/dhcpvip virtual MAC\x00" + cluster)
//
// The first byte 0x02 makes it a locally administered unicast address
// (bit 1 set, bit 0 clear), which no vendor assigns and which can never
// equal the IANA VRRP MAC 00:00:5e:00:01:VRID (universally administered).
// The VRID in the last byte keeps two groups of one cluster apart for
// certain; 32 bits of the cluster name's hash keep two clusters with the
// same VRID apart (a collision needs ~65 000 clusters on one LAN for even
// odds). The same inputs always give the same MAC, on every node, in every
// version of hapod: changing this derivation would orphan every lease.
func VirtualMAC(vrid uint8, cluster string) net.HardwareAddr {
	h := sha256.Sum256([]byte(macSalt + cluster))
	return net.HardwareAddr{0x02, h[0], h[1], h[2], h[3], vrid}
}

// ClientID is option 61 for the VIP of VRRP group vrid in the named
// cluster: hardware type 1 (Ethernet) followed by VirtualMAC, the form
// most clients send (RFC 2132 section 9.14). Deriving it from the MAC keeps
// one identity whether a server keys leases on chaddr or on option 61, and
// lets an administrator reserve the address by the MAC shown in its leases.
func ClientID(vrid uint8, cluster string) []byte {
	return clientIDFor(VirtualMAC(vrid, cluster))
}

func clientIDFor(mac net.HardwareAddr) []byte {
	return append([]byte{1}, mac...)
}

// validate rejects an identity a caller built by hand wrongly.
func (id Identity) validate() error {
	if len(id.MAC) != 6 {
		return fmt.Errorf("%w: MAC %q is not 6 bytes", ErrInvalidConfig, id.MAC)
	}
	if id.MAC[0]&1 != 0 {
		return fmt.Errorf("%w: MAC %s is multicast", ErrInvalidConfig, id.MAC)
	}
	if len(id.ClientID) < 2 {
		return fmt.Errorf("%w: client identifier shorter than 2 bytes (RFC 2132 section 9.14)", ErrInvalidConfig)
	}
	return nil
}

// matchesClientID reports whether a reply's echoed option 61 (RFC 6842) is
// ours; a reply without one matches.
func (id Identity) matchesClientID(echoed []byte) bool {
	return echoed == nil || bytes.Equal(echoed, id.ClientID)
}
