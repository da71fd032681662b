package proxy

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// RaiseNoFile raises the soft RLIMIT_NOFILE to the hard limit and returns
// the new soft limit. Go already does this at start-up (and restores the
// original for child processes); calling it makes the limit explicit and
// reportable. Each relayed connection costs two descriptors.
func RaiseNoFile() (uint64, error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("getrlimit nofile: %w", err)
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
			return 0, fmt.Errorf("setrlimit nofile to %d: %w", r.Max, err)
		}
	}
	return r.Cur, nil
}

func noFileLimit() (uint64, error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	return r.Cur, nil
}
