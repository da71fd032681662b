// Package health checks kube-apiserver backends actively, the way haproxy's
// `check inter 2s fall 3 rise 2` with `option httpchk GET /readyz` and
// `ssl verify none` does for the usual kubeadm HA setup.
//
// The default check is an HTTPS GET of /readyz expecting 200:
// kube-apiserver serves /readyz to anonymous clients and turns it to a
// failure as soon as it starts a graceful shutdown
// (--shutdown-delay-duration) while it still serves requests, so a load
// balancer watching /readyz moves new connections away before the server
// stops. Where anonymous auth is off, a TLS handshake or a TCP connect is
// the fallback.
//
// The package has three parts: Checkers (one probe of one backend),
// Hysteresis (pure rise/fall counting, no I/O and no clock) and Prober
// (the driver: one goroutine per backend on an injected clock, reporting
// only transitions).
package health

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/hapod/hapod/internal/inputfile"
)

// Checker probes one backend once. The context carries the check's
// timeout; a Checker must give up when it ends, whatever stage the check
// is in (dial, handshake, request, answer), and leave no connection or
// goroutine behind when it returns.
type Checker interface {
	Check(ctx context.Context, backend netip.AddrPort) error
}

// Kind names a kind of check, as given to --health-check.
type Kind string

// The kinds of check NewChecker builds.
const (
	// KindHTTPS is an HTTPS GET of a path expecting 200 (HTTPSChecker).
	KindHTTPS Kind = "https"
	// KindTLS is a TLS handshake (TLSChecker).
	KindTLS Kind = "tls"
	// KindTCP is a TCP connect (TCPChecker).
	KindTCP Kind = "tcp"
)

// Kinds lists the valid kinds, the default first.
func Kinds() []Kind { return []Kind{KindHTTPS, KindTLS, KindTCP} }

// Errors returned by this package, wrapped with context.
var (
	// ErrUnknownKind is returned by NewChecker for a kind not in Kinds.
	ErrUnknownKind = errors.New("unknown health check kind")
	// ErrStatus is returned by HTTPSChecker when the answer is not 200.
	ErrStatus = errors.New("unexpected HTTP status")
	// ErrNoCertificates is returned by TLSConfig when the CA file holds
	// no PEM certificate.
	ErrNoCertificates = errors.New("no PEM certificate found")
)

// NewChecker builds the Checker for kind ("" means KindHTTPS). path is
// used by the HTTPS check only ("" means DefaultPath). tlsConf is used by
// the HTTPS and TLS checks; nil means no verification (see TLSConfig).
func NewChecker(kind Kind, path string, tlsConf *tls.Config) (Checker, error) {
	switch kind {
	case "", KindHTTPS:
		return &HTTPSChecker{Path: path, Config: tlsConf}, nil
	case KindTLS:
		return &TLSChecker{Config: tlsConf}, nil
	case KindTCP:
		return &TCPChecker{}, nil
	}
	valid := make([]string, 0, len(Kinds()))
	for _, k := range Kinds() {
		valid = append(valid, string(k))
	}
	return nil, fmt.Errorf("%w %q (valid: %s)", ErrUnknownKind, kind, strings.Join(valid, ", "))
}

// TLSConfig returns the client TLS configuration for the checks.
//
// With caFile empty the server certificate is not verified, like
// haproxy's `ssl verify none`: the check asks "does this apiserver
// answer", and kubeadm's apiserver certificates are signed by a cluster
// CA that may not exist on disk yet when hapod starts.
//
// With caFile set the certificate must chain to a certificate in that
// PEM file and name serverName, or, when serverName is empty, the
// backend's IP address (kubeadm puts the node IPs in the apiserver
// certificate's SANs).
func TLSConfig(caFile, serverName string) (*tls.Config, error) {
	conf := &tls.Config{
		ServerName: serverName,
		MinVersion: tls.VersionTLS12,
	}
	if caFile == "" {
		conf.InsecureSkipVerify = true
		return conf, nil
	}
	pemData, err := inputfile.Read(context.Background(), caFile, 0)
	if err != nil {
		return nil, fmt.Errorf("health CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("health CA file %s: %w", caFile, ErrNoCertificates)
	}
	conf.RootCAs = pool
	return conf, nil
}

// insecureTLS is the configuration a nil *tls.Config stands for.
func insecureTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
}
