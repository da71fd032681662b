//go:build !linux

package vip

import (
	"context"
	"net/netip"
)

// New is only implemented on Linux; elsewhere it returns ErrUnimplemented.
func New(cfg Config) (*Manager, error) {
	if _, err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	return nil, ErrUnimplemented
}

// Held is only implemented on Linux; elsewhere it returns ErrUnimplemented.
func Held(ifname string, addr netip.Addr) (bool, error) {
	return false, ErrUnimplemented
}

// WatchLink is only implemented on Linux; elsewhere it returns
// ErrUnimplemented.
func WatchLink(ctx context.Context, ifname string) (<-chan bool, error) {
	return nil, ErrUnimplemented
}
