package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hapod/hapod/internal/cri"
	"github.com/hapod/hapod/pkg/manifest"
)

// withVersion runs the rest of the test as a build of version v.
func withVersion(t *testing.T, v string) {
	t.Helper()
	old := Version
	Version = v
	t.Cleanup(func() { Version = old })
}

func TestUntaggedBuildNeedsImage(t *testing.T) {
	for _, v := range []string{"dev", "177bb4b-dirty", "v1.2.3-4-gabcdef0", "v1.2.3-dirty"} {
		t.Run(v, func(t *testing.T) {
			withVersion(t, v)
			if r := run(t, fakeHost(), "version"); r.err != nil || r.stdout != "hapod "+v+" (not a release: built from an untagged or modified tree; init, join and manifest need --image)\n" {
				t.Errorf("version: %q %v", r.stdout, r.err)
			}
			dir := t.TempDir()
			want := "--image: required: hapod " + v + " is not a release build (untagged or modified tree), so no image of its version is published; name the image to run (make image builds localhost/hapod:" + v + ")"
			for _, cmd := range []string{"init", "join", "manifest"} {
				args := append([]string{cmd, "--vip", "198.18.0.10/24"}, backends...)
				if cmd != "manifest" {
					args = append(args, "--manifest-dir", dir)
				}
				r := run(t, fakeHost(), args...)
				if r.err == nil || r.err.Error() != want {
					t.Errorf("%s without --image: %v\nwant: %s", cmd, r.err, want)
				}
				if r.stdout != "" || r.stderr != "" {
					t.Errorf("%s without --image printed %q %q", cmd, r.stdout, r.stderr)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, manifest.FileName)); !os.IsNotExist(err) {
				t.Errorf("a refused init wrote the manifest: %v", err)
			}

			// With --image it works, and the printed join command carries it.
			image := "localhost/hapod:" + v
			r := run(t, fakeHost(), append([]string{"init", "--manifest-dir", dir, "--vip", "198.18.0.10/24", "--image", image}, backends...)...)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if !strings.Contains(r.stdout, "hapod join ") || !strings.Contains(r.stdout, " --image="+image+"\n") {
				t.Errorf("join command lacks --image=%s:\n%s", image, r.stdout)
			}
			if h := run(t, fakeHost(), "init", "--help"); strings.Contains(h.stdout, ImageRepository+":") {
				t.Errorf("init --help of a non-release build shows a default image:\n%s", h.stdout)
			}
		})
	}
}

func TestReleaseBuildDefaultImage(t *testing.T) {
	withVersion(t, "v1.2.0-rc.1")
	r := run(t, fakeHost(), append([]string{"manifest", "--vip", "198.18.0.10/24", "--interface", "eth0"}, backends...)...)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !strings.Contains(r.stdout, "image: ghcr.io/hapod/hapod:v1.2.0-rc.1\n") {
		t.Errorf("manifest of release v1.2.0-rc.1 lacks its image:\n%s", r.stdout)
	}
	if v := run(t, fakeHost(), "version"); v.stdout != "hapod v1.2.0-rc.1\n" {
		t.Errorf("version: %q", v.stdout)
	}
}

// TestImageCheck: init and join ask the runtime for the image before
// writing; what they say, and when they stop, for each answer.
func TestImageCheck(t *testing.T) {
	const sock = "unix:///run/test/containerd.sock"
	const ghcr = "ghcr.io/hapod/hapod:v1.2.3"
	noSocket := fmt.Errorf("%w at %s: stat: no such file", cri.ErrNoSocket, sock)
	for _, tc := range []struct {
		name    string
		image   string
		flags   []string
		present bool
		err     error
		wantErr string // the error; "" : success, with note on stderr
		note    string
	}{
		{name: "present", image: ghcr, present: true,
			note: "hapod: image " + ghcr + " is on this node (" + sock + ")\n"},
		{name: "absent, pullable", image: ghcr,
			note: "hapod: image " + ghcr + " is not on this node yet (" + sock + "): kubelet will pull it from ghcr.io when it starts the pod; without access to that registry, import it first: ctr -n k8s.io images import hapod-image-v1.2.3.oci.tar\n"},
		{name: "absent, offline", image: ghcr, flags: []string{"--offline"},
			wantErr: "--image " + ghcr + ": not on this node (" + sock + ") and kubelet cannot pull it (--offline): import it first: ctr -n k8s.io images import hapod-image-v1.2.3.oci.tar (or --force)"},
		{name: "absent, offline, force", image: ghcr, flags: []string{"--offline", "--force"},
			note: "hapod: warning: image " + ghcr + " is not on this node (" + sock + ") and kubelet cannot pull it (--offline): the pod will not start until it is imported: ctr -n k8s.io images import hapod-image-v1.2.3.oci.tar\n"},
		{name: "absent, localhost image", image: "localhost/hapod:v1.2.3-4-gabcdef0",
			wantErr: "--image localhost/hapod:v1.2.3-4-gabcdef0: not on this node (" + sock + ") and kubelet cannot pull it (a localhost/ image exists only where it was built): import it first: ctr -n k8s.io images import hapod-image-v1.2.3-4-gabcdef0.oci.tar (or --force)"},
		{name: "no socket", image: ghcr, flags: []string{"--offline"}, err: noSocket,
			note: "hapod: could not check that image " + ghcr + " is on this node: " + noSocket.Error() + " (install the container runtime before kubeadm; kubelet pulls the image unless it was imported: ctr -n k8s.io images import hapod-image-v1.2.3.oci.tar)\n"},
		{name: "runtime error", image: ghcr, err: errors.New("container runtime at " + sock + ": unavailable"),
			note: "hapod: could not check that image " + ghcr + " is on this node: container runtime at " + sock + ": unavailable\n"},
	} {
		for _, cmd := range []string{"init", "join"} {
			t.Run(tc.name+"/"+cmd, func(t *testing.T) {
				host := fakeHost()
				host.DetectRuntime = func() (string, error) { return "", errors.New("not asked: --cri-socket is given") }
				var asked []string
				host.ImagePresent = func(_ context.Context, endpoint, image string) (bool, error) {
					asked = append(asked, endpoint+" "+image)
					return tc.present, tc.err
				}
				dir := t.TempDir()
				args := append([]string{cmd, "--manifest-dir", dir, "--vip", "198.18.0.10/24", "--image", tc.image, "--cri-socket", sock}, tc.flags...)
				r := run(t, host, append(args, backends...)...)
				if want := []string{sock + " " + tc.image}; !slices.Equal(asked, want) {
					t.Errorf("asked the runtime %q, want %q", asked, want)
				}
				_, statErr := os.Stat(filepath.Join(dir, manifest.FileName))
				if tc.wantErr != "" {
					if r.err == nil || r.err.Error() != tc.wantErr {
						t.Errorf("error:\n%v\nwant:\n%s", r.err, tc.wantErr)
					}
					if r.stdout != "" || r.stderr != "" || statErr == nil {
						t.Errorf("a stopped run printed %q %q or wrote the manifest (%v)", r.stdout, r.stderr, statErr)
					}
					return
				}
				if r.err != nil || r.stderr != tc.note || statErr != nil {
					t.Errorf("err %v, manifest %v, stderr:\n%q\nwant:\n%q", r.err, statErr, r.stderr, tc.note)
				}
			})
		}
	}
}

// TestImageCheckDetectsSocket: without --cri-socket the runtime is found
// as kubeadm finds it; none found is a note, and manifest asks nothing.
func TestImageCheckDetectsSocket(t *testing.T) {
	host := fakeHost()
	var asked []string
	host.ImagePresent = func(_ context.Context, endpoint, image string) (bool, error) {
		asked = append(asked, endpoint)
		return true, nil
	}
	r := run(t, host, append([]string{"init", "--manifest-dir", t.TempDir(), "--vip", "198.18.0.10/24"}, backends...)...)
	if r.err != nil || !slices.Equal(asked, []string{"unix:///var/run/containerd/containerd.sock"}) {
		t.Errorf("init: %v, asked %q", r.err, asked)
	}
	asked = nil
	host.DetectRuntime = func() (string, error) { return "", fmt.Errorf("%w at a, b", cri.ErrNoSocket) }
	r = run(t, host, append([]string{"init", "--manifest-dir", t.TempDir(), "--vip", "198.18.0.10/24", "--offline"}, backends...)...)
	if r.err != nil || len(asked) != 0 || !strings.Contains(r.stderr, "could not check that image ghcr.io/hapod/hapod:v1.2.3 is on this node: no container runtime socket at a, b") {
		t.Errorf("init without a runtime: %v, asked %q, stderr %q", r.err, asked, r.stderr)
	}
	r = run(t, host, append([]string{"manifest", "--vip", "198.18.0.10/24"}, backends...)...)
	if r.err != nil || len(asked) != 0 || r.stderr != "" {
		t.Errorf("manifest: %v, asked %q, stderr %q", r.err, asked, r.stderr)
	}
}

// TestImageCheckKubeadmSocket: the kubeadm config's criSocket is the
// runtime asked, unless --cri-socket names another.
func TestImageCheckKubeadmSocket(t *testing.T) {
	const crio = "unix:///var/run/crio/crio.sock"
	kcfg := filepath.Join(t.TempDir(), "kubeadm.yaml")
	if err := os.WriteFile(kcfg, []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  criSocket: "+crio+"\n---\n"+
		"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: 198.18.0.10:8443\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	host := fakeHost()
	var asked []string
	host.ImagePresent = func(_ context.Context, endpoint, _ string) (bool, error) {
		asked = append(asked, endpoint)
		return true, nil
	}
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{nil, crio},
		{[]string{"--cri-socket", "unix:///run/other.sock"}, "unix:///run/other.sock"},
	} {
		asked = nil
		args := append([]string{"init", "--manifest-dir", t.TempDir(), "--kubeadm-config", kcfg}, backends...)
		if r := run(t, host, append(args, tc.flags...)...); r.err != nil || !slices.Equal(asked, []string{tc.want}) {
			t.Errorf("%q: %v, asked %q, want %s", tc.flags, r.err, asked, tc.want)
		}
	}
}
