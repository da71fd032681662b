package cli

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/kubeadm"
)

// mergeKubeadm takes the VIP, port and this node's backend from the
// kubeadm config f (read from path) where the flags left them unset
// (given reports which were set), and refuses disagreements and the
// port-6443 conflict. With setEndpoint the file's endpoint is about to be
// replaced by the leased VIP, so it is neither used nor compared. It reads
// nothing: f is loaded.
func mergeKubeadm(cfg *config.Config, f *kubeadm.File, path string, setEndpoint bool, given func(flag string) bool) error {
	s, err := f.Settings()
	// A DNS name is fine when --vip says which address it stands for;
	// hapod does not resolve it (no network while making a manifest).
	if err != nil && !(errors.Is(err, kubeadm.ErrDNSEndpoint) && given("vip")) {
		return err
	}
	check := s
	if setEndpoint {
		// The lease decides the endpoint; init will set it.
		check.EndpointSet, check.EndpointName = false, ""
	}
	if check.EndpointSet || check.EndpointName != "" {
		ep := s.Endpoint
		if check.EndpointSet && !given("vip") {
			cfg.VIP.Prefixes = []netip.Prefix{netip.PrefixFrom(ep.Addr(), ep.Addr().BitLen())}
		}
		if given("port") && cfg.Proxy.Port != ep.Port() {
			return &config.FieldError{Flag: "port", Value: fmt.Sprint(cfg.Proxy.Port), Err: fmt.Errorf(
				"differs from the port of %s %s in %s: clients would reach the VIP on a port nobody listens on", s.EndpointField, s.EndpointString(), path)}
		}
		cfg.Proxy.Port = ep.Port()
	}
	if !given("vip") && cfg.VIP.Primary().IsValid() {
		// Most likely a join file whose discovery points at one node.
		for _, b := range cfg.Proxy.Backends {
			if b.Addr() == cfg.VIP.Primary().Addr() {
				return fmt.Errorf("%s: %w: %s %s is also --backend %s; hapod takes the VIP from it, so it must be the VIP, not a kube-apiserver's own address (or pass --vip)",
					path, kubeadm.ErrVIPIsNodeAddress, s.EndpointField, s.EndpointString(), b)
			}
		}
	}
	// Whether the VIP came from --vip or from the file, it must not be a
	// node's own address.
	if err := kubeadm.CheckVIP(cfg.VIP.Primary().Addr(), check); err != nil {
		return err // names the file already
	}
	if !given("backend") && s.AdvertiseAddress.IsValid() {
		cfg.Proxy.Backends = []netip.AddrPort{netip.AddrPortFrom(s.AdvertiseAddress, s.BindPort)}
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
		return err // names the file already
	}
	return nil
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
