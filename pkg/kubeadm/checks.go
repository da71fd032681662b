package kubeadm

import (
	"errors"
	"fmt"
	"net/netip"
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

// CheckVIP checks vip (from --vip; the invalid Addr when not given)
// against the kubeadm settings: it must equal controlPlaneEndpoint's
// address when both are set, since kubeadm writes that endpoint into every
// kubeconfig, and the VIP (given or taken from controlPlaneEndpoint) must
// be neither this node's advertiseAddress nor kube-apiserver's
// bind-address: the VIP moves between nodes, a node address does not.
func CheckVIP(vip netip.Addr, s Settings) error {
	vip = vip.Unmap()
	if vip.IsValid() && s.EndpointSet && vip != s.Endpoint.Addr() {
		field := s.EndpointField
		if field == "" {
			field = fieldEndpoint
		}
		return fmt.Errorf("%s%w: --vip %s but %s is %s; make them the same address",
			prefix(s.Source), ErrVIPMismatch, vip, field, s.Endpoint)
	}
	if !vip.IsValid() && s.EndpointSet {
		vip = s.Endpoint.Addr()
	}
	if !vip.IsValid() {
		return nil
	}
	if vip == s.AdvertiseAddress {
		return fmt.Errorf("%s%w: VIP %s is the localAPIEndpoint.advertiseAddress; the VIP must be an unused address, distinct from every node's",
			prefix(s.Source), ErrVIPIsNodeAddress, vip)
	}
	if vip == s.BindAddress {
		return fmt.Errorf("%s%w: VIP %s is the %s; kube-apiserver must bind this node's own address, which stays when the VIP moves",
			prefix(s.Source), ErrVIPIsNodeAddress, vip, fieldBindAddress)
	}
	return nil
}

func prefix(source string) string {
	if source == "" {
		return ""
	}
	return source + ": "
}
