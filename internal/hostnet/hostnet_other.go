//go:build !linux

package hostnet

import (
	"errors"
	"net/netip"
)

var errUnimplemented = errors.New("hostnet: only implemented on Linux")

// RouteInterface returns the interface the kernel would use to reach addr.
func RouteInterface(netip.Addr) (string, error) { return "", errUnimplemented }

// Addrs returns every address configured on the host's interfaces.
func Addrs() ([]Addr, error) { return nil, errUnimplemented }

// DefaultInterface returns the interface of the IPv4 default route.
func DefaultInterface() (string, error) { return "", errUnimplemented }

// RemoveAddr takes a off its interface.
func RemoveAddr(Addr) error { return errUnimplemented }

// Listening reports whether a process listens on a TCP port of addr.
func Listening(netip.Addr) (bool, error) { return false, errUnimplemented }
