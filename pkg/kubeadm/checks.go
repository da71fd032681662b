package kubeadm

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Errors returned by the checks below. Test them with errors.Is.
var (
	// ErrPortConflict: the proxy's listen port is kube-apiserver's port
	// and kube-apiserver listens on every address.
	ErrPortConflict = errors.New("frontend port conflicts with kube-apiserver")
	// ErrVIPMismatch: --vip and the kubeadm endpoint (controlPlaneEndpoint
	// or the join discovery apiServerEndpoint) name different addresses.
	ErrVIPMismatch = errors.New("VIP disagrees with the kubeadm endpoint")
	// ErrVIPIsNodeAddress: the VIP is also an address this node's
	// kube-apiserver uses as its own.
	ErrVIPIsNodeAddress = errors.New("VIP is also this node's own address")
)

// HoldsAllAddresses reports whether kube-apiserver holds port on every
// address as far as s tells: port is its bindPort and it binds the
// wildcard address (no bind-address, 0.0.0.0 or ::). A file without a
// ClusterConfiguration cannot tell, and kubeadm's default, the wildcard,
// is assumed. Then no proxy can listen on VIP:port: Linux refuses a
// wildcard and a specific bind on one port, whichever comes second, and
// kubeadm's preflight check Port-<bindPort> listens on the wildcard too.
//
// A zero s.BindPort means kubeadm's default, 6443, so a caller without a
// kubeadm file can pass Settings{}.
func (s Settings) HoldsAllAddresses(port uint16) bool {
	bindPort := s.BindPort
	if bindPort == 0 {
		bindPort = DefaultBindPort
	}
	return port == bindPort && (!s.BindAddress.IsValid() || s.BindAddress.IsUnspecified())
}

// CheckPortConflict reports whether a proxy listening on VIP:listenPort
// (on every node, through IP_FREEBIND) can coexist with this node's
// kube-apiserver: it cannot when the file shows kube-apiserver holding
// that port on every address (HoldsAllAddresses). A file that cannot tell
// (a JoinConfiguration alone) is not refused: the bind may come from a
// per-node patch.
func CheckPortConflict(listenPort uint16, s Settings) error {
	if s.BindAddressUnknown || !s.HoldsAllAddresses(listenPort) {
		return nil
	}
	binds := "no apiServer extraArgs bind-address"
	if s.BindAddress.IsValid() {
		binds = "bind-address " + s.BindAddress.String()
	}
	return fmt.Errorf("%s%w: the proxy would listen on port %d, kube-apiserver's port (localAPIEndpoint.bindPort), and kube-apiserver listens on all addresses (%s), so one of them cannot bind: "+
		"leave --listen-port out (the endpoint's port then reaches the proxy through hapod's nftables redirect), or use a port of its own (e.g. --port 8443 and controlPlaneEndpoint VIP:8443); apiServer extraArgs bind-address is no way out: it is cluster-wide, so every joining control-plane node would bind the first node's address and fail preflight Port-6443",
		prefix(s.Source), ErrPortConflict, listenPort, binds)
}

// CheckVIP checks vips (from --vip; none when not given) against the
// kubeadm settings: controlPlaneEndpoint's address must be one of them
// when both are set, since kubeadm writes that endpoint into every
// kubeconfig (the other VIPs, of a dual-stack cluster say, reach the same
// apiservers beside it), and no VIP (given or taken from
// controlPlaneEndpoint) may be this node's advertiseAddress, one of its
// node-ip addresses or kube-apiserver's bind-address: the VIP moves
// between nodes, a node address does not.
func CheckVIP(vips []netip.Addr, s Settings) error {
	vips = slices.Clone(vips)
	for i, v := range vips {
		vips[i] = v.Unmap()
	}
	if len(vips) > 0 && s.EndpointSet && !slices.Contains(vips, s.Endpoint.Addr()) {
		field := s.EndpointField
		if field == "" {
			field = fieldEndpoint
		}
		if len(vips) == 1 && vips[0].Is4() == s.Endpoint.Addr().Is4() {
			return fmt.Errorf("%s%w: --vip %s but %s is %s; make them the same address",
				prefix(s.Source), ErrVIPMismatch, vips[0], field, s.Endpoint)
		}
		return fmt.Errorf("%s%w: %s is %s, and no --vip is %s (--vip %s); give it as one of them: the other VIPs reach the same kube-apiservers beside it",
			prefix(s.Source), ErrVIPMismatch, field, s.Endpoint, s.Endpoint.Addr(), joinAddrs(vips))
	}
	if len(vips) == 0 && s.EndpointSet {
		vips = []netip.Addr{s.Endpoint.Addr()}
	}
	for _, vip := range vips {
		switch {
		case vip == s.AdvertiseAddress:
			return fmt.Errorf("%s%w: VIP %s is the localAPIEndpoint.advertiseAddress; the VIP must be an unused address, distinct from every node's",
				prefix(s.Source), ErrVIPIsNodeAddress, vip)
		case slices.Contains(s.NodeIPs, vip):
			return fmt.Errorf("%s%w: VIP %s is this node's kubelet node-ip (nodeRegistration.kubeletExtraArgs); the VIP must be an unused address, distinct from every node's",
				prefix(s.Source), ErrVIPIsNodeAddress, vip)
		case vip == s.BindAddress:
			return fmt.Errorf("%s%w: VIP %s is the %s; kube-apiserver must bind this node's own address, which stays when the VIP moves",
				prefix(s.Source), ErrVIPIsNodeAddress, vip, fieldBindAddress)
		}
	}
	return nil
}

// CertSANsLack returns the VIPs that apiServer.certSANs does not name,
// but for the endpoint's, which kubeadm puts in the apiservers'
// certificates itself; nil when the file has no ClusterConfiguration
// (BindAddressUnknown) and so no say in them.
func CertSANsLack(vips []netip.Addr, s Settings) []netip.Addr {
	if s.BindAddressUnknown {
		return nil
	}
	var out []netip.Addr
	for _, v := range vips {
		if s.EndpointSet && v == s.Endpoint.Addr() {
			continue
		}
		named := slices.ContainsFunc(s.CertSANs, func(san string) bool {
			a, err := netip.ParseAddr(san)
			return err == nil && a.Unmap() == v
		})
		if !named {
			out = append(out, v)
		}
	}
	return out
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

func prefix(source string) string {
	if source == "" {
		return ""
	}
	return source + ": "
}
