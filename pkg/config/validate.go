package config

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/hapod/hapod/pkg/health"
	"github.com/hapod/hapod/pkg/proxy"
	"github.com/hapod/hapod/pkg/vrrp"
)

// Input bounds. A VIP's prefix becomes a route on its interface, so a
// prefix shorter than any LAN (/0 routes everything there) is refused.
// Each peer gets every advert (a 100ms interval is 10 packets/s per
// peer) and each backend its own health checks, so the lists are capped
// well above any control plane's size; every VIP rides in every advert
// and is announced on each takeover. The duration floors keep a typo
// such as "1ns" from turning into a check storm or connections cut at
// once.
const (
	MinVIPBitsV4      = 8
	MinVIPBitsV6      = 48
	MaxBackends       = 64
	MaxPeers          = 64
	MaxVIPs           = 16
	MinHealthInterval = 100 * time.Millisecond
	MinHealthTimeout  = 10 * time.Millisecond
	MinConnectTimeout = 10 * time.Millisecond
	MinIdleTimeout    = time.Second
	MinMemberGrace    = time.Second
)

// Validate checks a completed Config (see Complete). The error is a
// *FieldError naming the flag at fault; only the first problem is
// reported, so the user gets one clear line.
func (c *Config) Validate() error {
	for _, check := range []func() error{c.validateVIP, c.validateVRRP, c.validateProxy, c.validateHealth, c.validateMembership, c.validateStatus} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func fieldErr(flag string, value any, format string, args ...any) error {
	v := ""
	if value != nil {
		v = fmt.Sprint(value)
	}
	return &FieldError{Flag: flag, Value: v, Err: fmt.Errorf(format, args...)}
}

func (c *Config) validateVIP() error {
	ps := c.VIP.Prefixes
	if len(ps) == 0 && c.VIP.DHCP {
		return fieldErr("vip-dhcp", nil, "needs the leased address in --vip: run 'hapod init --vip dhcp' to lease it")
	}
	if len(ps) == 0 {
		return fieldErr("vip", nil, "required: the virtual IP the cluster's API endpoint lives on")
	}
	if c.VIP.DHCP && len(ps) > 1 {
		return fieldErr("vip", ps[1], "a DHCP-leased VIP is the only one: hapod leases one IPv4 address and cannot carry others beside it")
	}
	if c.VIP.DHCP && !ps[0].Addr().Is4() {
		return fieldErr("vip", ps[0], "DHCP leases IPv4 addresses; give an IPv6 VIP directly")
	}
	if len(ps) > MaxVIPs {
		return fieldErr("vip", nil, "at most %d VIPs, got %d (every VIP rides in every advert)", MaxVIPs, len(ps))
	}
	seen := map[netip.Addr]bool{}
	for _, p := range ps {
		if err := checkVIP(p); err != nil {
			return err
		}
		if seen[p.Addr()] {
			return fieldErr("vip", p, "given twice")
		}
		seen[p.Addr()] = true
	}
	return nil
}

func checkVIP(p netip.Prefix) error {
	a := p.Addr()
	switch {
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback(), a.IsLinkLocalUnicast(), a.IsInterfaceLocalMulticast():
		return fieldErr("vip", p, "not a usable unicast address")
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fieldErr("vip", p, "not a usable unicast address")
	}
	if minBits := minVIPBits(a); p.Bits() < minBits {
		return fieldErr("vip", p, "prefix /%d is shorter than /%d: the prefix is the VIP's subnet, routed to its interface; give the LAN's prefix or none (/%d)", p.Bits(), minBits, a.BitLen())
	}
	if a.Is4() && p.Bits() < 32 {
		if a == p.Masked().Addr() {
			return fieldErr("vip", p, "is the network address of its /%d", p.Bits())
		}
		if a == lastAddr(p) && p.Bits() < 31 {
			return fieldErr("vip", p, "is the broadcast address of its /%d", p.Bits())
		}
	}
	return nil
}

func minVIPBits(a netip.Addr) int {
	if a.Is4() {
		return MinVIPBitsV4
	}
	return MinVIPBitsV6
}

// nodeAddrProblem says why a is not a node's own unicast address (a peer
// or a backend), or returns "" when it can be one. vips are the VIPs'
// prefixes: their subnets' network and broadcast addresses are nobody's.
func nodeAddrProblem(a netip.Addr, vips []netip.Prefix) string {
	switch {
	case a.IsUnspecified() || a.IsMulticast():
		return "not a unicast address"
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "the broadcast address, not a node's"
	case a.Is6() && a.IsLinkLocalUnicast():
		return "an IPv6 link-local address, which is ambiguous without a zone (and hapod takes none): use the node's global or ULA address"
	}
	for _, vip := range vips {
		if a.Is4() && vip.Addr().Is4() && vip.Bits() < 31 && vip.Contains(a) {
			if a == vip.Masked().Addr() {
				return fmt.Sprintf("the network address of the VIP's /%d, not a node's", vip.Bits())
			}
			if a == lastAddr(vip) {
				return fmt.Sprintf("the broadcast address of the VIP's /%d, not a node's", vip.Bits())
			}
		}
	}
	return ""
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func (c *Config) validateVRRP() error {
	v := c.VRRP
	routers := c.Routers()
	if v.VRID == 0 {
		return fieldErr("vrid", nil, "must be 1-255")
	}
	if v.VRID6 != 0 && (len(routers) != 2) {
		return fieldErr("vrid6", v.VRID6, "applies to the IPv6 router beside an IPv4 one; with VIPs of one family use --vrid")
	}
	if v.Priority < 1 || v.Priority > 254 {
		return fieldErr("priority", v.Priority, "must be 1-254")
	}
	switch v.Version {
	case 3:
		if v.AdvertInterval < vrrp.MinIntervalV3 || v.AdvertInterval > vrrp.MaxIntervalV3 {
			return fieldErr("advert-interval", durationString(v.AdvertInterval), "VRRPv3 allows %v to %v", vrrp.MinIntervalV3, vrrp.MaxIntervalV3)
		}
		if v.AdvertInterval%vrrp.IntervalUnitV3 != 0 {
			return fieldErr("advert-interval", durationString(v.AdvertInterval), "VRRPv3 counts in centiseconds: use a multiple of 10ms")
		}
		if v.AuthPassFile != "" {
			return fieldErr("auth-pass-file", v.AuthPassFile, "VRRPv3 has no authentication (RFC 9568 removed it); use --vrrp-version 2 or drop the password")
		}
	case 2:
		for _, p := range c.VIP.Prefixes {
			if p.Addr().Is6() {
				return fieldErr("vrrp-version", 2, "VRRPv2 is IPv4 only; use --vrrp-version 3 for an IPv6 VIP (%s)", p)
			}
		}
		if v.AdvertInterval < vrrp.MinIntervalV2 || v.AdvertInterval > vrrp.MaxIntervalV2 {
			return fieldErr("advert-interval", durationString(v.AdvertInterval), "VRRPv2 allows %v to %v", vrrp.MinIntervalV2, vrrp.MaxIntervalV2)
		}
		if v.AdvertInterval%vrrp.IntervalUnitV2 != 0 {
			return fieldErr("advert-interval", durationString(v.AdvertInterval), "VRRPv2 counts in whole seconds")
		}
	default:
		return fieldErr("vrrp-version", v.Version, "must be 2 or 3")
	}
	if len(v.Peers) > MaxPeers {
		return fieldErr("peer", nil, "at most %d peers, got %d (every peer receives every advert)", MaxPeers, len(v.Peers))
	}
	seen := map[netip.Addr]bool{}
	for _, p := range v.Peers {
		switch {
		case !c.hasFamily(FamilyOf(p)):
			return fieldErr("peer", p, "no VIP is of its address family (%s); peers are per family, like the virtual routers", FamilyOf(p))
		case c.VIP.Has(p):
			return fieldErr("peer", p, "is a VIP; peers are the other nodes' own addresses")
		case p.IsLoopback():
			return fieldErr("peer", p, "not a node's unicast address")
		case nodeAddrProblem(p, c.VIP.Prefixes) != "":
			return fieldErr("peer", p, "%s", nodeAddrProblem(p, c.VIP.Prefixes))
		case seen[p]:
			return fieldErr("peer", p, "given twice")
		}
		seen[p] = true
	}
	// Unicast is all or nothing: a router left without peers would
	// multicast its adverts where the site chose unicast.
	if len(v.Peers) > 0 {
		for _, r := range routers {
			if len(r.Peers) == 0 {
				return fieldErr("peer", nil, "unicast VRRP needs the other nodes' %s addresses too, for the %s VIP %s (repeat --peer with each node's address of each family)", r.Family, r.Family, r.VIPs[0])
			}
		}
	}
	return nil
}

func (c *Config) hasFamily(f Family) bool {
	for _, p := range c.VIP.Prefixes {
		if FamilyOf(p.Addr()) == f {
			return true
		}
	}
	return false
}

func (c *Config) validateProxy() error {
	p := c.Proxy
	if p.Port == 0 {
		return fieldErr("port", nil, "must be 1-65535")
	}
	if len(p.Backends) == 0 {
		return fieldErr("backend", nil, "at least one kube-apiserver HOST:PORT is required (repeat --backend for each control-plane node)")
	}
	if len(p.Backends) > MaxBackends {
		return fieldErr("backend", nil, "at most %d backends, got %d (each is health-checked on its own)", MaxBackends, len(p.Backends))
	}
	if p.ListenPort == 0 {
		return fieldErr("listen-port", nil, "must be 1-65535")
	}
	seen := map[netip.AddrPort]bool{}
	for _, b := range p.Backends {
		onVIP := c.VIP.Has(b.Addr())
		switch {
		case onVIP && (b.Port() == p.Port || b.Port() == p.ListenPort):
			return fieldErr("backend", b, "is the proxy's own frontend (VIP:port): it would loop")
		case p.Redirect() && b.Port() == p.ListenPort:
			// The redirect exists because the apiservers hold their
			// port on every address: the proxy cannot listen there.
			return fieldErr("listen-port", fmt.Sprint(p.ListenPort), "is the kube-apiservers' port (--backend %s): the proxy must listen on another port, which --port %d is redirected to", b, p.Port)
		case onVIP:
			return fieldErr("backend", b, "is on the VIP; backends are the kube-apiservers' own node addresses")
		case nodeAddrProblem(b.Addr(), c.VIP.Prefixes) != "":
			return fieldErr("backend", b, "%s", nodeAddrProblem(b.Addr(), c.VIP.Prefixes))
		case seen[b]:
			return fieldErr("backend", b, "given twice")
		}
		seen[b] = true
	}
	if err := oneOf(string(p.Balance), proxy.PolicyNames()...); err != nil {
		return fieldErr("balance", p.Balance, "%v", err)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
		min  time.Duration
	}{{"connect-timeout", p.ConnectTimeout, MinConnectTimeout}, {"idle-timeout", p.IdleTimeout, MinIdleTimeout}} {
		if d.v < d.min {
			return fieldErr(d.flag, durationString(d.v), "must be at least %v", d.min)
		}
	}
	if p.MaxConns < 1 {
		return fieldErr("max-conns", p.MaxConns, "must be at least 1")
	}
	if p.RecvBuffer != 0 && p.RecvBuffer < 4096 {
		return fieldErr("recv-buffer", p.RecvBuffer, "must be 0 (kernel autotuning) or at least 4096")
	}
	return nil
}

func (c *Config) validateHealth() error {
	h := c.Health
	if err := oneOf(string(h.Check), health.Kinds()...); err != nil {
		return fieldErr("health-check", h.Check, "%v", err)
	}
	if err := checkHealthPath(h.Path); h.Check == health.KindHTTPS && err != nil {
		return fieldErr("health-path", h.Path, "%v", err)
	}
	if h.Interval < MinHealthInterval {
		return fieldErr("health-interval", durationString(h.Interval), "must be at least %v", MinHealthInterval)
	}
	if h.Timeout < MinHealthTimeout || h.Timeout > h.Interval {
		return fieldErr("health-timeout", durationString(h.Timeout), "must be at least %v and at most --health-interval (%v)", MinHealthTimeout, durationString(h.Interval))
	}
	if h.Rise < 1 {
		return fieldErr("health-rise", h.Rise, "must be at least 1")
	}
	if h.Fall < 1 {
		return fieldErr("health-fall", h.Fall, "must be at least 1")
	}
	if h.Weight < 0 || h.Weight >= int(c.VRRP.Priority) {
		return fieldErr("no-backend-weight", h.Weight, "must be 0-%d: the priority (%d) minus the weight must stay at least 1", int(c.VRRP.Priority)-1, c.VRRP.Priority)
	}
	return nil
}

func (c *Config) validateStatus() error {
	a := c.Status.Addr
	if !a.IsValid() || a.Port() == 0 {
		return fieldErr("status-addr", nil, "required: IP:PORT of the status server")
	}
	if c.VIP.Has(a.Addr()) {
		return fieldErr("status-addr", a, "is a VIP: only the node holding it could listen there, and kubelet's liveness probe would restart hapod on every other node; use an address each node always has (default %s)", DefaultStatusAddr)
	}
	if p := nodeAddrProblem(a.Addr(), c.VIP.Prefixes); p != "" && !a.Addr().IsUnspecified() {
		return fieldErr("status-addr", a, "%s", p)
	}
	if a.Port() == c.Proxy.ListenPort && a.Addr().IsUnspecified() {
		return fieldErr("status-addr", a, "collides with the proxy on port %d", c.Proxy.ListenPort)
	}
	if err := oneOf(c.Log.Format, "text", "json"); err != nil {
		return fieldErr("log-format", c.Log.Format, "%v", err)
	}
	if err := oneOf(c.Log.Level, "debug", "info", "warn", "error"); err != nil {
		return fieldErr("log-level", c.Log.Level, "%v", err)
	}
	return nil
}

func (c *Config) validateMembership() error {
	m := c.Membership
	if !m.Discover {
		return nil
	}
	switch {
	case m.Kubeconfig == "":
		return fieldErr("kubeconfig", nil, "required with --discover")
	case m.StateDir == "":
		return fieldErr("state-dir", nil, "required with --discover")
	case m.Grace < MinMemberGrace:
		return fieldErr("member-grace", m.Grace, "at least %v", MinMemberGrace)
	}
	return nil
}
