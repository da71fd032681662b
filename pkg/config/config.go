// Package config holds hapod's one configuration type.
//
// A Config is filled from command-line flags (and, for `hapod init` and
// `hapod join`, from a kubeadm configuration file), completed with derived
// defaults, validated, and rendered into the static pod manifest as the
// arguments of `hapod run`. Parsing those arguments gives back the same
// Config: the flag table in fields.go is the only place that knows how a
// field is spelled on the command line.
package config

import (
	"hash/fnv"
	"net/netip"
	"time"

	"github.com/hapod/hapod/pkg/health"
	"github.com/hapod/hapod/pkg/membership"
	"github.com/hapod/hapod/pkg/proxy"
)

// Config is everything `hapod run` needs. The zero value is not valid; start
// from Default.
type Config struct {
	VIP        VIP
	VRRP       VRRP
	Proxy      Proxy
	Health     Health
	Membership Membership
	Status     Status
	Log        Log
}

// VIP is the virtual addresses and where they live.
type VIP struct {
	// Prefixes are the virtual IPs with their prefix lengths (--vip,
	// repeatable), in the order given: IPv4 and IPv6 may be mixed. An
	// address without a length gets /32 (IPv4) or /128 (IPv6), like
	// keepalived. Each address family gets its own virtual router (see
	// Config.Routers); the VIPs of one family move together.
	Prefixes []netip.Prefix
	// Interface carries the VIP and the VRRP adverts (--interface). Empty
	// means: detect it from the route to the VIP when the manifest is made.
	Interface string
	// DHCP marks a VIP leased from the site's DHCP server (--vip-dhcp, set
	// by `hapod init --vip dhcp`): the active node keeps renewing it.
	DHCP bool
	// ClusterName makes this cluster's DHCP client identity unique on the
	// LAN (--cluster-name, default "kubernetes" like kubeadm's clusterName).
	ClusterName string
}

// VRRP configures the speakers that elect the VIP holders, one virtual
// router per address family.
type VRRP struct {
	// VRID is the virtual router ID, 1-255 (--vrid). Zero means: derive it
	// from the last byte of the primary VIP (VIP.Primary), so clusters
	// with different VIPs on one LAN rarely collide. It is every
	// router's VRID unless VRID6 is set: RFC 9568 keeps IPv4 and IPv6
	// virtual routers apart (their own multicast groups and virtual
	// MACs), so one VRID serves both.
	VRID uint8
	// VRID6 is the IPv6 router's VRID when there are IPv4 VIPs too
	// (--vrid6). Zero means VRID.
	VRID6 uint8
	// Priority is this node's base priority, 1-254 (--priority, default
	// 100). 255 is reserved by RFC 9568 for the address owner, which a VIP
	// never is.
	Priority uint8
	// AdvertInterval is the advertisement interval (--advert-interval).
	// Zero means the version's default: 100ms for v3, 1s for v2.
	AdvertInterval time.Duration
	// Version is the VRRP version, 2 or 3 (--vrrp-version, default 3).
	Version int
	// Preempt lets a backup take over from an active router of lower
	// priority (--preempt, default true). With the default equal
	// priorities this never moves a healthy VIP: preemption happens only
	// when the holder's effective priority falls, e.g. when it can reach
	// no kube-apiserver.
	Preempt bool
	// Peers are the other routers' addresses for unicast VRRP (--peer).
	// Empty means multicast to 224.0.0.18 or ff02::12.
	Peers []netip.Addr
	// AuthPassFile names a file holding the VRRPv2 simple password
	// (--auth-pass-file). The secret itself never enters the pod spec.
	AuthPassFile string
}

// Proxy configures the L4 proxy and the cluster endpoint VIP:Port.
type Proxy struct {
	// Port is the cluster endpoint's port on the VIP, the one kubeconfigs
	// and clients use (--port, default 6443 like kubeadm's).
	Port uint16
	// ListenPort is the port the proxy listens on, on the VIP
	// (--listen-port). When it differs from Port, hapod redirects TCP
	// for VIP:Port to it with an nftables rule in its own table while
	// this node's proxy can serve (pkg/redirect): kube-apiserver binds
	// 0.0.0.0:6443, which no socket on VIP:6443 can share. Zero means
	// derived by Complete: DefaultListenPort when Port is the
	// kube-apiservers' port (6443 or a backend's), else Port (a plain
	// listener, e.g. --port 8443).
	ListenPort uint16
	// Backends are the kube-apiservers, HOST:PORT (--backend).
	Backends []netip.AddrPort
	// Balance is the selection policy: "least-conn" (default: API clients
	// hold long-lived watches) or "round-robin" (--balance).
	Balance proxy.PolicyName
	// ConnectTimeout bounds dialing a backend, retries included
	// (--connect-timeout, default 3s).
	ConnectTimeout time.Duration
	// IdleTimeout closes a connection with no traffic either way
	// (--idle-timeout, default 1h: watches can be quiet for long).
	IdleTimeout time.Duration
	// MaxConns caps concurrent client connections; excess ones are
	// refused (--max-conns, default 20000).
	MaxConns int
	// RecvBuffer is the receive buffer of every proxied socket in bytes
	// (--recv-buffer, default 1 MiB); 0 leaves it to the kernel's
	// autotuning. See proxy.Config.RecvBuffer.
	RecvBuffer int
	// Splice moves long bulk streams with splice(2) instead of copying
	// them (--splice, default false). See proxy.Config.Splice.
	Splice bool
	// CloseOnDown closes a backend's established connections when its
	// health check fails (--close-on-down, default true), so clients
	// reconnect instead of hanging on a dead peer.
	CloseOnDown bool
	// Rebalance gently closes the oldest connections on the most loaded
	// backends when a backend comes back (--rebalance, default false).
	Rebalance bool
}

// Health configures active checks of the backends.
type Health struct {
	// Check is the kind of check: "https" (GET Path, expect 200), "tls"
	// (handshake) or "tcp" (connect) (--health-check, default https).
	Check health.Kind
	// Path is the HTTPS check's path (--health-path, default /readyz).
	Path string
	// Interval between checks of one backend (--health-interval, default 2s).
	Interval time.Duration
	// Timeout of one check (--health-timeout, default 1s).
	Timeout time.Duration
	// Rise is how many successes in a row bring a backend up
	// (--health-rise, default 2).
	Rise int
	// Fall is how many failures in a row take a backend down
	// (--health-fall, default 3).
	Fall int
	// CAFile verifies the apiserver certificate (--health-ca-file).
	// Empty means no verification, like haproxy's `verify none`.
	CAFile string
	// Weight is subtracted from the VRRP priority while no backend is
	// healthy (--no-backend-weight, default 50), so a node that can
	// reach an apiserver takes the VIP.
	Weight int
}

// Membership configures how backends and unicast peers follow the
// cluster's control-plane nodes.
type Membership struct {
	// Discover reads the API's list of live kube-apiservers (the
	// default/kubernetes Endpoints) with the node's kubelet identity and
	// adds them to the backends, and in unicast mode to the peers
	// (--discover, default true). The static --backend and --peer lists
	// stay the floor.
	Discover bool
	// Kubeconfig is the node identity's kubeconfig (--kubeconfig, default
	// /etc/kubernetes/kubelet.conf). Never admin.conf: the kubelet's
	// identity may read what discovery needs and little else.
	Kubeconfig string
	// StateDir keeps the last known members, so that a restart during an
	// API outage starts with them (--state-dir, default /var/lib/hapod).
	StateDir string
	// Grace is how long a discovered member must be missing from the
	// API's list, with the API reachable, before it is removed
	// (--member-grace, default 5m).
	Grace time.Duration
}

// Status configures the local status server.
type Status struct {
	// Addr is where /healthz, /readyz, /metrics and /status listen
	// (--status-addr, default 127.0.0.1:10270). Loopback by default;
	// another address is the user's explicit choice.
	Addr netip.AddrPort
}

// Log configures logging.
type Log struct {
	// Format is "text" (default) or "json" (--log-format).
	Format string
	// Level is "debug", "info" (default), "warn" or "error" (--log-level).
	Level string
}

// Defaults of the fields whose zero value is meaningful or derived.
const (
	DefaultPriority        = 100
	DefaultVersion         = 3
	DefaultIntervalV3      = 100 * time.Millisecond
	DefaultIntervalV2      = time.Second
	DefaultPort            = 6443
	DefaultListenPort      = 9445
	DefaultAPIServerPort   = 6443
	DefaultBalance         = proxy.DefaultPolicy
	DefaultConnectTimeout  = proxy.DefaultConnectTimeout
	DefaultIdleTimeout     = proxy.DefaultIdleTimeout
	DefaultMaxConns        = proxy.DefaultMaxConns
	DefaultRecvBuffer      = proxy.DefaultRecvBuffer
	DefaultHealthCheck     = health.KindHTTPS
	DefaultHealthPath      = health.DefaultPath
	DefaultHealthInterval  = health.DefaultInterval
	DefaultHealthTimeout   = health.DefaultTimeout
	DefaultHealthRise      = health.DefaultRise
	DefaultHealthFall      = health.DefaultFall
	DefaultNoBackendWeight = 50
	DefaultClusterName     = "kubernetes"
	DefaultKubeconfig      = "/etc/kubernetes/kubelet.conf"
	DefaultStateDir        = "/var/lib/hapod"
	DefaultMemberGrace     = membership.DefaultGrace
	DefaultLogFormat       = "text"
	DefaultLogLevel        = "info"
)

// DefaultStatusAddr is the status server's default address: loopback, on a
// port no Kubernetes component uses.
var DefaultStatusAddr = netip.MustParseAddrPort("127.0.0.1:10270")

// Default returns a Config with every default set. The VIP, the interface
// and the backends have no default.
func Default() Config {
	return Config{
		VIP: VIP{ClusterName: DefaultClusterName},
		VRRP: VRRP{
			Priority: DefaultPriority,
			Version:  DefaultVersion,
			Preempt:  true,
		},
		Proxy: Proxy{
			Port:           DefaultPort,
			Balance:        DefaultBalance,
			ConnectTimeout: DefaultConnectTimeout,
			IdleTimeout:    DefaultIdleTimeout,
			MaxConns:       DefaultMaxConns,
			RecvBuffer:     DefaultRecvBuffer,
			CloseOnDown:    proxy.DefaultCloseOnDown,
		},
		Health: Health{
			Check:    DefaultHealthCheck,
			Path:     DefaultHealthPath,
			Interval: DefaultHealthInterval,
			Timeout:  DefaultHealthTimeout,
			Rise:     DefaultHealthRise,
			Fall:     DefaultHealthFall,
			Weight:   DefaultNoBackendWeight,
		},
		Membership: Membership{
			Discover:   true,
			Kubeconfig: DefaultKubeconfig,
			StateDir:   DefaultStateDir,
			Grace:      DefaultMemberGrace,
		},
		Status: Status{Addr: DefaultStatusAddr},
		Log:    Log{Format: DefaultLogFormat, Level: DefaultLogLevel},
	}
}

// Complete fills the fields whose default derives from other fields: the
// VRID from the primary VIP, the proxy's listen port from the endpoint's port and
// the advert interval from the version. It leaves
// everything else alone; call Validate afterwards.
func (c *Config) Complete() {
	switch {
	case c.VRRP.VRID != 0:
	case c.VIP.DHCP:
		// The DHCP identity derives from the VRID, which must be known
		// before there is an address to derive it from.
		c.VRRP.VRID = DeriveVRIDFromName(c.VIP.ClusterName)
	case c.VIP.Primary().IsValid():
		c.VRRP.VRID = DeriveVRID(c.VIP.Primary().Addr())
	}
	if c.Proxy.ListenPort == 0 {
		c.Proxy.ListenPort = c.Proxy.Port
		if c.Proxy.SharesAPIServerPort() {
			c.Proxy.ListenPort = DefaultListenPort
		}
	}
	if c.VRRP.AdvertInterval == 0 {
		if c.VRRP.Version == 2 {
			c.VRRP.AdvertInterval = DefaultIntervalV2
		} else {
			c.VRRP.AdvertInterval = DefaultIntervalV3
		}
	}
}

// DeriveVRIDFromName is the default VRID of a DHCP-leased VIP: a hash of
// the cluster name folded into 1-255.
func DeriveVRIDFromName(name string) uint8 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return uint8(h.Sum32()%255) + 1
}

// DeriveVRID is the default VRID for a VIP: its last byte, or 1 when that
// byte is 0 (VRID 0 does not exist).
func DeriveVRID(vip netip.Addr) uint8 {
	b := vip.AsSlice()
	if last := b[len(b)-1]; last != 0 {
		return last
	}
	return 1
}

// SharesAPIServerPort reports whether the endpoint's port is the
// kube-apiservers' own: kubeadm's 6443, or a backend's port.
func (p Proxy) SharesAPIServerPort() bool {
	if p.Port == DefaultAPIServerPort {
		return true
	}
	for _, b := range p.Backends {
		if b.Port() == p.Port {
			return true
		}
	}
	return false
}

// Redirect reports whether the endpoint reaches the proxy through
// hapod's nftables redirect (ListenPort differs from Port) rather than
// the proxy listening on VIP:Port itself. Call it on a completed Config.
func (p Proxy) Redirect() bool { return p.ListenPort != p.Port }

// Primary is the VIP that names this hapod where one name is needed:
// the first IPv4 VIP, else the first one. The default VRID derives from
// it, the instance lock and the redirect table are named after it, and a
// DHCP-leased VIP is it. The zero Prefix when there is none.
func (v VIP) Primary() netip.Prefix {
	for _, p := range v.Prefixes {
		if p.Addr().Is4() {
			return p
		}
	}
	if len(v.Prefixes) > 0 {
		return v.Prefixes[0]
	}
	return netip.Prefix{}
}

// Addrs returns every VIP's address, in the order given.
func (v VIP) Addrs() []netip.Addr {
	out := make([]netip.Addr, len(v.Prefixes))
	for i, p := range v.Prefixes {
		out[i] = p.Addr()
	}
	return out
}

// Has reports whether a is one of the VIPs.
func (v VIP) Has(a netip.Addr) bool {
	for _, p := range v.Prefixes {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

// Family names an address family in logs, metrics labels and status:
// "ipv4" or "ipv6".
type Family string

// The address families.
const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)

// FamilyOf returns a's family.
func FamilyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// Router is one virtual router's share of a Config: the VIPs of one
// address family, the VRID they ride under and the unicast peers of
// that family.
type Router struct {
	Family Family
	VRID   uint8
	// VIPs in the order given; the first is the router's main address in
	// its adverts.
	VIPs []netip.Prefix
	// Peers are the unicast peers of this family; nil for multicast.
	Peers []netip.Addr
}

// Routers splits a completed Config into its virtual routers: one per
// address family present, IPv4 first (RFC 9568: a virtual router is
// either IPv4 or IPv6).
func (c Config) Routers() []Router {
	var out []Router
	for _, f := range []Family{IPv4, IPv6} {
		r := Router{Family: f, VRID: c.VRRP.VRID}
		if f == IPv6 && c.VRRP.VRID6 != 0 {
			r.VRID = c.VRRP.VRID6
		}
		for _, p := range c.VIP.Prefixes {
			if FamilyOf(p.Addr()) == f {
				r.VIPs = append(r.VIPs, p)
			}
		}
		for _, a := range c.VRRP.Peers {
			if FamilyOf(a) == f {
				r.Peers = append(r.Peers, a)
			}
		}
		if len(r.VIPs) > 0 {
			out = append(out, r)
		}
	}
	return out
}
