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

// NewKeeper is only implemented on Linux; elsewhere it returns
// ErrUnimplemented.
func NewKeeper(cfg KeeperConfig) (*Keeper, error) {
	if _, err := cfg.Config.withDefaults(); err != nil {
		return nil, err
	}
	return nil, ErrUnimplemented
}

// Held is only implemented on Linux; elsewhere it returns ErrUnimplemented.
func Held(ifname string, addr netip.Addr) (bool, error) {
	return false, ErrUnimplemented
}
