//go:build !linux

package dhcpvip

import (
	"context"
	"net"
)

// Link is the macvlan carrying the virtual MAC; Linux only.
type Link struct{}

// OpenLink returns ErrUnimplemented: macvlan is Linux only.
func OpenLink(parent, name string, mac net.HardwareAddr) (*Link, error) {
	return nil, ErrUnimplemented
}

// Name is empty.
func (l *Link) Name() string { return "" }

// Conn is nil.
func (l *Link) Conn() net.PacketConn { return nil }

// Close returns ErrUnimplemented.
func (l *Link) Close() error { return ErrUnimplemented }

// DialKeeper returns ErrUnimplemented: macvlan is Linux only.
func DialKeeper(cfg Config) (*Keeper, error) { return nil, ErrUnimplemented }

// Acquire returns ErrUnimplemented: macvlan is Linux only.
func Acquire(ctx context.Context, cfg Config) (Lease, error) { return Lease{}, ErrUnimplemented }
