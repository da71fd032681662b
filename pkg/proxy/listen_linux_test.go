package proxy

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestRaiseNoFile lowers the soft open-file limit a little, raises it
// with RaiseNoFile and restores what it found, so no other test sees a
// different limit.
func TestRaiseNoFile(t *testing.T) {
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
			t.Errorf("restore RLIMIT_NOFILE %+v: %v", orig, err)
		}
	})
	if orig.Max < 1024 {
		t.Skipf("hard open-file limit %d: too low to lower safely", orig.Max)
	}
	// Far above the descriptors this test binary holds, below the hard limit.
	low := unix.Rlimit{Cur: orig.Max - 16, Max: orig.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	got, err := RaiseNoFile()
	if err != nil {
		t.Fatal(err)
	}
	var now unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &now); err != nil {
		t.Fatal(err)
	}
	if got != orig.Max || now.Cur != orig.Max || now.Max != orig.Max {
		t.Errorf("RaiseNoFile = %d, limit now %d/%d; want the hard limit %d", got, now.Cur, now.Max, orig.Max)
	}
	// Already at the hard limit: nothing to do, same answer.
	if got, err := RaiseNoFile(); err != nil || got != orig.Max {
		t.Errorf("second RaiseNoFile = %d, %v; want %d", got, err, orig.Max)
	}
}
