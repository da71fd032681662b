package main

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hapod/hapod/internal/cli/clitest"
)

// buildHapod builds the binary under test.
func buildHapod(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hapod")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// runHapod runs the binary and checks that it failed the way a bad command
// line must: exit status 1, stdout empty, exactly one line on stderr. It
// returns that line.
func runHapod(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("%q: exit %v, want status 1", args, err)
	}
	if stdout.Len() > 0 {
		t.Errorf("%q: stdout %q, want nothing", args, stdout.String())
	}
	lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
	if len(lines) != 1 || !strings.HasSuffix(stderr.String(), "\n") {
		t.Errorf("%q: stderr %q, want exactly one line", args, stderr.String())
	}
	return lines[0]
}

// TestExitStatusAndOneLine runs the real binary: bad input exits 1 with
// exactly one line on stderr naming what is wrong, and writes nothing.
func TestExitStatusAndOneLine(t *testing.T) {
	bin := buildHapod(t)
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
		if line := runHapod(t, bin, tc.args...); !strings.HasPrefix(line, tc.want) {
			t.Errorf("%q: stderr %q, want it to start %q", tc.args, line, tc.want)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("bad input created %s", dir)
	}
	if out, err := exec.Command(bin, "version").Output(); err != nil || !strings.HasPrefix(string(out), "hapod ") {
		t.Errorf("version: %q %v", out, err)
	}
}

// hostInterface returns one of this host's interfaces that is up, not
// loopback and has an IPv4 address: the preflight checks of init want the
// VIP's interface to have an address of its own. Nothing is sent on it.
func hostInterface(t *testing.T) string {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifi := range ifaces {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				return ifi.Name
			}
		}
	}
	t.Skip("no interface with an IPv4 address to run init's host checks against")
	return ""
}

// TestBadInputTable runs internal/cli's whole bad-input table through the
// binary: exit status 1, one stderr line ("hapod: " and the error), no
// stdout, no file created or changed. Cases that depend on the in-process
// test's fake host (its addresses, its DHCP server) are skipped;
// --interface names one of this host's own, so that no case depends on its
// routes, and --image is given because the binary is not a release build.
func TestBadInputTable(t *testing.T) {
	bin := buildHapod(t)
	ifname := hostInterface(t)
	tmp := t.TempDir()
	cases, err := clitest.BadInput(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			if tc.FakeHost {
				t.Skip("depends on the in-process test's fake host")
			}
			dir := filepath.Join(t.TempDir(), "manifests")
			// A plain go build is not a release: it needs --image.
			args := append([]string{"init", "--manifest-dir", dir, "--interface", ifname, "--image", "localhost/hapod:test"}, tc.Args...)
			for i, a := range args {
				if a == "--manifest-dir" {
					dir = args[i+1]
				}
			}
			before, err := clitest.Snapshot(tmp)
			if err != nil {
				t.Fatal(err)
			}
			line := runHapod(t, bin, args...)
			if exact, ok := strings.CutPrefix(tc.Want, "="); ok {
				if line != "hapod: "+exact {
					t.Errorf("stderr:\n%s\nwant:\nhapod: %s", line, exact)
				}
			} else if !strings.HasPrefix(line, "hapod: ") || !strings.Contains(line, tc.Want) {
				t.Errorf("stderr %q, want \"hapod: \" and %q", line, tc.Want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				t.Errorf("manifest dir %s was created", dir)
			}
			if after, err := clitest.Snapshot(tmp); err != nil || !maps.Equal(before, after) {
				t.Errorf("files changed (%v):\nbefore %v\nafter  %v", err, before, after)
			}
		})
	}
}

// TestConcurrentInitProcesses: eight `hapod init` processes started at
// once with different settings: exactly one creates the manifest, every
// other one exits 1 showing the difference, and the file is the winner's.
// Issue 19, item 8.
func TestConcurrentInitProcesses(t *testing.T) {
	bin := buildHapod(t)
	ifname := hostInterface(t)
	const runs = 8
	for round := range 5 {
		dir := filepath.Join(t.TempDir(), "manifests")
		cmds := make([]*exec.Cmd, runs)
		outs := make([]*strings.Builder, runs)
		for i := range runs {
			cmds[i] = exec.Command(bin, "init", "--manifest-dir", dir, "--interface", ifname, "--vip", "198.18.0.10/24",
				"--backend", "198.18.0.11:6443", "--priority", fmt.Sprint(100+i), "--image", "example.test/hapod:test")
			outs[i] = &strings.Builder{}
			cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
		}
		for _, c := range cmds {
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
		}
		winner := -1
		for i, c := range cmds {
			err := c.Wait()
			out := outs[i].String()
			switch {
			case err == nil && strings.Contains(out, "hapod: created "):
				if winner >= 0 {
					t.Fatalf("round %d: processes %d and %d both created the manifest", round, winner, i)
				}
				winner = i
			case err != nil && strings.Contains(out, "differs from what these settings produce") && strings.Contains(out, fmt.Sprintf("+    - --priority=%d", 100+i)):
			default:
				t.Fatalf("round %d: process %d: %v\n%s", round, i, err, out)
			}
		}
		got, err := os.ReadFile(filepath.Join(dir, "hapod.yaml"))
		if err != nil || winner < 0 || !strings.Contains(string(got), fmt.Sprintf("- --priority=%d\n", 100+winner)) {
			t.Fatalf("round %d: winner %d, manifest %v:\n%s", round, winner, err, got)
		}
	}
}
