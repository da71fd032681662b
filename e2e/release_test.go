package e2e

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/manifest"
)

// TestReleaseArtefacts checks what a release ships, built as the release
// workflow builds it: `make release-snapshot` passes its artefacts in
// (HAPOD_DIST, HAPOD_VERSION, HAPOD_IMAGE); otherwise the test runs `make
// image-archive` itself. Both static binaries, SHA256SUMS, the image
// archive's two platforms; then the archive is imported into a throwaway
// containerd, hapod runs from the image with `ctr run` as the README shows
// (no binary on the host), and init/join's image check asks that
// containerd through its CRI socket.
func TestReleaseArtefacts(t *testing.T) {
	for _, tool := range []string{"podman", "containerd", "ctr", "runc", "file", "sha256sum"} {
		pkg := map[string]string{"ctr": "containerd", "sha256sum": "coreutils"}[tool]
		if pkg == "" {
			pkg = tool
		}
		lab.Tool(t, tool, pkg)
	}
	l := lab.New(t, 1)
	node := l.Nodes[0]
	dist, version, image := os.Getenv("HAPOD_DIST"), os.Getenv("HAPOD_VERSION"), os.Getenv("HAPOD_IMAGE")
	if dist == "" {
		_, file, _, _ := runtime.Caller(0)
		dist, version = t.TempDir(), "e2e-"+l.ID
		image = "localhost/hapod:" + version
		cmd := exec.Command("make", "-C", filepath.Dir(filepath.Dir(file)), "image-archive",
			"DIST="+dist, "VERSION="+version, "IMAGE="+image, "IMAGE_STORE="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make image-archive: %v\n%s", err, out)
		}
		t.Cleanup(func() { exec.Command("podman", "rmi", "-f", image).Run() })
	}
	archive := filepath.Join(dist, "hapod-image-"+version+".oci.tar")

	t.Run("binaries", func(t *testing.T) {
		for arch, want := range map[string]string{"amd64": "x86-64", "arm64": "ARM aarch64"} {
			bin := filepath.Join(dist, "hapod-linux-"+arch)
			out, err := exec.Command("file", "-b", bin).Output()
			if err != nil || !strings.Contains(string(out), want) || !strings.Contains(string(out), "statically linked") {
				t.Errorf("file %s: %v %s; want a static %s executable", bin, err, out, want)
			}
		}
		out, err := exec.Command(filepath.Join(dist, "hapod-linux-"+runtime.GOARCH), "version").Output()
		if err != nil || !strings.HasPrefix(string(out), "hapod "+version+" ") && string(out) != "hapod "+version+"\n" {
			t.Errorf("version: %v %q, want hapod %s", err, out, version)
		}
		cmd := exec.Command("sha256sum", "--check", "--strict", "SHA256SUMS")
		cmd.Dir = dist
		out, err = cmd.CombinedOutput()
		if err != nil || strings.Count(string(out), ": OK\n") != 3 || !strings.Contains(string(out), filepath.Base(archive)+": OK") {
			t.Errorf("sha256sum --check: %v\n%s\nwant both binaries and the archive OK", err, out)
		}
	})

	t.Run("archive platforms", func(t *testing.T) {
		name, platforms := archiveIndex(t, archive)
		if name != image {
			t.Errorf("archive names its image %q, want %q", name, image)
		}
		slices.Sort(platforms)
		if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(platforms, want) {
			t.Errorf("image index platforms %q, want %q", platforms, want)
		}
	})

	ctd := node.StartContainerd(t)
	ctr := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		out, err := ctd.Ctr(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	start := time.Now()
	ctr("images", "import", archive)
	t.Logf("ctr -n k8s.io images import of %s (%d bytes): %v", filepath.Base(archive), fileSize(t, archive), time.Since(start).Round(time.Millisecond))
	if ls := ctr("images", "ls", "name=="+image); !strings.Contains(ls, "linux/amd64,linux/arm64") {
		t.Fatalf("imported image lacks its platforms:\n%s", ls)
	}

	// hapod from the image, as the README runs it: host network, the
	// node's /etc/kubernetes and the runtime's socket bind-mounted.
	etc := t.TempDir()
	vip := l.VIP4Prefix(0)
	backend := netip.AddrPortFrom(node.IPv4, 6443).String()
	runImage := func(id string, args ...string) string {
		t.Helper()
		return ctr(append([]string{"run", "--rm", "--net-host",
			"--mount", "type=bind,src=" + etc + ",dst=/etc/kubernetes,options=rbind:rw",
			"--mount", "type=bind,src=" + ctd.Socket + ",dst=/var/run/containerd/containerd.sock,options=bind:rw",
			image, id + "-" + l.ID, "/hapod"}, args...)...)
	}
	if out := runImage("version", "version"); !strings.HasPrefix(out, "hapod "+version) {
		t.Errorf("hapod version in the image: %q", out)
	}
	if out := runImage("manifest", "manifest", "--vip="+vip.String(), "--backend="+backend, "--image="+image); !strings.Contains(out, "kind: Pod") || !strings.Contains(out, "--interface="+node.Iface) {
		t.Errorf("hapod manifest in the image:\n%s", out)
	}
	out := runImage("init", "init", "--vip="+vip.String(), "--backend="+backend, "--image="+image, "--offline")
	if !strings.Contains(out, "image "+image+" is on this node (unix:///var/run/containerd/containerd.sock)") {
		t.Errorf("hapod init in the image did not find its own image:\n%s", out)
	}
	if data, err := os.ReadFile(filepath.Join(etc, "manifests", manifest.FileName)); err != nil || !strings.Contains(string(data), "image: "+image) {
		t.Errorf("hapod init in the image wrote no manifest: %v\n%s", err, data)
	}

	// The image check of the host's binary against this containerd.
	check := func(img string, extra ...string) (string, error) {
		args := append([]string{"join", "--vip=" + vip.String(), "--backend=" + backend, "--interface=" + node.Iface,
			"--image=" + img, "--manifest-dir=" + t.TempDir(), "--cri-socket=unix://" + ctd.Socket}, extra...)
		out, err := node.Command(t.Context(), hapodBin, args...).CombinedOutput()
		return string(out), err
	}
	t.Run("image present", func(t *testing.T) {
		out, err := check(image, "--offline")
		if err != nil || !strings.Contains(out, "hapod: image "+image+" is on this node (unix://"+ctd.Socket+")\n") {
			t.Errorf("%v\n%s", err, out)
		}
	})
	t.Run("image absent, offline", func(t *testing.T) {
		out, err := check(image+"-absent", "--offline")
		var ee *exec.ExitError
		want := "hapod: --image " + image + "-absent: not on this node (unix://" + ctd.Socket + ") and kubelet cannot pull it (--offline): import it first: ctr -n k8s.io images import hapod-image-" + version + "-absent.oci.tar (or --force)\n"
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || out != want {
			t.Errorf("%v\n%q\nwant exit 1 and\n%q", err, out, want)
		}
	})
	t.Run("image absent, pullable", func(t *testing.T) {
		out, err := check("ghcr.io/hapod/hapod:v0.0.1")
		if err != nil || !strings.Contains(out, "kubelet will pull it from ghcr.io when it starts the pod") {
			t.Errorf("%v\n%s", err, out)
		}
	})
	t.Run("no socket", func(t *testing.T) {
		out, err := check(image, "--offline", "--cri-socket=unix://"+filepath.Join(t.TempDir(), "none.sock"))
		if err != nil || !strings.Contains(out, "hapod: could not check that image "+image+" is on this node: no container runtime socket at unix://") {
			t.Errorf("%v\n%s", err, out)
		}
	})
}

// archiveIndex reads an OCI archive's index.json and the image index it
// points to: the image's name and its platforms.
func archiveIndex(t *testing.T, path string) (string, []string) {
	t.Helper()
	files := map[string][]byte{}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Size < 1<<20 { // index.json and manifests, not layers
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
		}
	}
	type descriptor struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Annotations map[string]string `json:"annotations"`
		Platform    *struct {
			OS           string `json:"os"`
			Architecture string `json:"architecture"`
		} `json:"platform"`
	}
	var top, list struct {
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &top); err != nil || len(top.Manifests) != 1 {
		t.Fatalf("index.json: %v, %d entries, want one\n%s", err, len(top.Manifests), files["index.json"])
	}
	d := top.Manifests[0]
	if d.MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("index.json points at %s, want an image index", d.MediaType)
	}
	blob := "blobs/" + strings.Replace(d.Digest, ":", "/", 1)
	if err := json.Unmarshal(files[blob], &list); err != nil {
		t.Fatalf("%s: %v", blob, err)
	}
	var platforms []string
	for _, m := range list.Manifests {
		if m.Platform != nil {
			platforms = append(platforms, m.Platform.OS+"/"+m.Platform.Architecture)
		}
	}
	return d.Annotations["org.opencontainers.image.ref.name"], platforms
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
