package kubeadm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/hapod/hapod/internal/lab"
)

// The environment `make e2e-kubeadm` passes to the tests.
const (
	envBin      = "HAPOD_K8S_BIN"     // directory of kubeadm, kubelet, kubectl (build-k8s.sh)
	envImages   = "HAPOD_K8S_IMAGES"  // image archive (images.sh)
	envRepo     = "HAPOD_K8S_REPO"    // kubeadm's imageRepository of those images
	envVersion  = "HAPOD_K8S_VERSION" // kubernetesVersion, e.g. v1.37.2
	envImage    = "HAPOD_IMAGE"       // hapod's image in the archive
	envImageNew = "HAPOD_IMAGE_NEW"   // the same image retagged: the upgrade test's "new" version
)

// settings is what a test needs from `make e2e-kubeadm`.
type settings struct {
	binDir, archive, repo, version, image, imageNew string
}

// hapodBin is the hapod binary the tests run inside the nodes, as an
// administrator runs `hapod init` on a host.
var hapodBin string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		os.Exit(m.Run()) // every test needs root and ends in prerequisites
	}
	dir, err := os.MkdirTemp("", "hapod-kubeadm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hapodBin = filepath.Join(dir, "hapod")
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "build", "-trimpath", "-o", hapodBin, "./cmd/hapod")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build hapod: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// prerequisites ends the test with lab.Unavailable (a skip, a failure under
// CI) unless it runs as root with the tools a node needs and the binaries
// and images of `make e2e-kubeadm`.
func prerequisites(t *testing.T) settings {
	t.Helper()
	lab.RequireRoot(t)
	for tool, pkg := range map[string]string{
		"containerd": "containerd", "ctr": "containerd", "runc": "runc",
		"nsenter": "util-linux", "unshare": "util-linux",
		// kubeadm 1.37's preflight requires these (and cp) on a node.
		"mount": "mount", "losetup": "mount",
	} {
		lab.Tool(t, tool, pkg)
	}
	s := settings{
		binDir: os.Getenv(envBin), archive: os.Getenv(envImages), repo: os.Getenv(envRepo),
		version: os.Getenv(envVersion), image: os.Getenv(envImage), imageNew: os.Getenv(envImageNew),
	}
	if s.binDir == "" || s.archive == "" || s.repo == "" || s.version == "" || s.image == "" || s.imageNew == "" {
		lab.Unavailable(t, "the Kubernetes binaries and images are not set up: run `make e2e-kubeadm` (it sets %s, %s, %s, %s, %s, %s)",
			envBin, envImages, envRepo, envVersion, envImage, envImageNew)
	}
	for _, f := range []string{filepath.Join(s.binDir, "kubeadm"), filepath.Join(s.binDir, "kubelet"), filepath.Join(s.binDir, "kubectl"), s.archive} {
		if _, err := os.Stat(f); err != nil {
			lab.Unavailable(t, "%v: run `make e2e-kubeadm`", err)
		}
	}
	return s
}
