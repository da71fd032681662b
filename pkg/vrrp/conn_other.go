//go:build !linux

package vrrp

import (
	"fmt"
	"runtime"
)

// Dial is implemented on Linux only; elsewhere it returns ErrUnimplemented.
func Dial(cfg ConnConfig) (*RawConn, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w (GOOS=%s)", ErrUnimplemented, runtime.GOOS)
}
