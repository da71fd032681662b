package dhcpvip

import "errors"

// Errors of this package; match them with errors.Is. The ones a Machine
// reports come in Alert actions and from Machine.Problem, wrapped with the
// addresses involved.
var (
	// ErrInvalidConfig wraps every configuration error.
	ErrInvalidConfig = errors.New("dhcpvip: invalid config")
	// ErrNoServer: no DHCP server answered within the bounded wait of Acquire.
	ErrNoServer = errors.New("no DHCP server answered")
	// ErrNak: a server refused the lease (DHCPNAK). While the lease is
	// valid the address is kept; the VIP never changes silently.
	ErrNak = errors.New("DHCP server refused the lease (NAK)")
	// ErrDifferentAddress: a server offered or acknowledged another address
	// than the VIP. The VIP is kept; the other address is not taken.
	ErrDifferentAddress = errors.New("DHCP server answered with a different address")
	// ErrLeaseExpired: the lease ran out without a renewal. The caller
	// decides whether to keep serving the address (hapod keeps the VIP: it
	// has nothing better) but must say so loudly.
	ErrLeaseExpired = errors.New("DHCP lease expired")
	// ErrNoLease: a node that took the VIP over without ever seeing its
	// lease asked for it and no server acknowledged it. The node keeps the
	// VIP and keeps asking, but cannot tell when the lease ends.
	ErrNoLease = errors.New("no DHCP lease known for the VIP")
	// ErrShortLease is a warning: the server grants less than the safe
	// minimum, so a short outage of the server loses the VIP.
	ErrShortLease = errors.New("DHCP lease shorter than the safe minimum")
	// ErrNoReply is a warning: a request went unanswered and is being
	// retransmitted.
	ErrNoReply = errors.New("no reply from a DHCP server")
	// ErrMalformedReply: a reply for this client that can't be used (no
	// lease time, no address, ...). It is dropped.
	ErrMalformedReply = errors.New("malformed DHCP reply")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("dhcpvip: closed")
	// ErrUnimplemented is returned on operating systems other than Linux.
	ErrUnimplemented = errors.New("dhcpvip: not implemented on this operating system")
)
