package discover

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kubeletConf is a kubelet.conf as kubeadm writes it after the kubelet's
// client certificate rotation took over (kubelet-finalize).
const kubeletConf = `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0EgREFUQQ==
    server: https://198.18.0.10:8443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: system:node:cp1
  name: system:node:cp1@kubernetes
current-context: system:node:cp1@kubernetes
kind: Config
preferences: {}
users:
- name: system:node:cp1
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
`

func TestParseKubeconfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want parsed
		bad  string // part of the error; empty: no error
	}{
		{name: "kubelet.conf with the rotated certificate", in: kubeletConf, want: parsed{Credentials: Credentials{
			Server: "https://198.18.0.10:8443", CAData: []byte("CA DATA"),
			CertFile: "/var/lib/kubelet/pki/kubelet-client-current.pem", KeyFile: "/var/lib/kubelet/pki/kubelet-client-current.pem",
		}}},
		{name: "embedded certificate, relative CA file", in: strings.NewReplacer(
			"certificate-authority-data: Q0EgREFUQQ==", "certificate-authority: pki/ca.crt",
			"client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem", "client-certificate-data: Q0VSVA==",
			"client-key: /var/lib/kubelet/pki/kubelet-client-current.pem", "client-key-data: S0VZ",
		).Replace(kubeletConf), want: parsed{Credentials: Credentials{
			Server: "https://198.18.0.10:8443", CertData: []byte("CERT"), KeyData: []byte("KEY"),
		}, caFile: "/etc/kubernetes/pki/ca.crt"}},
		{name: "empty file (before the kubelet wrote it)", in: "", bad: `no context ""`},
		{name: "not YAML", in: "{", bad: "bad kubeconfig"},
		{name: "no such context", in: strings.Replace(kubeletConf, "current-context: system:node:cp1@kubernetes", "current-context: other", 1), bad: `no context "other"`},
		{name: "no such cluster", in: strings.Replace(kubeletConf, "    cluster: kubernetes", "    cluster: x", 1), bad: `no cluster "x"`},
		{name: "no such user", in: strings.Replace(kubeletConf, "    user: system:node:cp1", "    user: x", 1), bad: `no user "x"`},
		{name: "no CA", in: strings.Replace(kubeletConf, "certificate-authority-data: Q0EgREFUQQ==", "insecure-skip-tls-verify: true", 1), bad: "no certificate authority"},
		{name: "no key", in: strings.Replace(kubeletConf, "    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem\n", "", 1), bad: "no client certificate and key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseKubeconfig([]byte(tc.in), "/etc/kubernetes")
			if tc.bad != "" {
				if !errors.Is(err, ErrKubeconfig) || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("err = %v, want an ErrKubeconfig with %q", err, tc.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Server != tc.want.Server || string(got.CAData) != string(tc.want.CAData) || got.caFile != tc.want.caFile ||
				got.CertFile != tc.want.CertFile || got.KeyFile != tc.want.KeyFile ||
				string(got.CertData) != string(tc.want.CertData) || string(got.KeyData) != string(tc.want.KeyData) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestLoadKubeconfigReadsCAFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "pki"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pki", "ca.crt"), []byte("CA FILE"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(kubeletConf, "certificate-authority-data: Q0EgREFUQQ==", "certificate-authority: pki/ca.crt", 1)
	path := filepath.Join(dir, "kubelet.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadKubeconfig(path)
	if err != nil || string(c.CAData) != "CA FILE" {
		t.Fatalf("LoadKubeconfig = %+v, %v", c, err)
	}
	if _, err := LoadKubeconfig(filepath.Join(dir, "missing.conf")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing kubeconfig: %v", err)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
