package cli

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hapod/hapod/internal/hostnet"
	"github.com/hapod/hapod/internal/instance"
	"github.com/hapod/hapod/pkg/manifest"
)

func TestPlanReset(t *testing.T) {
	vip := netip.MustParseAddr("198.18.0.10")
	on := &hostnet.Addr{Prefix: netip.MustParsePrefix("198.18.0.10/24"), Interface: "eth0", Secondary: true}
	on2 := []hostnet.Addr{*on}
	const path = "/etc/kubernetes/manifests/hapod.yaml"
	for _, tc := range []struct {
		name string
		s    resetState
		want []resetAction
	}{
		{"nothing", resetState{Instances: []resetInstance{{VIP: vip}}}, nil},
		{"holder: manifest first, then the handover; its VIP stays until then",
			resetState{Manifest: path, Instances: []resetInstance{{VIP: vip, Running: true, PID: 7, On: on2}}},
			[]resetAction{removeManifest{Path: path}, requestHandover{VIP: vip, PID: 7}}},
		{"backup", resetState{Manifest: path, Instances: []resetInstance{{VIP: vip, Running: true}}},
			[]resetAction{removeManifest{Path: path}, requestHandover{VIP: vip}}},
		{"killed holder left its VIP", resetState{Instances: []resetInstance{{VIP: vip, On: on2}}},
			[]resetAction{removeStaleVIP{Addr: *on}}},
		{"older hapod without the lock: kubelet stops it", resetState{Manifest: path, Instances: []resetInstance{{VIP: vip, Listening: true, On: on2}}},
			[]resetAction{removeManifest{Path: path}, awaitExit{VIP: vip}}},
		{"manifest only", resetState{Manifest: path}, []resetAction{removeManifest{Path: path}}},
		// kubeadm reset SIGKILLs hapod: its VIP and its redirect table stay.
		{"killed holder left its VIP and its redirect", resetState{Instances: []resetInstance{{VIP: vip, On: on2, Redirect: true}}},
			[]resetAction{removeStaleVIP{Addr: *on}, removeStaleRedirect{VIP: vip}}},
		{"killed backup left its redirect", resetState{Instances: []resetInstance{{VIP: vip, Redirect: true}}},
			[]resetAction{removeStaleRedirect{VIP: vip}}},
		{"a running hapod keeps its redirect until it exits", resetState{Instances: []resetInstance{{VIP: vip, Running: true, Redirect: true}}},
			[]resetAction{requestHandover{VIP: vip}}},
	} {
		if got := planReset(tc.s); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %#v\nwant %#v", tc.name, got, tc.want)
		}
	}
}

// resetHost is a fake host with a hapod running for 198.18.0.10 that holds
// the VIP on eth0 until it is asked to hand over.
func resetHost(t *testing.T) (Host, *bool) {
	vip := netip.MustParseAddr("198.18.0.10")
	stale := hostnet.Addr{Prefix: netip.MustParsePrefix("198.18.0.10/24"), Interface: "eth0", Secondary: true}
	running, held := true, true
	host := fakeHost()
	addrs := host.Addrs
	host.Addrs = func() ([]hostnet.Addr, error) {
		a, err := addrs()
		if held {
			a = append(a, stale)
		}
		return a, err
	}
	host.Instance = func(a netip.Addr) (int, error) {
		if running && a == vip {
			return 4242, nil
		}
		return 0, instance.ErrNotRunning
	}
	host.Instances = func() ([]netip.Addr, error) {
		if running {
			return []netip.Addr{vip}, nil
		}
		return nil, nil
	}
	host.Handover = func(_ context.Context, a netip.Addr) (string, string, error) {
		if !running || a != vip {
			return "", "", instance.ErrNotRunning
		}
		running, held = false, false
		return "active", "handed the VIP over to 198.18.0.12 in 80ms", nil
	}
	host.RemoveAddr = func(a hostnet.Addr) error {
		if a != stale {
			t.Errorf("RemoveAddr(%v), want %v", a, stale)
		}
		held = false
		return nil
	}
	return host, &running
}

func TestResetHandsOverThenNothingToDo(t *testing.T) {
	dir := t.TempDir()
	path := writeManifestFor(t, append([]string{"join", "--vip", "198.18.0.10/24"}, backends...))
	os.Rename(path, filepath.Join(dir, manifest.FileName))
	host, _ := resetHost(t)

	r := run(t, host, "reset", "--manifest-dir", dir)
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := []string{
		"hapod: removed " + filepath.Join(dir, manifest.FileName) + ": kubelet will not start hapod again",
		"hapod: hapod (pid 4242) for VIP 198.18.0.10 (active) handed the VIP over to 198.18.0.12 in 80ms, and exited after",
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || lines[0] != want[0] || !strings.HasPrefix(lines[1], want[1]) {
		t.Errorf("reset said:\n%s\nwant:\n%s", r.stdout, strings.Join(want, "\n"))
	}
	if _, err := os.Stat(filepath.Join(dir, manifest.FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("manifest still there: %v", err)
	}

	r = run(t, host, "reset", "--manifests-dir", dir)
	if r.err != nil || !strings.HasPrefix(r.stdout, "hapod: nothing to do") {
		t.Errorf("second reset: %v\n%s", r.err, r.stdout)
	}
}

func TestResetRemovesStaleVIP(t *testing.T) {
	host, running := resetHost(t)
	*running = false // SIGKILLed: the VIP stays, the manifest is gone
	r := run(t, host, "reset", "--manifest-dir", t.TempDir(), "--vip", "198.18.0.10/24")
	if r.err != nil || strings.TrimSpace(r.stdout) != "hapod: removed the stale VIP 198.18.0.10/24 from eth0: no hapod was running to release it" {
		t.Errorf("reset: %v\n%s", r.err, r.stdout)
	}
	// Without --vip and without a manifest nothing names the VIP: hapod
	// does not guess which address of the node it was.
	host, running = resetHost(t)
	*running = false
	if r := run(t, host, "reset", "--manifest-dir", t.TempDir()); r.err != nil || !strings.HasPrefix(r.stdout, "hapod: nothing to do") {
		t.Errorf("reset without a VIP to go by: %v\n%s", r.err, r.stdout)
	}
}

// TestResetRemovesStaleRedirect: after a SIGKILL (kubeadm reset without
// hapod reset) the nftables table of the VIP stays too; reset removes it.
func TestResetRemovesStaleRedirect(t *testing.T) {
	host, running := resetHost(t)
	*running = false
	table := true
	host.Redirect = func(vip netip.Addr) (bool, error) { return table && vip == netip.MustParseAddr("198.18.0.10"), nil }
	host.RemoveRedirect = func(netip.Addr) error { table = false; return nil }
	r := run(t, host, "reset", "--manifest-dir", t.TempDir(), "--vip", "198.18.0.10/24")
	want := "hapod: removed the stale VIP 198.18.0.10/24 from eth0: no hapod was running to release it\n" +
		"hapod: removed the nftables table hapod_198_18_0_10 (the redirect of VIP:--port): no hapod was running to remove it\n"
	if r.err != nil || r.stdout != want || table {
		t.Errorf("reset: %v, table left %v\n%s\nwant:\n%s", r.err, table, r.stdout, want)
	}
	// Without CAP_NET_ADMIN (a container) nftables cannot be asked:
	// reset still does the rest and says so, once.
	host, running = resetHost(t)
	*running = false
	host.Redirect = func(netip.Addr) (bool, error) { return false, errors.New("netlink receive: operation not permitted") }
	r = run(t, host, "reset", "--manifest-dir", t.TempDir(), "--vip", "198.18.0.10/24")
	if r.err != nil || !strings.HasPrefix(r.stdout, "hapod: removed the stale VIP") ||
		r.stderr != "hapod: could not check for a redirect table left behind: is there a redirect table for VIP 198.18.0.10: netlink receive: operation not permitted\n" {
		t.Errorf("reset without nftables access: %v\nstdout %q\nstderr %q", r.err, r.stdout, r.stderr)
	}
}

func TestResetBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"reset", "--vip", "nope"}, `--vip "nope": not an IP address`},
		{[]string{"reset", "extra"}, "unexpected arguments: extra"},
		{[]string{"reset", "--timeout", "x"}, "invalid value \"x\" for flag -timeout"},
	} {
		if r := run(t, fakeHost(), tc.args...); r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, r.err, tc.want)
		}
	}
}

// Something that starts hapod again and again (a copy of the manifest in
// a directory kubelet watches) makes reset give up with a line saying so.
func TestResetGivesUpOnARestartingHapod(t *testing.T) {
	host, running := resetHost(t)
	handover := host.Handover
	host.Handover = func(ctx context.Context, vip netip.Addr) (string, string, error) {
		state, outcome, err := handover(ctx, vip)
		*running = true // kubelet starts it again
		return state, outcome, err
	}
	r := run(t, host, "reset", "--manifest-dir", t.TempDir(), "--vip", "198.18.0.10")
	if r.err == nil || !strings.Contains(r.err.Error(), "a hapod for VIP 198.18.0.10 was started again 6 times as it stopped") {
		t.Errorf("reset with hapod restarting: %v\n%s", r.err, r.stdout)
	}
}

// TestResetRemovesEveryStaleVIP: a dual-stack hapod killed by kubeadm
// reset leaves both its VIPs; reset removes each, whether the manifest
// names them or --vip does (issue 22). The redirect table is named
// after the primary VIP.
func TestResetRemovesEveryStaleVIP(t *testing.T) {
	left := []hostnet.Addr{
		{Prefix: netip.MustParsePrefix("198.18.0.10/24"), Interface: "eth0", Secondary: true},
		{Prefix: netip.MustParsePrefix("2001:db8::10/64"), Interface: "eth0", Deprecated: true},
	}
	const (
		v4    = "hapod: removed the stale VIP 198.18.0.10/24 from eth0: no hapod was running to release it\n"
		v6    = "hapod: removed the stale VIP 2001:db8::10/64 from eth0: no hapod was running to release it\n"
		table = "hapod: removed the nftables table hapod_198_18_0_10 (the redirect of VIP:--port): no hapod was running to remove it\n"
	)
	for _, tc := range []struct {
		name     string
		manifest bool
		args     []string
		want     string
	}{
		{"from the manifest", true, nil, v4 + v6 + table},
		// In the order given; the IPv4 VIP is still the primary one.
		{"from --vip", false, []string{"--vip", "2001:db8::10", "--vip", "198.18.0.10/24"}, v6 + v4 + table},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			expect := tc.want
			if tc.manifest {
				path := writeManifestFor(t, append([]string{"join", "--vip", "198.18.0.10/24", "--vip", "2001:db8::10/64"}, backends...))
				os.Rename(path, filepath.Join(dir, manifest.FileName))
				expect = "hapod: removed " + filepath.Join(dir, manifest.FileName) + ": kubelet will not start hapod again\n" + tc.want
			}
			on := slices.Clone(left)
			host := fakeHost()
			addrs := host.Addrs
			host.Addrs = func() ([]hostnet.Addr, error) {
				a, err := addrs()
				return append(a, on...), err
			}
			host.RemoveAddr = func(a hostnet.Addr) error {
				if i := slices.Index(on, a); i >= 0 {
					on = slices.Delete(on, i, i+1)
					return nil
				}
				return fmt.Errorf("RemoveAddr(%v): not there", a)
			}
			nft := true
			host.Redirect = func(vip netip.Addr) (bool, error) { return nft && vip == netip.MustParseAddr("198.18.0.10"), nil }
			host.RemoveRedirect = func(netip.Addr) error { nft = false; return nil }
			r := run(t, host, append([]string{"reset", "--manifest-dir", dir}, tc.args...)...)
			if r.err != nil || r.stdout != expect || len(on) != 0 || nft {
				t.Errorf("reset: %v, left %v, table %v\n%s\nwant:\n%s", r.err, on, nft, r.stdout, expect)
			}
		})
	}
}
