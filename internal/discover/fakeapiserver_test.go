//lint:file-ignore SA1019 the Node authorizer lets a node identity get Endpoints, and grants nothing on EndpointSlices (see package discover)

package discover

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/hapod/hapod/internal/fakeapiserver"
	"github.com/hapod/hapod/pkg/membership"
)

// serveFake runs a fake apiserver named name, with a certificate from ca,
// on a loopback port, answering the Endpoints in epFile; it returns its
// address.
func serveFake(t *testing.T, ca *fakeapiserver.CA, name, epFile string) netip.AddrPort {
	t.Helper()
	srv := fakeapiserver.NewWithCA(name, ca)
	srv.SetEndpointsFile(epFile)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return netip.MustParseAddrPort(l.Addr().String())
}

// The real client path: TLS verified against the kubeconfig's CA for the
// name "kubernetes" while dialling an IP, the node's client certificate
// presented, the Endpoints decoded; a client without the certificate is
// refused and counted as denied.
func TestSourceAgainstFakeAPIServer(t *testing.T) {
	ca, err := fakeapiserver.NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	epFile := filepath.Join(dir, "endpoints.json")
	addr := serveFake(t, ca, "cp1", epFile)

	// Every address asked is this loopback listener: the members n2 and
	// n3 come after it and are never dialled.
	kc, err := ca.Kubeconfig("system:node:cp1", "https://"+addr.String())
	if err != nil {
		t.Fatal(err)
	}
	kcPath := filepath.Join(dir, "kubelet.conf")
	writeFile(t, kcPath, string(kc))

	tr := membership.NewTracker(membership.TrackerConfig{
		Config: membership.Config{Static: []netip.AddrPort{addr}}, Clock: clocktesting.NewFakeClock(t0),
	})
	src := New(Config{Kubeconfig: kcPath, Clock: clocktesting.NewFakeClock(t0)}, tr)
	if err := src.load(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// No Endpoints yet: 503, an unreachable API.
	src.readOnce(ctx)
	if st := tr.Status(); st.Reads[membership.ReadError] != 1 {
		t.Fatalf("without endpoints: %+v", st)
	}
	b, _ := json.Marshal(endpoints(n2, n3))
	writeFile(t, epFile, string(b))
	src.readOnce(ctx)
	if got := tr.Members(); !slices.Equal(got, []netip.AddrPort{addr, n2, n3}) {
		t.Fatalf("members %v (status %+v)", got, tr.Status())
	}

	// Without the client certificate: 401, denied.
	anon := New(Config{Kubeconfig: kcPath}, tr)
	if err := anon.load(); err != nil {
		t.Fatal(err)
	}
	anon.creds.CertData, anon.creds.KeyData = nil, nil
	anon.readOnce(ctx)
	if st := tr.Status(); st.Reads[membership.ReadDenied] != 1 {
		t.Fatalf("without a client certificate: reads %v", st.Reads)
	}
	if err := os.Remove(epFile); err != nil {
		t.Fatal(err)
	}
}

// A joining node's kubelet writes kubelet.conf, naming its rotated client
// certificate file, before the certificate is issued: the reads fail
// until the file appears, then succeed (a client that could not be made
// is not kept). The kubeconfig is read again before every read.
func TestSourceWaitsForTheClientCertificate(t *testing.T) {
	ca, err := fakeapiserver.NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	epFile := filepath.Join(dir, "endpoints.json")
	b, _ := json.Marshal(endpoints(n2, n3))
	writeFile(t, epFile, string(b))
	addr := serveFake(t, ca, "cp2", epFile)

	// The credentials as files, the way a joined node's kubelet.conf has
	// them: pki/kubelet-client-current.pem holds certificate and key.
	embedded, err := ca.Kubeconfig("system:node:cp2", "https://"+addr.String())
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "embedded.conf"), string(embedded))
	creds, err := LoadKubeconfig(filepath.Join(dir, "embedded.conf"))
	if err != nil {
		t.Fatal(err)
	}
	kcPath := filepath.Join(dir, "kubelet.conf")
	writeFile(t, kcPath, fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: node
clusters:
- name: kubernetes
  cluster:
    server: https://%s
    certificate-authority-data: %s
users:
- name: node
  user:
    client-certificate: pki/kubelet-client-current.pem
    client-key: pki/kubelet-client-current.pem
contexts:
- name: node
  context: {cluster: kubernetes, user: node}
`, addr, base64.StdEncoding.EncodeToString(creds.CAData)))

	tr := membership.NewTracker(membership.TrackerConfig{
		Config: membership.Config{Static: []netip.AddrPort{addr}}, Clock: clocktesting.NewFakeClock(t0),
	})
	src := New(Config{Kubeconfig: kcPath, Clock: clocktesting.NewFakeClock(t0)}, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	read := func() {
		t.Helper()
		if err := src.load(); err != nil {
			t.Fatal(err)
		}
		src.readOnce(ctx)
	}

	read()
	if st := tr.Status(); st.Reads[membership.ReadError] != 1 || !strings.Contains(st.LastErr, "kubelet-client-current.pem") {
		t.Fatalf("before the certificate exists: %+v", st)
	}
	if err := os.Mkdir(filepath.Join(dir, "pki"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "pki", "kubelet-client-current.pem"), string(creds.CertData)+string(creds.KeyData))
	read()
	if got := tr.Members(); !slices.Equal(got, []netip.AddrPort{addr, n2, n3}) {
		t.Fatalf("once the certificate exists: members %v (status %+v)", got, tr.Status())
	}
}
