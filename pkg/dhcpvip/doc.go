// Package dhcpvip leases hapod's virtual IP from a DHCP server, for sites
// where every address comes from DHCP and none can be reserved by hand.
//
// The lease belongs to the cluster, not to a node: every node uses the same
// client identity (Identity: a virtual MAC and a client identifier derived
// from the VRID and the cluster name), so whichever node holds the VIP can
// renew it and the server sees one client keeping one address. Only the
// VRRP active node talks to the server; backups stay silent.
//
// The package is built like pkg/vrrp:
//   - Machine is the pure lease state machine (Init, Selecting, Requesting,
//     Bound, Renewing, Rebinding, Expired). It never reads the clock or
//     touches the network: Step(now, input) returns actions, NextDeadline
//     says when to call it again.
//   - message.go builds the client's messages and decodes the server's
//     replies (pure, fuzzed).
//   - Keeper drives a Machine over a net.PacketConn with an injected clock;
//     Acquire runs one until the first lease, for `hapod init`.
//   - Link (Linux) is the macvlan child of the VIP's interface that carries
//     the virtual MAC, with nclient4's raw broadcast socket on it.
//
// Deliberate departures from RFC 2131, each for the same reason: the lease
// moves between nodes, and the VIP is configured on the parent interface
// (or nowhere yet), never on the macvlan.
//   - ciaddr is always 0 and the broadcast flag always set, so the server
//     broadcasts every reply (RFC 2131 section 4.1). A reply unicast to
//     ciaddr would be ARPed for and delivered to the parent interface's MAC,
//     never to the macvlan the client listens on.
//   - Renewing sends the Request with the server identifier and the
//     requested address (the SELECTING form, addressed to the server that
//     granted the lease), rebinding without the server identifier (the
//     INIT-REBOOT form, which any server that knows the client may answer).
//   - A NAK or an ACK for another address does not drop the address: the
//     VIP never changes silently. Both are reported as errors and the
//     address is kept until the lease really expires.
//   - The lease is never released: a restarting or stopping hapod must not
//     hand the cluster's endpoint to another client.
package dhcpvip
