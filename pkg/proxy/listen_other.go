//go:build !linux

package proxy

import (
	"errors"
	"net"
	"net/netip"
)

// errUnimplemented: hapod's proxy runs on Linux only.
var errUnimplemented = errors.New("proxy: unimplemented on this OS")

func listen(netip.AddrPort) (*net.TCPListener, error) { return nil, errUnimplemented }

// RaiseNoFile is Linux-only; elsewhere it returns an error.
func RaiseNoFile() (uint64, error) { return 0, errUnimplemented }

func noFileLimit() (uint64, error) { return 0, errUnimplemented }
