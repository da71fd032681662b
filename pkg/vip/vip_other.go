//go:build !linux

package vip

import "net/netip"

// New is only implemented on Linux; elsewhere it returns ErrUnimplemented.
func New(cfg Config) (*Manager, error) {
	if _, err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	return nil, ErrUnimplemented
}

// NewGroup is only implemented on Linux; elsewhere it returns
// ErrUnimplemented.
func NewGroup(cfg GroupConfig) (*Group, error) {
	if _, _, err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	return nil, ErrUnimplemented
}

// Held is only implemented on Linux; elsewhere it returns ErrUnimplemented.
func Held(ifname string, addr netip.Addr) (bool, error) {
	return false, ErrUnimplemented
}
