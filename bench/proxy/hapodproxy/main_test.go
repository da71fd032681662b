package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestParseRoute(t *testing.T) {
	l, bs, err := parseRoute("127.0.0.1:18001=127.0.0.1:5201,[::1]:5202")
	if err != nil {
		t.Fatal(err)
	}
	if l != netip.MustParseAddrPort("127.0.0.1:18001") {
		t.Errorf("listen = %v", l)
	}
	if want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:5201"), netip.MustParseAddrPort("[::1]:5202")}; !reflect.DeepEqual(bs, want) {
		t.Errorf("backends = %v, want %v", bs, want)
	}
	for _, bad := range []string{"", "127.0.0.1:18001", "127.0.0.1:18001=", "localhost:1=127.0.0.1:2", "127.0.0.1:1=127.0.0.1:2,", "127.0.0.1:1=127.0.0.1"} {
		if _, _, err := parseRoute(bad); err == nil {
			t.Errorf("parseRoute(%q) accepted it", bad)
		}
	}
}

func TestStartProfiles(t *testing.T) {
	dir := t.TempDir()
	cpu, tr := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "trace.out")
	stop, err := startProfiles(cpu, tr)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	for _, f := range []string{cpu, tr} {
		st, err := os.Stat(f)
		if err != nil {
			t.Error(err)
		} else if st.Size() == 0 {
			t.Errorf("%s is empty", f)
		}
	}
	// A file that cannot be created fails the start and stops what began.
	if _, err := startProfiles(filepath.Join(dir, "cpu2.pprof"), filepath.Join(dir, "no", "trace.out")); err == nil {
		t.Error("startProfiles with an unwritable trace file succeeded")
	}
	stop, err = startProfiles(filepath.Join(dir, "cpu3.pprof"), "")
	if err != nil {
		t.Fatalf("the CPU profile was left running by the failed start: %v", err)
	}
	stop()
}
