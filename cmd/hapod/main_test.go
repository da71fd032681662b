package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExitStatusAndOneLine runs the real binary: bad input exits 1 with
// exactly one line on stderr naming what is wrong, and writes nothing.
func TestExitStatusAndOneLine(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hapod")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "manifests")
	for _, tc := range []struct {
		args []string
		want string // stderr's one line starts with this
	}{
		{[]string{"init", "--manifest-dir", dir, "--vip", "198.18.0.300", "--backend", "198.18.0.11:6443"}, "hapod: --vip 198.18.0.300: not an IP address"},
		{[]string{"init", "--manifest-dir", dir, "--vip", "198.18.0.10", "--backend", "198.18.0.11:6443", "--vrid", "256"}, "hapod: --vrid 256:"},
		{[]string{"init", "--manifest-dir", dir, "--vipp", "x"}, "hapod: flag provided but not defined: -vipp"},
		{[]string{"nosuchcommand"}, "hapod: unknown command"},
		{[]string{"run", "--vip", "198.18.0.10"}, "hapod: --backend: at least one"},
	} {
		cmd := exec.Command(bin, tc.args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("%q: exit %v, want status 1", tc.args, err)
		}
		lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], tc.want) {
			t.Errorf("%q: stderr %q, want one line starting %q", tc.args, stderr.String(), tc.want)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("bad input created %s", dir)
	}
	if out, err := exec.Command(bin, "version").Output(); err != nil || !strings.HasPrefix(string(out), "hapod ") {
		t.Errorf("version: %q %v", out, err)
	}
}
