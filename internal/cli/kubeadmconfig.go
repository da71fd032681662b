package cli

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/kubeadm"
)

// fromKubeadm is what mergeKubeadm took from the kubeadm config besides
// the Config's settings.
type fromKubeadm struct {
	// Endpoint is the address of the file's endpoint (controlPlaneEndpoint,
	// or a join file's discovery apiServerEndpoint), the VIP kubeadm
	// writes into every kubeconfig; invalid when the file has none, or a
	// DNS name.
	Endpoint netip.Addr
	// OwnBackend: with no --backend and --discover, the backend is this
	// node's own kube-apiserver, the others to be discovered; the printed
	// join line then names none.
	OwnBackend bool
	// Notes are what the user should know, said once the run succeeds.
	Notes []string
}

// mergeKubeadm takes the VIP, port and this node's backend from the
// kubeadm config f (read from path) where the flags left them unset
// (given reports which were set), and refuses disagreements and the
// port-6443 conflict. With setEndpoint the file's endpoint is about to be
// replaced by the leased VIP, so it is neither used nor compared. It reads
// nothing: f is loaded.
func mergeKubeadm(cfg *config.Config, f *kubeadm.File, path string, setEndpoint bool, given func(flag string) bool) (fromKubeadm, error) {
	var d fromKubeadm
	s, err := f.Settings()
	// A DNS name is fine when --vip says which address it stands for;
	// hapod does not resolve it (no network while making a manifest).
	if err != nil && !(errors.Is(err, kubeadm.ErrDNSEndpoint) && given("vip")) {
		return d, err
	}
	check := s
	if setEndpoint {
		// The lease decides the endpoint; init will set it.
		check.EndpointSet, check.EndpointName = false, ""
	}
	if check.EndpointSet || check.EndpointName != "" {
		ep := s.Endpoint
		if check.EndpointSet {
			d.Endpoint = ep.Addr()
			if !given("vip") {
				cfg.VIP.Prefixes = []netip.Prefix{netip.PrefixFrom(ep.Addr(), ep.Addr().BitLen())}
			}
		}
		if given("port") && cfg.Proxy.Port != ep.Port() {
			return d, &config.FieldError{Flag: "port", Value: fmt.Sprint(cfg.Proxy.Port), Err: fmt.Errorf(
				"differs from the port of %s %s in %s: clients would reach the VIP on a port nobody listens on", s.EndpointField, s.EndpointString(), path)}
		}
		cfg.Proxy.Port = ep.Port()
	}
	if !given("vip") && cfg.VIP.Primary().IsValid() {
		// Most likely a join file whose discovery points at one node.
		for _, b := range cfg.Proxy.Backends {
			if b.Addr() == cfg.VIP.Primary().Addr() {
				return d, fmt.Errorf("%s: %w: %s %s is also --backend %s; hapod takes the VIP from it, so it must be the VIP, not a kube-apiserver's own address (or pass --vip)",
					path, kubeadm.ErrVIPIsNodeAddress, s.EndpointField, s.EndpointString(), b)
			}
		}
	}
	// Whether the VIPs came from --vip or from the file, none may be a
	// node's own address.
	if err := kubeadm.CheckVIP(cfg.VIP.Addrs(), check); err != nil {
		return d, err // names the file already
	}
	if !given("backend") && s.AdvertiseAddress.IsValid() {
		// One backend per node, also on a dual-stack node: a second one
		// at its other address would double its share of the
		// connections, and escape the suspect mark a takeover puts on the
		// silent holder's backends, which goes by its VRRP address.
		cfg.Proxy.Backends = []netip.AddrPort{netip.AddrPortFrom(s.AdvertiseAddress, s.BindPort)}
		if cfg.Membership.Discover {
			d.OwnBackend = true
			d.Notes = append(d.Notes, fmt.Sprintf("no --backend: the first backend is this node's kube-apiserver %s (localAPIEndpoint in %s); the other kube-apiservers are discovered from the API once it answers (--discover)",
				cfg.Proxy.Backends[0], path))
		}
	}
	if !given("listen-port") {
		// The mode: where kube-apiserver holds the endpoint's port on
		// every address (kubeadm's default), the proxy listens on a port
		// of its own and the endpoint reaches it through the redirect;
		// otherwise it listens on the endpoint itself.
		cfg.Proxy.ListenPort = cfg.Proxy.Port
		if s.HoldsAllAddresses(cfg.Proxy.Port) {
			cfg.Proxy.ListenPort = config.DefaultListenPort
		}
	}
	if err := kubeadm.CheckPortConflict(cfg.Proxy.ListenPort, s); err != nil {
		return d, err // names the file already
	}
	if note := oneFamilyNote(*cfg, s, path); note != "" {
		d.Notes = append(d.Notes, note)
	}
	// Clients of an endpoint that is a DNS name verify the name, and a
	// leased VIP becomes the endpoint: only beside an IP endpoint do the
	// other VIPs need to be in the certificates.
	if lack := kubeadm.CertSANsLack(cfg.VIP.Addrs(), check); check.EndpointSet && len(lack) > 0 {
		d.Notes = append(d.Notes, fmt.Sprintf("warning: ClusterConfiguration.apiServer.certSANs of %s lacks %s: TLS clients connecting to a VIP that the kube-apiservers' certificates do not name fail to verify them; add it there before 'kubeadm init'",
			path, addrList(lack)))
	}
	return d, nil
}

// oneFamilyNote says when the kubeadm config is dual-stack and hapod
// holds VIPs of one family only. Not an error: every kubeconfig kubeadm
// writes names controlPlaneEndpoint, one address, so the cluster itself
// is highly available through it (kubeadm's dual-stack guide sets up
// exactly that); only clients reaching the API over the other family go
// without an HA endpoint.
func oneFamilyNote(cfg config.Config, s kubeadm.Settings, path string) string {
	routers := cfg.Routers()
	if s.DualStack == "" || len(routers) != 1 {
		return ""
	}
	have := familyName(routers[0].Family)
	other := "IPv6"
	if routers[0].Family == config.IPv6 {
		other = "IPv4"
	}
	return fmt.Sprintf("note: %s is dual-stack (%s), and hapod holds %s VIPs only: every kubeconfig kubeadm writes names controlPlaneEndpoint, so the cluster is highly available through it, but clients reaching the API over %s get no HA endpoint; for one, repeat --vip: controlPlaneEndpoint's VIP and an %s VIP (and add that to apiServer.certSANs)",
		path, s.DualStack, have, other, other)
}

// addrList is "A" or "A, B".
func addrList(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// portShareWarning warns when, without a kubeadm config to tell, the
// proxy listens on a backend's port itself: kube-apiserver binds the
// wildcard by default, and only a per-node bind leaves VIP:port free.
func portShareWarning(cfg config.Config) string {
	if cfg.Proxy.Redirect() {
		return ""
	}
	for _, b := range cfg.Proxy.Backends {
		if b.Port() == cfg.Proxy.ListenPort {
			return fmt.Sprintf("warning: the proxy listens on VIP:%d, the kube-apiservers' port: that works only where every kube-apiserver binds its node's address (a per-node kubeadm patch); leave --listen-port out to reach the proxy through hapod's nftables redirect instead", cfg.Proxy.ListenPort)
		}
	}
	return ""
}
