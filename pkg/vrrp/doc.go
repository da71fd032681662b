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
//   - Speaker, the thin driver: it feeds received adverts, timer expiry, link
//     changes and priority adjustments into the Machine, performs the actions
//     on a Conn and a VIP, and hands the VIP over on shutdown without a gap.
//
// Nothing here needs the Kubernetes API: the VIP must come up from the
// network alone, before any API server exists.
package vrrp
