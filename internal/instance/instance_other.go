//go:build !linux

package instance

import (
	"context"
	"errors"
	"net/netip"
)

var errUnimplemented = errors.New("instance: abstract unix sockets need Linux")

// Lock is the VIP's lock, held by one `hapod run`.
type Lock struct{}

// Acquire takes vip's lock.
func Acquire(netip.Addr) (*Lock, error) { return nil, errUnimplemented }

// Serve answers requests in the background until Release.
func (*Lock) Serve(func() string) {}

// Release tells handover requesters the outcome and frees the lock.
func (*Lock) Release(string) {}

// Conn is a connection to the running instance of a VIP.
type Conn struct {
	// VIP is the instance's VIP.
	VIP netip.Addr
	// PID is its process ID as this process sees it.
	PID int
}

// Dial connects to vip's running instance.
func Dial(netip.Addr) (*Conn, error) { return nil, errUnimplemented }

// Close closes the connection.
func (*Conn) Close() error { return nil }

// Handover asks the instance to hand its VIP over and exit.
func (*Conn) Handover(context.Context) (string, string, error) {
	return "", "", errUnimplemented
}

// WaitGone waits until no instance holds vip's lock.
func WaitGone(context.Context, netip.Addr) error { return errUnimplemented }

// List returns the VIPs of the hapod instances running on this host.
func List() ([]netip.Addr, error) { return nil, errUnimplemented }
