package kubeadm

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// DefaultBindPort is kube-apiserver's secure port when
// localAPIEndpoint.bindPort is unset, as in kubeadm.
const DefaultBindPort = 6443

// Field paths used in messages.
const (
	fieldEndpoint      = KindCluster + ".controlPlaneEndpoint"
	fieldDiscovery     = KindJoin + ".discovery.bootstrapToken.apiServerEndpoint"
	fieldBindAddress   = KindCluster + ".apiServer.extraArgs bind-address"
	fieldInitEndpoint  = KindInit + ".localAPIEndpoint"
	fieldJoinEndpoint  = KindJoin + ".controlPlane.localAPIEndpoint"
	fieldPodSubnet     = KindCluster + ".networking.podSubnet"
	fieldServiceSubnet = KindCluster + ".networking.serviceSubnet"
	fieldInitNodeIP    = KindInit + ".nodeRegistration.kubeletExtraArgs node-ip"
	fieldJoinNodeIP    = KindJoin + ".nodeRegistration.kubeletExtraArgs node-ip"
)

// Errors returned, wrapped with the file and the field, by File.Settings.
var (
	// ErrDNSEndpoint: the endpoint (controlPlaneEndpoint or the join
	// discovery apiServerEndpoint) names a host instead of an IP. hapod
	// must know the VIP itself to hold it. Settings still returns
	// everything else, so a caller given --vip may go on.
	ErrDNSEndpoint = errors.New("the endpoint is a DNS name")
	// ErrBadEndpoint: controlPlaneEndpoint is neither IP[:port] nor
	// name[:port], or apiServerEndpoint is not IP:port or name:port.
	ErrBadEndpoint = errors.New("malformed endpoint")
	// ErrEndpointMismatch: the file has both a controlPlaneEndpoint and a
	// join discovery apiServerEndpoint, and they differ, so which one is
	// the VIP is unclear.
	ErrEndpointMismatch = errors.New("ClusterConfiguration and JoinConfiguration endpoints disagree")
	// ErrBadAddress: an advertiseAddress, bind-address or node-ip is not
	// an IP, or node-ip is neither one address nor a pair of one of each
	// family.
	ErrBadAddress = errors.New("malformed IP address")
	// ErrBadSubnet: a podSubnet or serviceSubnet is not one CIDR or a
	// comma-separated list of them.
	ErrBadSubnet = errors.New("malformed CIDR")
	// ErrBadPort: a port outside 1-65535.
	ErrBadPort = errors.New("port out of range")
	// ErrInitJoinMismatch: the file has both an InitConfiguration and a
	// control-plane JoinConfiguration whose local API endpoints differ, so
	// which one describes this node depends on the command.
	ErrInitJoinMismatch = errors.New("InitConfiguration and JoinConfiguration disagree")
)

// Settings are the values hapod derives from a kubeadm configuration.
type Settings struct {
	// Source is the file they came from, for messages.
	Source string
	// Endpoint is ClusterConfiguration.controlPlaneEndpoint or, in a file
	// without one, JoinConfiguration.discovery.bootstrapToken.apiServerEndpoint:
	// the VIP and the frontend port. Without a port in controlPlaneEndpoint,
	// kubeadm uses BindPort, and so does Endpoint (apiServerEndpoint must
	// have one). When the host is a DNS name, Endpoint holds only the port
	// (its Addr is invalid) and EndpointName the name.
	Endpoint netip.AddrPort
	// EndpointSet says the endpoint is set and is an IP address.
	EndpointSet bool
	// EndpointName is the host of an endpoint that is a DNS name; empty
	// otherwise.
	EndpointName string
	// EndpointField is the field the endpoint was read from, for
	// messages; empty when no endpoint is set.
	EndpointField string
	// AdvertiseAddress is this node's kube-apiserver address, from
	// InitConfiguration.localAPIEndpoint or
	// JoinConfiguration.controlPlane.localAPIEndpoint. Invalid when unset
	// or 0.0.0.0/::, where kubeadm uses the default-route interface's
	// address, which only the node itself can tell.
	AdvertiseAddress netip.Addr
	// BindPort is this node's kube-apiserver port (localAPIEndpoint.bindPort,
	// default 6443). With AdvertiseAddress it is this node's proxy backend.
	BindPort uint16
	// BindAddress is kube-apiserver's --bind-address from
	// apiServer.extraArgs. Invalid when unset: kube-apiserver then listens
	// on every address, like an explicit 0.0.0.0 or ::.
	BindAddress netip.Addr
	// BindAddressUnknown says the file has no ClusterConfiguration, where
	// apiServer extraArgs live: a JoinConfiguration cannot carry them (a
	// joining node gets the cluster's, or a per-node patch), so the file
	// says nothing about what kube-apiserver binds.
	BindAddressUnknown bool
	// CertSANs are ClusterConfiguration.apiServer.certSANs.
	CertSANs []string
	// NodeIPs are this node's addresses from
	// nodeRegistration.kubeletExtraArgs node-ip (of the
	// InitConfiguration, else of the JoinConfiguration): one, or a
	// dual-stack pair of one of each family. Nil when unset; an
	// unspecified address (0.0.0.0, ::) is left out.
	NodeIPs []netip.Addr
	// DualStack names the first field that gives both address families
	// (networking.podSubnet, serviceSubnet or a node-ip pair) with its
	// value, for messages; "" when the file shows one family only.
	DualStack string
}

// CRISocket is the container runtime socket the file gives this node
// (nodeRegistration.criSocket of the InitConfiguration, else of the
// JoinConfiguration); "" when it gives none and kubeadm detects one.
func (f *File) CRISocket() string {
	if f.Init != nil && f.Init.NodeRegistration.CRISocket != "" {
		return f.Init.NodeRegistration.CRISocket
	}
	if f.Join != nil {
		return f.Join.NodeRegistration.CRISocket
	}
	return ""
}

// EndpointString is the endpoint as host:port, the host being the IP
// address or the DNS name; "" when no endpoint is set.
func (s Settings) EndpointString() string {
	switch {
	case s.EndpointSet:
		return s.Endpoint.String()
	case s.EndpointName != "":
		return net.JoinHostPort(s.EndpointName, strconv.Itoa(int(s.Endpoint.Port())))
	}
	return ""
}

// Settings derives hapod's settings from the file. Errors name the file and
// the field. On an ErrDNSEndpoint error the returned Settings are complete
// but for the endpoint's address.
func (f *File) Settings() (Settings, error) {
	s := Settings{Source: f.Name, BindPort: DefaultBindPort}

	local, err := f.localEndpoint()
	if err != nil {
		return Settings{}, err
	}
	if local != nil {
		if s.AdvertiseAddress, err = f.parseAddr(local.field+".advertiseAddress", local.AdvertiseAddress); err != nil {
			return Settings{}, err
		}
		if s.AdvertiseAddress.IsUnspecified() {
			s.AdvertiseAddress = netip.Addr{}
		}
		if local.BindPort != 0 {
			if local.BindPort < 0 || local.BindPort > 65535 {
				return Settings{}, fmt.Errorf("%s: %s.bindPort %d: %w", f.Name, local.field, local.BindPort, ErrBadPort)
			}
			s.BindPort = uint16(local.BindPort)
		}
	}

	nodeIP, err := f.nodeIP()
	if err != nil {
		return Settings{}, err
	}
	if nodeIP != nil {
		if s.NodeIPs, err = f.parseNodeIPs(nodeIP.field, nodeIP.raw); err != nil {
			return Settings{}, err
		}
		if len(s.NodeIPs) == 2 {
			s.DualStack = fmt.Sprintf("%s %q", nodeIP.field, nodeIP.raw)
		}
	}

	s.BindAddressUnknown = f.Cluster == nil
	if f.Cluster != nil {
		for _, sub := range []struct{ field, raw string }{
			{fieldPodSubnet, f.Cluster.Networking.PodSubnet},
			{fieldServiceSubnet, f.Cluster.Networking.ServiceSubnet},
		} {
			both, err := f.subnetsOfBothFamilies(sub.field, sub.raw)
			if err != nil {
				return Settings{}, err
			}
			if both && s.DualStack == "" {
				s.DualStack = fmt.Sprintf("%s %q", sub.field, sub.raw)
			}
		}
		s.CertSANs = slices.Clone(f.Cluster.APIServer.CertSANs)
		if v, ok := f.Cluster.APIServer.ExtraArgs.Get("bind-address"); ok {
			// An invalid value would stop kube-apiserver from starting; say
			// so now rather than guess what it binds.
			if s.BindAddress, err = f.parseAddr(fieldBindAddress, v); err != nil {
				return Settings{}, err
			}
		}
	}

	ep, err := f.endpoint(s.BindPort)
	if err != nil || ep == nil {
		return s, err
	}
	s.EndpointField = ep.field
	addr, err := netip.ParseAddr(ep.host)
	switch {
	case err == nil && addr.Zone() == "":
		s.Endpoint = netip.AddrPortFrom(addr.Unmap(), ep.port)
		s.EndpointSet = true
	case isDNSName(ep.host):
		s.Endpoint = netip.AddrPortFrom(netip.Addr{}, ep.port)
		s.EndpointName = ep.host
		return s, fmt.Errorf("%s: %s %q: %w; hapod needs an IP address VIP: use --vip with the address %s resolves to, or put the VIP in %s",
			f.Name, ep.field, ep.raw, ErrDNSEndpoint, ep.host, ep.field)
	default:
		return Settings{}, fmt.Errorf("%s: %s %q: %w: host %q is neither an IP address (without zone) nor a DNS name",
			f.Name, ep.field, ep.raw, ErrBadEndpoint, ep.host)
	}
	return s, nil
}

// rawEndpoint is an endpoint split into host and port, with the field and
// the text it was read from.
type rawEndpoint struct {
	field, raw, host string
	port             uint16
}

// endpoint picks the endpoint the VIP comes from: controlPlaneEndpoint,
// which is what kubeadm puts in every kubeconfig, or, in a join file, the
// discovery apiServerEndpoint, which is the VIP:port of the 'kubeadm join'
// command. A file holding both (one file kept for init and join) must
// give the same endpoint twice. Nil when neither is set.
func (f *File) endpoint(bindPort uint16) (*rawEndpoint, error) {
	var cpe, disc *rawEndpoint
	if f.Cluster != nil && f.Cluster.ControlPlaneEndpoint != "" {
		raw := f.Cluster.ControlPlaneEndpoint
		host, port, err := splitEndpoint(raw, bindPort)
		if err != nil {
			return nil, fmt.Errorf("%s: %s %q: %w", f.Name, fieldEndpoint, raw, err)
		}
		cpe = &rawEndpoint{fieldEndpoint, raw, host, port}
	}
	if f.Join != nil && f.Join.Discovery.BootstrapToken != nil && f.Join.Discovery.BootstrapToken.APIServerEndpoint != "" {
		raw := f.Join.Discovery.BootstrapToken.APIServerEndpoint
		// kubeadm requires host:port here (net.SplitHostPort), unlike
		// controlPlaneEndpoint.
		host, portStr, err := net.SplitHostPort(raw)
		if err != nil || portStr == "" {
			return nil, fmt.Errorf("%s: %s %q: %w: kubeadm wants HOST:PORT here", f.Name, fieldDiscovery, raw, ErrBadEndpoint)
		}
		_, port, err := splitEndpoint(raw, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %s %q: %w", f.Name, fieldDiscovery, raw, err)
		}
		disc = &rawEndpoint{fieldDiscovery, raw, host, port}
	}
	switch {
	case cpe == nil:
		return disc, nil
	case disc == nil || sameEndpoint(*cpe, *disc):
		return cpe, nil
	}
	return nil, fmt.Errorf("%s: %w: %s is %q and %s is %q; hapod takes the VIP from them: make them equal, or keep one",
		f.Name, ErrEndpointMismatch, fieldEndpoint, cpe.raw, fieldDiscovery, disc.raw)
}

func sameEndpoint(a, b rawEndpoint) bool {
	if a.port != b.port {
		return false
	}
	x, errx := netip.ParseAddr(a.host)
	y, erry := netip.ParseAddr(b.host)
	if errx == nil && erry == nil {
		return x.Unmap() == y.Unmap()
	}
	return strings.EqualFold(a.host, b.host)
}

// namedEndpoint is a localAPIEndpoint with the path it was read from.
type namedEndpoint struct {
	APIEndpoint
	field string
}

// localEndpoint picks this node's localAPIEndpoint. A file may carry both
// an InitConfiguration and a JoinConfiguration (one file kept for both
// commands); they must then agree, since Settings does not know which
// command the file is for.
func (f *File) localEndpoint() (*namedEndpoint, error) {
	var init, join *namedEndpoint
	if f.Init != nil && f.Init.LocalAPIEndpoint != nil {
		init = &namedEndpoint{*f.Init.LocalAPIEndpoint, fieldInitEndpoint}
	}
	if f.Join != nil && f.Join.ControlPlane != nil {
		join = &namedEndpoint{f.Join.ControlPlane.LocalAPIEndpoint, fieldJoinEndpoint}
	}
	switch {
	case init == nil:
		return join, nil
	case join == nil:
		return init, nil
	}
	port := func(p int32) int32 {
		if p == 0 {
			return DefaultBindPort
		}
		return p
	}
	if init.AdvertiseAddress != join.AdvertiseAddress || port(init.BindPort) != port(join.BindPort) {
		return nil, fmt.Errorf("%s: %w: %s is %s and %s is %s; keep one of them, or make them equal",
			f.Name, ErrInitJoinMismatch, init.field, hostPort(init.APIEndpoint), join.field, hostPort(join.APIEndpoint))
	}
	return init, nil
}

func hostPort(e APIEndpoint) string {
	host := e.AdvertiseAddress
	if host == "" {
		host = "(default address)"
	}
	port := e.BindPort
	if port == 0 {
		port = DefaultBindPort
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// rawArg is a flag's value with the field it was read from.
type rawArg struct{ field, raw string }

// nodeIP picks this node's kubelet node-ip: the InitConfiguration's or
// the JoinConfiguration's, which must agree when a file gives both (see
// localEndpoint). Nil when neither sets it.
func (f *File) nodeIP() (*rawArg, error) {
	var found []rawArg
	if f.Init != nil {
		if v, _ := f.Init.NodeRegistration.KubeletExtraArgs.Get("node-ip"); v != "" {
			found = append(found, rawArg{fieldInitNodeIP, v})
		}
	}
	if f.Join != nil {
		if v, _ := f.Join.NodeRegistration.KubeletExtraArgs.Get("node-ip"); v != "" {
			found = append(found, rawArg{fieldJoinNodeIP, v})
		}
	}
	switch {
	case len(found) == 0:
		return nil, nil
	case len(found) == 2 && found[0].raw != found[1].raw:
		return nil, fmt.Errorf("%s: %w: %s is %q and %s is %q; keep one of them, or make them equal",
			f.Name, ErrInitJoinMismatch, found[0].field, found[0].raw, found[1].field, found[1].raw)
	}
	return &found[0], nil
}

// parseNodeIPs parses a kubelet --node-ip value as kubelet does: one
// address, or a dual-stack pair of one IPv4 and one IPv6 address. An
// unspecified address (kubelet's "pick one of this family") is left out.
func (f *File) parseNodeIPs(field, v string) ([]netip.Addr, error) {
	var out []netip.Addr
	parts := strings.Split(v, ",")
	for _, part := range parts {
		a, err := f.parseAddr(field, strings.TrimSpace(part))
		if err != nil || !a.IsValid() {
			return nil, fmt.Errorf("%s: %s %q: %w", f.Name, field, v, ErrBadAddress)
		}
		if !a.IsUnspecified() {
			out = append(out, a)
		}
	}
	if len(parts) > 2 || len(out) == 2 && out[0].Is4() == out[1].Is4() {
		return nil, fmt.Errorf("%s: %s %q: %w: kubelet takes one address, or a dual-stack pair of one IPv4 and one IPv6 address", f.Name, field, v, ErrBadAddress)
	}
	return out, nil
}

// subnetsOfBothFamilies parses a podSubnet or serviceSubnet, one CIDR or
// a comma-separated list, and reports whether it has both families.
func (f *File) subnetsOfBothFamilies(field, v string) (bool, error) {
	if v == "" {
		return false, nil
	}
	var has4, has6 bool
	for part := range strings.SplitSeq(v, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(part))
		if err != nil {
			return false, fmt.Errorf("%s: %s %q: %w", f.Name, field, v, ErrBadSubnet)
		}
		has4, has6 = has4 || p.Addr().Is4(), has6 || p.Addr().Is6()
	}
	return has4 && has6, nil
}

// parseAddr parses an optional IP address field; "" is the invalid Addr.
func (f *File) parseAddr(field, v string) (netip.Addr, error) {
	if v == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%s: %s %q: %w", f.Name, field, v, ErrBadAddress)
	}
	return a.Unmap(), nil
}

// splitEndpoint splits "host[:port]" the way kubeadm does: a string that
// net.SplitHostPort rejects is all host (so a bare IPv6 address works), and
// a missing port is defaultPort.
func splitEndpoint(hostport string, defaultPort uint16) (string, uint16, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport, defaultPort, nil
	}
	if portStr == "" {
		return host, defaultPort, nil
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return "", 0, fmt.Errorf("%w: port %q is not 1-65535", ErrBadEndpoint, portStr)
	}
	return host, uint16(port), nil
}

// isDNSName reports whether s is a DNS name (RFC 1123 labels of letters,
// digits and inner hyphens). Upper case is accepted here, though kubeadm
// wants lower case, so that the message says "DNS name" rather than
// "malformed" for names like API.example.com. An all-numeric last label
// is refused (no top-level domain is numeric, RFC 3696), so a mistyped
// IPv4 address like 198.18.0.300 is called malformed, not a name.
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	last := s[strings.LastIndexByte(s, '.')+1:]
	if strings.Trim(last, "0123456789") == "" {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
