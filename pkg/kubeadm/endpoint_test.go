package kubeadm

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriteEndpoint(t *testing.T) {
	ep := netip.MustParseAddrPort("198.18.0.164:8443")
	for _, tc := range []struct {
		name, in, want string
	}{
		{"replace", "# my cluster\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: 198.18.0.99:8443 # old\nnetworking:\n  podSubnet: 198.19.0.0/16\n",
			"# my cluster\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: \"198.18.0.164:8443\" # old\nnetworking:\n  podSubnet: 198.19.0.0/16\n"},
		// Issue 19, item 11: the edited line keeps its comment and ending.
		{"replace keeps comment and CRLF", "apiVersion: kubeadm.k8s.io/v1beta4\r\nkind: ClusterConfiguration\r\ncontrolPlaneEndpoint: \"198.18.0.99:8443\"\t# the VIP, see #12\r\n",
			"apiVersion: kubeadm.k8s.io/v1beta4\r\nkind: ClusterConfiguration\r\ncontrolPlaneEndpoint: \"198.18.0.164:8443\"\t# the VIP, see #12\r\n"},
		{"replace quoted value holding a hash", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration # main\ncontrolPlaneEndpoint: 'x#y' # odd\n",
			"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration # main\ncontrolPlaneEndpoint: \"198.18.0.164:8443\" # odd\n"},
		{"insert after a quoted kind with a comment", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: \"ClusterConfiguration\" # main\n",
			"apiVersion: kubeadm.k8s.io/v1beta4\nkind: \"ClusterConfiguration\" # main\ncontrolPlaneEndpoint: \"198.18.0.164:8443\"\n"},
		// JSON is YAML to kubeadm; a JSON document is edited as JSON.
		{"json replace", `{"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration", "controlPlaneEndpoint": "198.18.0.99:8443", "networking": {"controlPlaneEndpoint": "nested"}}` + "\n",
			`{"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration", "controlPlaneEndpoint": "198.18.0.164:8443", "networking": {"controlPlaneEndpoint": "nested"}}` + "\n"},
		{"json insert", "{\n  \"apiVersion\": \"kubeadm.k8s.io/v1beta4\",\n  \"kind\": \"ClusterConfiguration\",\n  \"kubernetesVersion\": \"v1.34.0\"\n}\n---\n{\"apiVersion\": \"kubeadm.k8s.io/v1beta4\", \"kind\": \"InitConfiguration\"}\n",
			"{\n  \"controlPlaneEndpoint\": \"198.18.0.164:8443\",\n  \"apiVersion\": \"kubeadm.k8s.io/v1beta4\",\n  \"kind\": \"ClusterConfiguration\",\n  \"kubernetesVersion\": \"v1.34.0\"\n}\n---\n{\"apiVersion\": \"kubeadm.k8s.io/v1beta4\", \"kind\": \"InitConfiguration\"}\n"},
		{"json append a document", `{"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration", "localAPIEndpoint": {"advertiseAddress": "198.18.0.11"}}`,
			`{"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration", "localAPIEndpoint": {"advertiseAddress": "198.18.0.11"}}` + "\n---\n" + `{"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration", "controlPlaneEndpoint": "198.18.0.164:8443"}` + "\n"},
		{"insert after kind", "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nkubernetesVersion: v1.34.0\n---\napiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n",
			"apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: \"198.18.0.164:8443\"\nkubernetesVersion: v1.34.0\n---\napiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n"},
		{"append a document", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 198.18.0.11",
			"apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 198.18.0.11\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: \"198.18.0.164:8443\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kubeadm.yaml")
			os.WriteFile(path, []byte(tc.in), 0o640)
			changed, err := WriteEndpoint(context.Background(), path, ep)
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
			if changed, err := WriteEndpoint(context.Background(), path, ep); err != nil || changed {
				t.Errorf("second identical write: %v %v", changed, err)
			}
			if _, err := WriteEndpoint(context.Background(), path, netip.MustParseAddrPort("198.18.0.165:8443")); err != nil {
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
	if _, err := WriteEndpoint(context.Background(), path, netip.MustParseAddrPort("198.18.0.164:8443")); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("unsupported version: %v", err)
	}
	if _, err := os.Stat(path + BackupSuffix); err == nil {
		t.Error("a refused file got a backup")
	}
}

// TestEndpointEdit: a planned edit writes nothing; Apply writes it and a
// backup; Undo restores the file byte for byte and removes only a backup
// it made.
func TestEndpointEdit(t *testing.T) {
	ep := netip.MustParseAddrPort("198.18.0.164:8443")
	const orig = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: 198.18.0.99:8443\n"
	for _, oldBackup := range []bool{false, true} {
		dir := t.TempDir()
		path := filepath.Join(dir, "kubeadm.yaml")
		os.WriteFile(path, []byte(orig), 0o640)
		if oldBackup {
			os.WriteFile(path+BackupSuffix, []byte("the true original"), 0o600)
		}
		e, err := PlanEndpoint(context.Background(), path, ep)
		if err != nil || e == nil {
			t.Fatalf("PlanEndpoint: %v %v", e, err)
		}
		if got, _ := os.ReadFile(path); string(got) != orig {
			t.Fatal("PlanEndpoint wrote the file")
		}
		if _, err := os.Stat(path + BackupSuffix); err == nil != oldBackup {
			t.Fatal("PlanEndpoint made a backup")
		}
		if err := e.Apply(); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); !strings.Contains(string(got), `controlPlaneEndpoint: "198.18.0.164:8443"`) {
			t.Fatalf("Apply did not set the endpoint:\n%s", got)
		}
		if err := e.Undo(); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); string(got) != orig {
			t.Errorf("after Undo:\n%s\nwant the original", got)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
			t.Errorf("mode %v after Undo, want 0640", fi.Mode().Perm())
		}
		b, err := os.ReadFile(path + BackupSuffix)
		switch {
		case oldBackup && string(b) != "the true original":
			t.Errorf("Undo touched the older backup: %q %v", b, err)
		case !oldBackup && err == nil:
			t.Error("Undo left the backup Apply made")
		}
	}

	// Nothing to do when the file says ep already; a file changed after
	// planning is refused.
	path := filepath.Join(t.TempDir(), "kubeadm.yaml")
	os.WriteFile(path, []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: 198.18.0.164:8443\n"), 0o600)
	if e, err := PlanEndpoint(context.Background(), path, ep); e != nil || err != nil {
		t.Errorf("PlanEndpoint of an unchanged endpoint: %v %v", e, err)
	}
	e, err := PlanEndpoint(context.Background(), path, netip.MustParseAddrPort("198.18.0.165:8443"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, []byte("# edited meanwhile\n"), 0o600)
	if err := e.Apply(); err == nil || !strings.Contains(err.Error(), "changed while") {
		t.Errorf("Apply over a changed file: %v", err)
	}
	if _, err := os.Stat(path + BackupSuffix); err == nil {
		t.Error("a refused Apply made a backup")
	}
}

// TestEndpointEditKeepsFile: the edit goes through a symbolic link to its
// target (the link stays a link) and keeps the file's mode and owner, and
// so does Undo. Issue 19, item 11.
func TestEndpointEditKeepsFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real", "kubeadm.yaml")
	os.Mkdir(filepath.Dir(target), 0o755)
	const orig = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: 198.18.0.99:8443\n"
	os.WriteFile(target, []byte(orig), 0o640)
	uid, gid := os.Getuid(), os.Getgid()
	if os.Geteuid() == 0 {
		uid, gid = 4321, 8765 // root can give the file away: prove it is kept
		if err := os.Chown(target, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "kubeadm.yaml")
	if err := os.Symlink("real/kubeadm.yaml", link); err != nil {
		t.Fatal(err)
	}
	check := func(when, want string) {
		t.Helper()
		if dest, err := os.Readlink(link); err != nil || dest != "real/kubeadm.yaml" {
			t.Errorf("%s: %s is no longer the link to real/kubeadm.yaml: %q %v", when, link, dest, err)
		}
		fi, err := os.Stat(target)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o640 || int(st.Uid) != uid || int(st.Gid) != gid {
			t.Errorf("%s: mode %v owner %d:%d, want 0640 %d:%d kept", when, fi.Mode().Perm(), st.Uid, st.Gid, uid, gid)
		}
		if got, _ := os.ReadFile(target); !strings.Contains(string(got), want) {
			t.Errorf("%s: target:\n%s\nwant %q", when, got, want)
		}
	}
	e, err := PlanEndpoint(context.Background(), link, netip.MustParseAddrPort("198.18.0.164:8443"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(); err != nil {
		t.Fatal(err)
	}
	check("after Apply", `controlPlaneEndpoint: "198.18.0.164:8443"`)
	if b, err := os.ReadFile(e.Backup()); err != nil || string(b) != orig {
		t.Errorf("backup %s: %q %v, want the original", e.Backup(), b, err)
	}
	if err := e.Undo(); err != nil {
		t.Fatal(err)
	}
	check("after Undo", orig)
	if entries, _ := os.ReadDir(filepath.Dir(target)); len(entries) != 1 {
		t.Errorf("files left next to the target: %v", entries)
	}
}
