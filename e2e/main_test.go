// Package e2e runs hapod for real: hapod nodes, keepalived, haproxy,
// tshark and podman in network namespaces built by package lab. The tests
// need root and those tools: without one they skip, except under CI (the CI
// environment variable set), where they fail (lab.Unavailable).
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// hapodBin is the static hapod binary built once for all tests.
var hapodBin string

// fakeAPIServerBin imitates kube-apiserver (TLS, /readyz) for the proxy tests.
var fakeAPIServerBin string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		// Every test here needs root (lab.New skips, or fails under CI);
		// nothing to build.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "hapod-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hapodBin = filepath.Join(dir, "hapod")
	fakeAPIServerBin = filepath.Join(dir, "fakeapiserver")
	for bin, pkg := range map[string]string{hapodBin: "./cmd/hapod", fakeAPIServerBin: "./e2e/fakeapiserver"} {
		if err := build(bin, pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles pkg (relative to the module root) statically into bin.
func build(bin, pkg string) error {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v\n%s", pkg, err, out)
	}
	return nil
}
