// Package hostnet answers the questions `hapod init` asks about the host's
// network before it writes a manifest: which interface leads to the VIP,
// and which addresses the host already has.
package hostnet

import "net/netip"

// Addr is an address configured on one of the host's interfaces.
type Addr struct {
	Prefix    netip.Prefix
	Interface string
}
