package health

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testCA is a throw-away certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf issues a server certificate for the given IPs and DNS names.
func (ca *testCA) leaf(t *testing.T, ips []net.IP, names []string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  ips,
		DNSNames:     names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (ca *testCA) writeFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(path, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startTLS starts an HTTPS test server with handler h and, when cert is
// not nil, that certificate. It counts new connections.
func startTLS(t *testing.T, h http.HandlerFunc, cert *tls.Certificate) (netip.AddrPort, *atomic.Int64) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	if cert != nil {
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	// Handshakes the checks abandon on purpose are not worth a log line.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	conns := new(atomic.Int64)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return netip.MustParseAddrPort(srv.Listener.Addr().String()), conns
}

// closedPort returns a loopback address nobody listens on.
func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort(l.Addr().String())
	l.Close()
	return addr
}

func check(c Checker, b netip.AddrPort, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.Check(ctx, b)
}

func TestHTTPSChecker(t *testing.T) {
	var gotPath atomic.Value
	ok, conns := startTLS(t, func(w http.ResponseWriter, r *http.Request) {
		gotPath.Store(r.URL.Path)
		w.Write([]byte("ok"))
	}, nil)
	c := &HTTPSChecker{}
	for range 3 {
		if err := check(c, ok, 5*time.Second); err != nil {
			t.Fatalf("check of a 200 server: %v", err)
		}
	}
	if p := gotPath.Load(); p != DefaultPath {
		t.Errorf("requested path %v, want %s", p, DefaultPath)
	}
	// Like haproxy: every check opens its own connection.
	if n := conns.Load(); n != 3 {
		t.Errorf("3 checks used %d connections, want 3", n)
	}

	c = &HTTPSChecker{Path: "livez"}
	if err := check(c, ok, 5*time.Second); err != nil {
		t.Fatalf("check of /livez: %v", err)
	}
	if p := gotPath.Load(); p != "/livez" {
		t.Errorf("requested path %v, want /livez", p)
	}
}

func TestHTTPSCheckerStatus(t *testing.T) {
	failing, _ := startTLS(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte("[+]ping ok\n[+]etcd ok\n[-]shutdown failed: reason withheld\nreadyz check failed\n"))
	}, nil)
	err := check(&HTTPSChecker{}, failing, 5*time.Second)
	if !errors.Is(err, ErrStatus) {
		t.Fatalf("check of a 500 server: %v, want ErrStatus", err)
	}
	for _, want := range []string{"500", "[-]shutdown failed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "[+]ping") {
		t.Errorf("error %q lists passing checks", err)
	}

	huge, _ := startTLS(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(strings.Repeat("x", 1<<20)))
	}, nil)
	err = check(&HTTPSChecker{}, huge, 5*time.Second)
	if !errors.Is(err, ErrStatus) {
		t.Fatalf("check of a 503 server: %v, want ErrStatus", err)
	}
	if len(err.Error()) > 300 {
		t.Errorf("error is %d bytes long, want a short summary", len(err.Error()))
	}
}

func TestHTTPSCheckerTimeout(t *testing.T) {
	release := make(chan struct{})
	slow, _ := startTLS(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.Write([]byte("ok"))
	}, nil)
	defer close(release)
	err := check(&HTTPSChecker{}, slow, 50*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("check of a server slower than the timeout: %v, want deadline exceeded", err)
	}
}

func TestCheckersClosedPort(t *testing.T) {
	b := closedPort(t)
	for _, c := range []Checker{&TCPChecker{}, &TLSChecker{}, &HTTPSChecker{}} {
		if err := check(c, b, 5*time.Second); err == nil {
			t.Errorf("%T on a closed port passed", c)
		}
	}
}

func TestCheckersNotTLS(t *testing.T) {
	// A plain HTTP server: TCP passes, the TLS handshake fails.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	b := netip.MustParseAddrPort(srv.Listener.Addr().String())
	if err := check(&TCPChecker{}, b, 5*time.Second); err != nil {
		t.Errorf("TCP check of a listening port: %v", err)
	}
	for _, c := range []Checker{&TLSChecker{}, &HTTPSChecker{}} {
		if err := check(c, b, 5*time.Second); err == nil {
			t.Errorf("%T of a plain HTTP server passed", c)
		}
	}
}

func TestTLSCheckerPasses(t *testing.T) {
	b, _ := startTLS(t, func(w http.ResponseWriter, r *http.Request) {}, nil)
	if err := check(&TLSChecker{}, b, 5*time.Second); err != nil {
		t.Fatalf("TLS check: %v", err)
	}
}

func TestTLSConfigVerification(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	leaf := ca.leaf(t, []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"apiserver.test"})
	b, _ := startTLS(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }, &leaf)

	tests := []struct {
		name       string
		caFile     string
		serverName string
		wantErr    bool
	}{
		{"verify none", "", "", false},
		{"right CA, IP SAN", ca.writeFile(t), "", false},
		{"right CA, DNS SAN", ca.writeFile(t), "apiserver.test", false},
		{"right CA, wrong name", ca.writeFile(t), "elsewhere.test", true},
		{"other CA", other.writeFile(t), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := TLSConfig(tt.caFile, tt.serverName)
			if err != nil {
				t.Fatal(err)
			}
			if got := conf.InsecureSkipVerify; got != (tt.caFile == "") {
				t.Errorf("InsecureSkipVerify = %v with CA file %q", got, tt.caFile)
			}
			for _, c := range []Checker{&TLSChecker{Config: conf}, &HTTPSChecker{Config: conf}} {
				err := check(c, b, 5*time.Second)
				if (err != nil) != tt.wantErr {
					t.Errorf("%T: err = %v, want error %v", c, err, tt.wantErr)
				}
				var verr *tls.CertificateVerificationError
				if tt.wantErr && !errors.As(err, &verr) {
					t.Errorf("%T: err = %v, want a certificate verification error", c, err)
				}
			}
		})
	}
}

func TestTLSConfigErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.crt")
	if _, err := TLSConfig(missing, ""); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing CA file: err = %v, want one naming %s", err, missing)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.crt")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := TLSConfig(garbage, "")
	if !errors.Is(err, ErrNoCertificates) || !strings.Contains(err.Error(), garbage) {
		t.Errorf("garbage CA file: err = %v, want ErrNoCertificates naming %s", err, garbage)
	}
}

func TestNewChecker(t *testing.T) {
	conf := &tls.Config{ServerName: "x"}
	tests := []struct {
		kind Kind
		want Checker
	}{
		{"", &HTTPSChecker{Path: "/livez", Config: conf}},
		{"https", &HTTPSChecker{Path: "/livez", Config: conf}},
		{"tls", &TLSChecker{Config: conf}},
		{"tcp", &TCPChecker{}},
	}
	for _, tt := range tests {
		c, err := NewChecker(tt.kind, "/livez", conf)
		if err != nil {
			t.Fatalf("NewChecker(%q): %v", tt.kind, err)
		}
		switch want := tt.want.(type) {
		case *HTTPSChecker:
			got, ok := c.(*HTTPSChecker)
			if !ok || got.Path != want.Path || got.Config != want.Config {
				t.Errorf("NewChecker(%q) = %#v, want %#v", tt.kind, c, want)
			}
		case *TLSChecker:
			got, ok := c.(*TLSChecker)
			if !ok || got.Config != want.Config {
				t.Errorf("NewChecker(%q) = %#v, want %#v", tt.kind, c, want)
			}
		case *TCPChecker:
			if _, ok := c.(*TCPChecker); !ok {
				t.Errorf("NewChecker(%q) = %#v, want a TCPChecker", tt.kind, c)
			}
		}
	}
	_, err := NewChecker("udp", "", nil)
	if !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("NewChecker(udp): %v, want ErrUnknownKind", err)
	}
	for _, k := range Kinds() {
		if !strings.Contains(err.Error(), string(k)) {
			t.Errorf("error %q does not list kind %q", err, k)
		}
	}
}
