// Package fakeapiserver is a small HTTPS server that imitates the parts
// of kube-apiserver a load balancer sees: /readyz, /livez and /healthz,
// a graceful-shutdown-like failing /readyz, slow answers, and long-lived
// watch streams. Tests and the e2e lab run it as the proxy's backends.
//
// Its certificate is issued at start by its own CA (ECDSA P-256), so
// clients can test with or without verification: CAPEM/WriteCA give the
// CA. The leaf names 127.0.0.1, ::1, localhost, the server's name, the
// address each connection arrived on, and any address added with AddSAN
// (e.g. the VIP a client dials through the proxy).
//
// Routes:
//
//	GET  /readyz, /livez, /healthz  200 "ok"; /readyz is 500 in ModeFail
//	GET  /fake/whoami               the server's name (no newline)
//	GET  /fake/mode                 the current mode
//	POST /fake/mode?m=MODE[&delay=D] switch mode (and the slow delay)
//	GET  EndpointsPath              the Endpoints file (SetEndpointsFile), to a client certificate of the CA
//	any  ...?watch=1                one JSON line per watch interval until the client leaves
//	any  other path                 a small JSON object naming the server
//
// In ModeSlow every answer except /fake/* waits for the slow delay first.
package fakeapiserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is how the server answers.
type Mode string

// The modes.
const (
	// ModeOK answers everything normally.
	ModeOK Mode = "ok"
	// ModeFail answers /readyz with 500, like a kube-apiserver inside
	// --shutdown-delay-duration: still serving, not ready.
	ModeFail Mode = "fail"
	// ModeSlow delays every answer (but /fake/*) by the slow delay.
	ModeSlow Mode = "slow"
)

// Defaults.
const (
	// DefaultSlowDelay is how long ModeSlow delays answers.
	DefaultSlowDelay = 2 * time.Second
	// DefaultWatchInterval is the time between two lines of a watch.
	DefaultWatchInterval = time.Second
)

// ErrBadMode is returned by ParseMode for an unknown mode.
var ErrBadMode = errors.New("unknown mode (valid: ok, fail, slow)")

// ParseMode parses "ok", "fail" or "slow".
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeOK, ModeFail, ModeSlow:
		return m, nil
	}
	return "", fmt.Errorf("%w: %q", ErrBadMode, s)
}

// Server is a fake kube-apiserver. Its methods are safe for concurrent
// use.
type Server struct {
	name  string
	srv   *http.Server
	caPEM []byte
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey

	endpoints     atomic.Value // string: the Endpoints file; "" none
	mode          atomic.Value // Mode
	slow          atomic.Int64 // time.Duration
	watchInterval atomic.Int64 // time.Duration
	watches       atomic.Int64

	mu     sync.Mutex
	extra  []netip.Addr
	leaves map[netip.Addr]*tls.Certificate // by local address of the connection
}

// New returns a server called name in ModeOK with a freshly generated CA.
func New(name string) (*Server, error) {
	ca, err := NewCA("fakeapiserver-ca " + name)
	if err != nil {
		return nil, err
	}
	return NewWithCA(name, ca), nil
}

// NewWithCA returns a server called name in ModeOK whose certificates
// ca issues, and which verifies the client certificates ca issued (see
// CA.Kubeconfig): servers sharing a CA look like one cluster's
// apiservers.
func NewWithCA(name string, ca *CA) *Server {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	s := &Server{
		name:   name,
		ca:     ca.cert,
		caKey:  ca.key,
		caPEM:  ca.PEM(),
		leaves: map[netip.Addr]*tls.Certificate{},
	}
	s.mode.Store(ModeOK)
	s.endpoints.Store("")
	s.slow.Store(int64(DefaultSlowDelay))
	s.watchInterval.Store(int64(DefaultWatchInterval))
	s.srv = &http.Server{
		Handler: s.handler(),
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: s.certificate,
			// Health checks come without one; the API routes that
			// want an identity check for it.
			ClientAuth: tls.VerifyClientCertIfGiven,
			ClientCAs:  pool,
		},
		ReadHeaderTimeout: 10 * time.Second,
		// Clients that give up mid-handshake (TLS and TCP health checks
		// do so on purpose) are normal here, not worth a log line.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	return s
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

// Name returns the server's name.
func (s *Server) Name() string { return s.name }

// CAPEM returns the PEM of the CA that issues the server's certificate.
func (s *Server) CAPEM() []byte { return slices.Clone(s.caPEM) }

// WriteCA writes CAPEM to path, atomically (temp file and rename) so a
// reader never sees half a file.
func (s *Server) WriteCA(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("fakeapiserver: write CA: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(s.caPEM); err != nil {
		tmp.Close()
		return fmt.Errorf("fakeapiserver: write CA %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("fakeapiserver: write CA %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("fakeapiserver: write CA %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("fakeapiserver: write CA: %w", err)
	}
	return nil
}

// AddSAN adds IP addresses to the certificate's names, for clients that
// reach the server through an address it does not own (a VIP).
// Connections after the call get a certificate with the new names.
func (s *Server) AddSAN(addrs ...netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range addrs {
		s.extra = append(s.extra, a.Unmap())
	}
	clear(s.leaves)
}

// EndpointsPath is the API path of the default/kubernetes Endpoints, the
// list of live apiservers hapod's membership discovery reads.
const EndpointsPath = "/api/v1/namespaces/default/endpoints/kubernetes"

// SetEndpointsFile makes GET EndpointsPath answer with the contents of
// path (a v1 Endpoints as JSON), read at every request so that a test
// changes the cluster's members by rewriting it. The request must carry a
// client certificate of the server's CA (401 otherwise); while path does
// not exist the answer is 503, as from an apiserver without etcd. Empty:
// no such route (404 like any other unknown path).
func (s *Server) SetEndpointsFile(path string) { s.endpoints.Store(path) }

func (s *Server) endpointsHandler(w http.ResponseWriter, r *http.Request) {
	path := s.endpoints.Load().(string)
	status := func(code int, reason, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1",
			"status": "Failure", "code": code, "reason": reason, "message": msg})
	}
	switch {
	case path == "":
		status(http.StatusNotFound, "NotFound", `endpoints "kubernetes" not found`)
		return
	case r.TLS == nil || len(r.TLS.VerifiedChains) == 0:
		status(http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		status(http.StatusServiceUnavailable, "ServiceUnavailable", "etcd unavailable: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(data)
}

// SetMode switches the mode; it applies to requests that arrive after it.
func (s *Server) SetMode(m Mode) { s.mode.Store(m) }

// Mode returns the current mode.
func (s *Server) Mode() Mode { return s.mode.Load().(Mode) }

// SetSlowDelay sets how long ModeSlow delays answers.
func (s *Server) SetSlowDelay(d time.Duration) { s.slow.Store(int64(d)) }

// SetWatchInterval sets the time between two lines of a watch stream.
func (s *Server) SetWatchInterval(d time.Duration) { s.watchInterval.Store(int64(d)) }

// ActiveWatches returns how many watch streams are open.
func (s *Server) ActiveWatches() int { return int(s.watches.Load()) }

// Serve serves HTTPS (HTTP/1.1 and HTTP/2) on l until Close; it returns
// nil after Close. It may be called for several listeners.
func (s *Server) Serve(l net.Listener) error {
	err := s.srv.ServeTLS(l, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close closes the listeners and every connection, watches included.
func (s *Server) Close() error { return s.srv.Close() }

// Shutdown stops accepting and waits for open requests to end, or ctx.
// Watch streams end only when their clients leave, so pass a deadline.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// certificate issues (once per local address) a leaf naming the address
// the client connected to, so verification by IP works on any listener.
func (s *Server) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	var local netip.Addr
	if hello.Conn != nil {
		if ap, err := netip.ParseAddrPort(hello.Conn.LocalAddr().String()); err == nil {
			local = ap.Addr().Unmap().WithZone("")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.leaves[local]; ok {
		return c, nil
	}
	c, err := s.issue(local)
	if err != nil {
		return nil, err
	}
	s.leaves[local] = c
	return c, nil
}

// issue creates a leaf for local and the fixed names. Called with mu held.
func (s *Server) issue(local netip.Addr) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	for _, a := range append([]netip.Addr{local}, s.extra...) {
		if a.IsValid() {
			ips = append(ips, a.AsSlice())
		}
	}
	names := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}
	if s.name != "" {
		names = append(names, s.name)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  ips,
		DNSNames:     names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.ca, &key.PublicKey, s.caKey)
	if err != nil {
		return nil, fmt.Errorf("fakeapiserver: leaf: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, s.ca.Raw}, PrivateKey: key}, nil
}

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	health := func(fails bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !s.delay(r) {
				return
			}
			if fails && s.Mode() == ModeFail {
				// What kube-apiserver says inside its shutdown delay.
				http.Error(w, "[+]ping ok\n[+]log ok\n[+]etcd ok\n[-]shutdown failed: reason withheld\nreadyz check failed", http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, "ok")
		}
	}
	mux.HandleFunc("GET /readyz", health(true))
	mux.HandleFunc("GET /livez", health(false))
	mux.HandleFunc("GET /healthz", health(false))
	mux.HandleFunc("GET /fake/whoami", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, s.name)
	})
	mux.HandleFunc("GET /fake/mode", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, string(s.Mode()))
	})
	mux.HandleFunc("POST /fake/mode", s.setModeHandler)
	mux.HandleFunc("GET "+EndpointsPath, s.endpointsHandler)
	mux.HandleFunc("/", s.apiHandler)
	return mux
}

func (s *Server) setModeHandler(w http.ResponseWriter, r *http.Request) {
	m, err := ParseMode(r.URL.Query().Get("m"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if d := r.URL.Query().Get("delay"); d != "" {
		delay, err := time.ParseDuration(d)
		if err != nil || delay < 0 {
			http.Error(w, fmt.Sprintf("bad delay %q", d), http.StatusBadRequest)
			return
		}
		s.SetSlowDelay(delay)
	}
	s.SetMode(m)
	io.WriteString(w, string(m))
}

// delay waits in ModeSlow; false means the client left meanwhile.
func (s *Server) delay(r *http.Request) bool {
	if s.Mode() != ModeSlow {
		return true
	}
	t := time.NewTimer(time.Duration(s.slow.Load()))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// apiInfo is the body of any other API path, and of each watch line.
type apiInfo struct {
	Kind   string `json:"kind"`
	Server string `json:"server"`
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	Seq    int    `json:"seq,omitempty"`
}

func (s *Server) apiHandler(w http.ResponseWriter, r *http.Request) {
	if !s.delay(r) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if v := r.URL.Query().Get("watch"); v == "" || v == "0" || v == "false" {
		json.NewEncoder(w).Encode(apiInfo{Kind: "Status", Server: s.name, Method: r.Method, Path: r.URL.Path})
		return
	}
	s.watch(w, r)
}

// watch streams one event line per interval until the client goes away
// or the server closes, like a kube-apiserver watch (which lasts minutes).
func (s *Server) watch(w http.ResponseWriter, r *http.Request) {
	s.watches.Add(1)
	defer s.watches.Add(-1)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	type event struct {
		Type   string  `json:"type"`
		Object apiInfo `json:"object"`
	}
	t := time.NewTicker(time.Duration(s.watchInterval.Load()))
	defer t.Stop()
	for seq := 1; ; seq++ {
		ev := event{Type: "BOOKMARK", Object: apiInfo{Kind: "WatchEvent", Server: s.name, Path: r.URL.Path, Seq: seq}}
		if err := enc.Encode(ev); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	}
}
