package kubeadm

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteEndpoint(t *testing.T) {
	ep := netip.MustParseAddrPort("198.18.0.164:8443")
	for _, tc := range []struct {
		name, in, want string
	}{
		{"replace", "# my cluster\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: 198.18.0.99:8443 # old\nnetworking:\n  podSubnet: 198.19.0.0/16\n",
			"# my cluster\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: \"198.18.0.164:8443\"\nnetworking:\n  podSubnet: 198.19.0.0/16\n"},
		{"insert after kind", "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nkubernetesVersion: v1.34.0\n---\napiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n",
			"apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: \"198.18.0.164:8443\"\nkubernetesVersion: v1.34.0\n---\napiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n"},
		{"append a document", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 198.18.0.11",
			"apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 198.18.0.11\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: \"198.18.0.164:8443\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kubeadm.yaml")
			os.WriteFile(path, []byte(tc.in), 0o640)
			changed, err := WriteEndpoint(path, ep)
			if err != nil || !changed {
				t.Fatalf("WriteEndpoint: %v %v", changed, err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != tc.want {
				t.Errorf("file:\n%s\nwant:\n%s", got, tc.want)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
				t.Errorf("mode %v, want 0640 kept", fi.Mode().Perm())
			}
			if b, _ := os.ReadFile(path + BackupSuffix); string(b) != tc.in {
				t.Errorf("backup %q, want the original", b)
			}
			// Idempotent, and a second change keeps the first backup.
			if changed, err := WriteEndpoint(path, ep); err != nil || changed {
				t.Errorf("second identical write: %v %v", changed, err)
			}
			if _, err := WriteEndpoint(path, netip.MustParseAddrPort("198.18.0.165:8443")); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(path + BackupSuffix); string(b) != tc.in {
				t.Errorf("backup overwritten with %q", b)
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 2 {
				t.Errorf("%d files left, want the config and its backup", len(entries))
			}
		})
	}
}

func TestWriteEndpointRefusesBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeadm.yaml")
	os.WriteFile(path, []byte("apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\n"), 0o600)
	if _, err := WriteEndpoint(path, netip.MustParseAddrPort("198.18.0.164:8443")); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("unsupported version: %v", err)
	}
	if _, err := os.Stat(path + BackupSuffix); err == nil {
		t.Error("a refused file got a backup")
	}
}
