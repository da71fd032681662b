package lab

import (
	"os"
	"os/exec"
	"strconv"
)

// What the end-to-end tests need from the machine: root, and real tools
// from Debian packages (dnsmasq, keepalived, podman, chromium, ...). On a
// developer's machine a missing one skips the test, so `go test ./...`
// works anywhere. Under CI it fails the test instead: CI installs every
// package (.ci/run), and a run that skipped half the suite must not pass
// while proving nothing.

// InCI reports whether the CI environment variable is set to something
// other than a false value ("", "0", "false"), as CI systems set CI=true.
func InCI() bool {
	v, ok := os.LookupEnv("CI")
	if !ok || v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err != nil || b
}

// Unavailable ends a test that can't run on this machine: it skips it, or
// fails it under CI (InCI). The message says what is missing and how to
// get it.
func Unavailable(t T, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf(format+" (CI is set: a missing prerequisite fails the test instead of skipping it)", args...)
	}
	t.Skipf(format, args...)
}

// RequireRoot ends the test with Unavailable unless it runs as root, which
// network namespaces, raw sockets and macvlans need.
func RequireRoot(t T) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root for network namespaces (run as root, e.g. sudo make e2e)")
	}
}

// Tool returns the path of the command name (a name looked up in PATH, or
// an absolute path) or ends the test with Unavailable, naming the Debian
// package that installs it.
func Tool(t T, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "%s is not installed (Debian package %s: apt-get install %s)", name, debianPackage, debianPackage)
	}
	return path
}
