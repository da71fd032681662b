// Package vrrp speaks VRRP (RFC 9568 version 3 for IPv4 and IPv6, RFC 3768
// version 2 for IPv4) so that exactly one hapod node holds the virtual IP.
//
// The package has three layers:
//
//   - the wire layer: Packet, its codec and Conn, a raw IP socket;
//   - Machine, the pure protocol state machine: Step(now, input) returns
//     actions (send an advert, take or release the VIP, a state transition
//     with a reason) and NextDeadline says when to call it next. It never
//     reads the clock, so every timing rule is tested with synthetic time;
//   - core, the rest of what a router decides, as pure as the Machine: it
//     feeds the Machine, decides when to call the VIP (retries, the budget
//     of re-announcements) and keeps the peers and the status;
//     testdata/sim holds transcripts of several cores on a simulated LAN;
//   - Speaker, the thin driver: its loop waits for an advert, a timer, a
//     link change, a priority adjustment or the end, hands it to the core
//     and performs what the core asks on a Conn and a VIP.
//
// Nothing here needs the Kubernetes API: the VIP must come up from the
// network alone, before any API server exists.
package vrrp
