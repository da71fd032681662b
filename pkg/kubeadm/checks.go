package kubeadm

import (
	"errors"
	"fmt"
	"net/netip"
)

// Errors returned by the checks below. Test them with errors.Is.
var (
	// ErrPortConflict: the proxy's frontend port is kube-apiserver's port
	// and kube-apiserver listens on every address.
	ErrPortConflict = errors.New("frontend port conflicts with kube-apiserver")
	// ErrVIPMismatch: --vip and the kubeadm endpoint (controlPlaneEndpoint
	// or the join discovery apiServerEndpoint) name different addresses.
	ErrVIPMismatch = errors.New("VIP disagrees with the kubeadm endpoint")
	// ErrVIPIsNodeAddress: the VIP is also an address this node's
	// kube-apiserver uses as its own.
	ErrVIPIsNodeAddress = errors.New("VIP is also this node's own address")
)

// CheckPortConflict reports whether a proxy listening on VIP:frontendPort
// (on every node, through IP_FREEBIND) can coexist with this node's
// kube-apiserver. It cannot when both use one port and kube-apiserver
// binds the wildcard address (no bind-address, or 0.0.0.0 or ::): Linux
// refuses a wildcard and a specific bind on one port, whichever comes
// second, so either the proxy or kube-apiserver fails to start; kubeadm's
// preflight check Port-<bindPort> listens on the wildcard too. A specific
// bind-address lets both share the port, on different addresses.
//
// A zero s.BindPort means kubeadm's default, 6443, so a caller without a
// kubeadm file can pass Settings{}.
func CheckPortConflict(frontendPort uint16, s Settings) error {
	bindPort := s.BindPort
	if bindPort == 0 {
		bindPort = DefaultBindPort
	}
	if frontendPort != bindPort || (s.BindAddress.IsValid() && !s.BindAddress.IsUnspecified()) {
		return nil
	}
	binds := "no apiServer extraArgs bind-address"
	if s.BindAddress.IsValid() {
		binds = "bind-address " + s.BindAddress.String()
	}
	return fmt.Errorf("%s%w: the proxy's frontend port %d is kube-apiserver's port (localAPIEndpoint.bindPort) and kube-apiserver listens on all addresses (%s), so one of them cannot bind: "+
		"use a different frontend port (e.g. --port 8443 and controlPlaneEndpoint VIP:8443, as kubeadm's HA guide does); apiServer extraArgs bind-address is no way out: it is cluster-wide, so every joining control-plane node would bind the first node's address and fail preflight Port-6443",
		prefix(s.Source), ErrPortConflict, frontendPort, binds)
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
