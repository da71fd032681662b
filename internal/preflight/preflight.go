// Package preflight makes every check `hapod run` would fail on at start
// given only its config and the host: the files it names, the interface's
// own address to send VRRP adverts from, the status server's address.
// `hapod init` and `hapod join` call Check before they write a manifest,
// and `hapod run` calls the same Check and starts from what it returns, so
// a manifest that passed cannot crash-loop on these, and the two cannot
// drift apart.
package preflight

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"

	"github.com/hapod/hapod/internal/hostnet"
	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/health"
)

// Host is what the checks ask of the machine.
type Host struct {
	// Addrs lists the addresses configured on the host.
	Addrs func() ([]hostnet.Addr, error)
}

// SystemHost asks the kernel.
var SystemHost = Host{Addrs: hostnet.Addrs}

// Start is what `hapod run` needs from the host and the files its config
// names, read and checked.
type Start struct {
	// Sources are this node's own addresses on the VIPs' interface, one
	// per virtual router (address family): the source of its VRRP
	// adverts and its tie-breaker (see SourceAddr).
	Sources map[config.Family]netip.Addr
	// Password is the VRRPv2 password, "" without --auth-pass-file.
	Password string
	// HealthTLS is the health checks' TLS configuration (--health-ca-file).
	HealthTLS *tls.Config
}

// Check reads and checks what cfg (completed, valid, with its interface
// set) needs from this host. Errors name the flag.
func Check(ctx context.Context, cfg config.Config, host Host) (Start, error) {
	s, err := ReadFiles(ctx, cfg)
	if err != nil {
		return Start{}, err
	}
	addrs, err := host.Addrs()
	if err != nil {
		return Start{}, err
	}
	if s.Sources, err = CheckAddrs(cfg, addrs); err != nil {
		return Start{}, err
	}
	return s, nil
}

// ReadFiles reads and checks the files cfg names: the password and the
// health checks' CA. Source is left unset.
func ReadFiles(ctx context.Context, cfg config.Config) (Start, error) {
	var s Start
	var err error
	if cfg.VRRP.AuthPassFile != "" {
		if s.Password, err = config.ReadPassword(ctx, cfg.VRRP.AuthPassFile); err != nil {
			return Start{}, err
		}
	}
	if s.HealthTLS, err = healthTLS(cfg.Health.CAFile); err != nil {
		return Start{}, err
	}
	return s, nil
}

// CheckAddrs checks cfg against the host's addresses and returns each
// virtual router's source address (see SourceAddr). Pure.
func CheckAddrs(cfg config.Config, addrs []hostnet.Addr) (map[config.Family]netip.Addr, error) {
	srcs := make(map[config.Family]netip.Addr)
	routers := cfg.Routers()
	for _, r := range routers {
		src, err := SourceAddr(addrs, cfg.VIP.Interface, r.VIPs, len(r.Peers) > 0)
		if err != nil && len(routers) > 1 {
			// Say which VIP needs it: the interface suits the other family.
			err = fmt.Errorf("%w, for the VIP %s: each address family's virtual router sends from this node's own address of that family, on the one interface of all the VIPs", err, r.VIPs[0])
		}
		if err != nil {
			return nil, &config.FieldError{Flag: "interface", Value: cfg.VIP.Interface, Err: err}
		}
		srcs[r.Family] = src
	}
	if err := checkStatusAddr(addrs, cfg.Status.Addr); err != nil {
		return nil, &config.FieldError{Flag: "status-addr", Value: cfg.Status.Addr.String(), Err: err}
	}
	return srcs, nil
}

// healthTLS builds the checks' TLS configuration: the CA file must be a
// readable PEM bundle.
func healthTLS(caFile string) (*tls.Config, error) {
	conf, err := health.TLSConfig(caFile, "")
	if err == nil {
		return conf, nil
	}
	// health's errors name the file; the flag error names it once.
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe):
		err = pe.Err
	case errors.Is(err, health.ErrNoCertificates):
		err = fmt.Errorf("%w: want the cluster CA in PEM, e.g. /etc/kubernetes/pki/ca.crt", health.ErrNoCertificates)
	}
	return nil, &config.FieldError{Flag: "health-ca-file", Value: caFile, Err: err}
}

// SourceAddr picks this node's own address on ifname in the family of
// vips (the VIPs of one virtual router) from the host's addresses: the
// source of that router's VRRP adverts and its tie-breaker. RFC 9568
// sends IPv6 adverts from the link-local address; unicast peers name
// global ones, so unicast IPv6 uses a global address like keepalived's
// unicast_src_ip. A VIP never counts.
func SourceAddr(addrs []hostnet.Addr, ifname string, vips []netip.Prefix, unicast bool) (netip.Addr, error) {
	is4 := vips[0].Addr().Is4()
	wantLinkLocal := !is4 && !unicast
	isVIP := func(ip netip.Addr) bool {
		for _, v := range vips {
			if v.Addr() == ip {
				return true
			}
		}
		return false
	}
	for _, a := range addrs {
		ip := a.Prefix.Addr()
		if a.Interface == ifname && !isVIP(ip) && ip.Is4() == is4 && ip.IsLinkLocalUnicast() == wantLinkLocal {
			return ip, nil
		}
	}
	kind := map[bool]string{true: "IPv6 link-local", false: "global IPv6"}[wantLinkLocal]
	if is4 {
		kind = "IPv4"
	}
	return netip.Addr{}, fmt.Errorf("has no %s address of its own to send VRRP adverts from", kind)
}

// checkStatusAddr: the status server binds its address without
// IP_FREEBIND, so it must be loopback, the wildcard or one of the host's
// own addresses (Validate has refused the VIP, which only one node holds).
func checkStatusAddr(addrs []hostnet.Addr, a netip.AddrPort) error {
	ip := a.Addr()
	if ip.IsLoopback() || ip.IsUnspecified() {
		return nil
	}
	for _, h := range addrs {
		if h.Prefix.Addr() == ip {
			return nil
		}
	}
	return fmt.Errorf("not an address of this host: the status server could not listen there, and kubelet's liveness probe would restart hapod forever; use an address this node always has (default %s)", config.DefaultStatusAddr)
}
