package config

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hapod/hapod/pkg/health"
	"github.com/hapod/hapod/pkg/proxy"
)

// Kind says how a flag takes its values.
type Kind int

// The kinds of flags.
const (
	KindValue Kind = iota + 1 // one value; the last one given wins
	KindList                  // repeatable; each use adds a value
	KindBool                  // true or false
)

// Categories group the flags in --help.
const (
	CategoryVRRP       = "VIP and VRRP"
	CategoryProxy      = "Proxy"
	CategoryHealth     = "Health checks"
	CategoryStatus     = "Status and logs"
	CategoryMembership = "Membership"
)

// Field is one row of the flag table: how a Config field is spelled on the
// command line, read back and written.
type Field struct {
	// Name is the long flag name without dashes, e.g. "vip".
	Name string
	// Usage is the --help text.
	Usage string
	// Kind says how the flag takes values.
	Kind Kind
	// Category groups the flag in --help.
	Category string

	get func(*Config) []string
	set func(*Config, string) error
}

// FieldError is a bad flag value or an invalid setting. Its message names
// the flag, so a user knows what to fix.
type FieldError struct {
	Flag  string // without dashes
	Value string // the offending value, empty when the problem is an absence
	Err   error
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("--%s: %v", e.Flag, e.Err)
	}
	v := e.Value
	if CheckText(v) != nil {
		v = strconv.Quote(v) // the error stays one line, its bytes visible
	}
	return fmt.Sprintf("--%s %s: %v", e.Flag, v, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// Values returns the field's values in c, formatted as flag values. Empty
// values are left out.
func (f Field) Values(c *Config) []string {
	var out []string
	for _, v := range f.get(c) {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// Default returns the field's default as shown in --help ("" when it has
// none or it is derived from other settings).
func (f Field) Default() string {
	d := Default()
	return strings.Join(f.Values(&d), ",")
}

// Apply sets the field in c from the values given on the command line. A
// list field is replaced by exactly these values.
func (f Field) Apply(c *Config, values []string) error {
	if f.Kind == KindList {
		// The setter appends; start from an empty list.
		if err := f.set(c, ""); err != nil {
			return err
		}
	}
	for _, v := range values {
		if f.Kind == KindList && v == "" {
			continue
		}
		if err := f.set(c, v); err != nil {
			return &FieldError{Flag: f.Name, Value: v, Err: err}
		}
	}
	return nil
}

// Lookup returns the field named name.
func Lookup(name string) (Field, bool) {
	for _, f := range Fields() {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// Args renders c as the arguments of `hapod run`, in table order, one
// "--name=value" per value. Parsing them with the same table gives c back.
func (c *Config) Args() []string {
	var args []string
	for _, f := range Fields() {
		for _, v := range f.Values(c) {
			args = append(args, "--"+f.Name+"="+v)
		}
	}
	return args
}

// ParseArgs is the inverse of Args: it applies `hapod run` arguments,
// "--name=value" each, to the defaults the way the run command's flags
// do. An argument that is not --name=value or names no field is an error.
func ParseArgs(args []string) (Config, error) {
	c := Default()
	var order []string
	values := map[string][]string{}
	for _, a := range args {
		name, v, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !ok || !strings.HasPrefix(a, "--") {
			return Config{}, fmt.Errorf("argument %q is not --name=value", a)
		}
		if _, seen := values[name]; !seen {
			order = append(order, name)
		}
		values[name] = append(values[name], v)
	}
	for _, name := range order {
		f, ok := Lookup(name)
		if !ok {
			return Config{}, fmt.Errorf("argument --%s: %w", name, ErrUnknownFlag)
		}
		if err := f.Apply(&c, values[name]); err != nil {
			return Config{}, err
		}
	}
	return c, nil
}

// ErrUnknownFlag is returned by ParseArgs for a name no field has.
var ErrUnknownFlag = errors.New("unknown flag")

// Fields returns the flag table. Every Config field has exactly one row;
// the round-trip test enforces it.
func Fields() []Field {
	return []Field{
		{
			Name: "vip", Kind: KindList, Category: CategoryVRRP,
			Usage: fmt.Sprintf("virtual IP, IPv4 or IPv6, optionally with its subnet's /prefix (default /32 or /128; at least /%d or /%d); repeat for more (at most %d), e.g. one of each family on a dual-stack cluster; 'dhcp' (init) leases an IPv4 VIP from the site's DHCP server", MinVIPBitsV4, MinVIPBitsV6, MaxVIPs),
			get:   func(c *Config) []string { return prefixStrings(c.VIP.Prefixes) },
			set: func(c *Config, s string) error {
				switch s {
				case "":
					c.VIP.Prefixes = nil
					return nil
				case "dhcp":
					c.VIP.DHCP = true
					return nil
				}
				p, err := parseVIP(s)
				c.VIP.Prefixes = append(c.VIP.Prefixes, p)
				return err
			},
		},
		{
			Name: "vip-dhcp", Kind: KindBool, Category: CategoryVRRP,
			Usage: "the VIP is leased by DHCP and the active node renews it (written by 'hapod init --vip dhcp')",
			get:   func(c *Config) []string { return []string{strconv.FormatBool(c.VIP.DHCP)} },
			set: func(c *Config, s string) (err error) {
				c.VIP.DHCP, err = strconv.ParseBool(s)
				return err
			},
		},
		{
			Name: "cluster-name", Kind: KindValue, Category: CategoryVRRP,
			Usage: "cluster name; makes a DHCP-leased VIP's client identity unique on the LAN",
			get:   func(c *Config) []string { return []string{c.VIP.ClusterName} },
			set: func(c *Config, s string) error {
				c.VIP.ClusterName = s
				if err := CheckText(s); err != nil {
					return err
				}
				if s == "" || len(s) > 63 || strings.ContainsAny(s, " /") {
					return errors.New("must be 1-63 characters without spaces or '/'")
				}
				return nil
			},
		},
		{
			Name: "interface", Kind: KindValue, Category: CategoryVRRP,
			Usage: "interface for the VIPs and VRRP, one for all of them (default: the interface the routes to the VIPs lead to, which must be the same for every VIP)",
			get:   func(c *Config) []string { return []string{c.VIP.Interface} },
			set: func(c *Config, s string) error {
				if err := checkInterfaceName(s); err != nil {
					return err
				}
				if s == "lo" {
					return errors.New("the VIP must live on the interface facing the other nodes, not loopback")
				}
				c.VIP.Interface = s
				return nil
			},
		},
		{
			Name: "vrid", Kind: KindValue, Category: CategoryVRRP,
			Usage: "VRRP virtual router ID, 1-255 (default: the last byte of the first IPv4 VIP, else of the first VIP)",
			get:   func(c *Config) []string { return []string{uintString(c.VRRP.VRID)} },
			set: func(c *Config, s string) error {
				n, err := parseUint(s, 1, 255)
				c.VRRP.VRID = uint8(n)
				return err
			},
		},
		{
			Name: "vrid6", Kind: KindValue, Category: CategoryVRRP,
			Usage: "VRID of the IPv6 virtual router when there are IPv4 VIPs too, 1-255 (default: --vrid; IPv4 and IPv6 routers are distinct, so they may share it)",
			get:   func(c *Config) []string { return []string{uintString(c.VRRP.VRID6)} },
			set: func(c *Config, s string) error {
				n, err := parseUint(s, 1, 255)
				c.VRRP.VRID6 = uint8(n)
				return err
			},
		},
		{
			Name: "priority", Kind: KindValue, Category: CategoryVRRP,
			Usage: "VRRP priority of this node, 1-254; the highest healthy node holds the VIP",
			get:   func(c *Config) []string { return []string{uintString(c.VRRP.Priority)} },
			set: func(c *Config, s string) error {
				n, err := parseUint(s, 1, 254)
				if err != nil && s == "255" {
					err = errors.New("255 is reserved for the address owner (RFC 9568); a VIP has none: use 1-254")
				}
				c.VRRP.Priority = uint8(n)
				return err
			},
		},
		{
			Name: "advert-interval", Kind: KindValue, Category: CategoryVRRP,
			Usage: "VRRP advertisement interval; failover takes about 3.5 of them (default: 100ms for v3, 1s for v2)",
			get:   func(c *Config) []string { return []string{durationString(c.VRRP.AdvertInterval)} },
			set: func(c *Config, s string) (err error) {
				c.VRRP.AdvertInterval, err = parseDuration(s)
				return err
			},
		},
		{
			Name: "vrrp-version", Kind: KindValue, Category: CategoryVRRP,
			Usage: "VRRP version: 3 (RFC 9568, IPv4 and IPv6) or 2 (RFC 3768, IPv4, optional password)",
			get:   func(c *Config) []string { return []string{intString(c.VRRP.Version)} },
			set: func(c *Config, s string) error {
				n, err := parseUint(s, 2, 3)
				c.VRRP.Version = int(n)
				return err
			},
		},
		{
			Name: "preempt", Kind: KindBool, Category: CategoryVRRP,
			Usage: "let a node take the VIP from a holder of lower priority; with equal priorities that happens only when the holder is degraded",
			get:   func(c *Config) []string { return []string{strconv.FormatBool(c.VRRP.Preempt)} },
			set: func(c *Config, s string) (err error) {
				c.VRRP.Preempt, err = strconv.ParseBool(s)
				return err
			},
		},
		{
			Name: "peer", Kind: KindList, Category: CategoryVRRP,
			Usage: fmt.Sprintf("address of another control-plane node for unicast VRRP (repeat per node, at most %d; with VIPs of both families, give each node's address of each family; default: multicast)", MaxPeers),
			get:   func(c *Config) []string { return addrStrings(c.VRRP.Peers) },
			set: func(c *Config, s string) error {
				if s == "" {
					c.VRRP.Peers = nil
					return nil
				}
				a, err := parseAddr(s)
				c.VRRP.Peers = append(c.VRRP.Peers, a)
				return err
			},
		},
		{
			Name: "auth-pass-file", Kind: KindValue, Category: CategoryVRRP,
			Usage: "file holding the VRRPv2 simple password (at most 8 bytes); the secret stays out of the pod spec",
			get:   func(c *Config) []string { return []string{c.VRRP.AuthPassFile} },
			set: func(c *Config, s string) error {
				c.VRRP.AuthPassFile = s
				return checkAbsPath(s)
			},
		},
		{
			Name: "port", Kind: KindValue, Category: CategoryProxy,
			Usage: "the cluster endpoint's port on the VIP, what kubeconfigs use (kubeadm's 6443, or e.g. 8443 for a plain listener beside the apiservers)",
			get:   func(c *Config) []string { return []string{uintString(c.Proxy.Port)} },
			set: func(c *Config, s string) error {
				n, err := parseUint(s, 1, 65535)
				c.Proxy.Port = uint16(n)
				return err
			},
		},
		{
			Name: "listen-port", Kind: KindValue, Category: CategoryProxy,
			Usage: fmt.Sprintf("port the proxy listens on, on the VIP; when it differs from --port, an nftables rule in hapod's own table redirects VIP:--port to it while this node has a healthy backend (default: %d when --port is the apiservers' port, which they bind on 0.0.0.0; else --port)", DefaultListenPort),
			get:   func(c *Config) []string { return []string{uintString(c.Proxy.ListenPort)} },
			set: func(c *Config, s string) error {
				n, err := parseUint(s, 1, 65535)
				c.Proxy.ListenPort = uint16(n)
				return err
			},
		},
		{
			Name: "backend", Kind: KindList, Category: CategoryProxy,
			Usage: fmt.Sprintf("kube-apiserver HOST:PORT behind the proxy (repeat per control-plane node, at most %d)", MaxBackends),
			get:   func(c *Config) []string { return addrPortStrings(c.Proxy.Backends) },
			set: func(c *Config, s string) error {
				if s == "" {
					c.Proxy.Backends = nil
					return nil
				}
				ap, err := parseAddrPort(s)
				c.Proxy.Backends = append(c.Proxy.Backends, ap)
				return err
			},
		},
		{
			Name: "balance", Kind: KindValue, Category: CategoryProxy,
			Usage: "backend selection: " + orList(proxy.PolicyNames()),
			get:   func(c *Config) []string { return []string{string(c.Proxy.Balance)} },
			set: func(c *Config, s string) error {
				c.Proxy.Balance = proxy.PolicyName(s)
				return oneOf(s, proxy.PolicyNames()...)
			},
		},
		{
			Name: "connect-timeout", Kind: KindValue, Category: CategoryProxy,
			Usage: fmt.Sprintf("time to connect to a backend, retries on other backends included (at least %v); one attempt waits at most 250ms while another backend is left", MinConnectTimeout),
			get:   func(c *Config) []string { return []string{durationString(c.Proxy.ConnectTimeout)} },
			set: func(c *Config, s string) (err error) {
				c.Proxy.ConnectTimeout, err = parseDuration(s)
				return err
			},
		},
		{
			Name: "idle-timeout", Kind: KindValue, Category: CategoryProxy,
			Usage: fmt.Sprintf("close a connection idle this long in both directions (watches are often quiet; at least %v)", MinIdleTimeout),
			get:   func(c *Config) []string { return []string{durationString(c.Proxy.IdleTimeout)} },
			set: func(c *Config, s string) (err error) {
				c.Proxy.IdleTimeout, err = parseDuration(s)
				return err
			},
		},
		{
			Name: "max-conns", Kind: KindValue, Category: CategoryProxy,
			Usage: "maximum concurrent client connections; excess ones are refused and counted",
			get:   func(c *Config) []string { return []string{intString(c.Proxy.MaxConns)} },
			set: func(c *Config, s string) error {
				n, err := parseUint(s, 1, 1<<24)
				c.Proxy.MaxConns = int(n)
				return err
			},
		},
		{
			Name: "recv-buffer", Kind: KindValue, Category: CategoryProxy,
			Usage: "receive buffer of each proxied socket in bytes; 0 leaves it to the kernel's autotuning (which gives distant clients a larger window)",
			get:   func(c *Config) []string { return []string{strconv.Itoa(c.Proxy.RecvBuffer)} },
			set: func(c *Config, s string) error {
				n, err := parseUint(s, 0, 1<<30)
				c.Proxy.RecvBuffer = int(n)
				return err
			},
		},
		{
			Name: "splice", Kind: KindBool, Category: CategoryProxy,
			Usage: "move a connection's data with splice(2) once it has carried 16 MiB of bulk, instead of copying it: less proxy CPU for one fast stream, slower for several at once",
			get:   func(c *Config) []string { return []string{strconv.FormatBool(c.Proxy.Splice)} },
			set: func(c *Config, s string) (err error) {
				c.Proxy.Splice, err = strconv.ParseBool(s)
				return err
			},
		},
		{
			Name: "close-on-down", Kind: KindBool, Category: CategoryProxy,
			Usage: "close a backend's connections when it fails its health check, so clients reconnect at once",
			get:   func(c *Config) []string { return []string{strconv.FormatBool(c.Proxy.CloseOnDown)} },
			set: func(c *Config, s string) (err error) {
				c.Proxy.CloseOnDown, err = strconv.ParseBool(s)
				return err
			},
		},
		{
			Name: "rebalance", Kind: KindBool, Category: CategoryProxy,
			Usage: "when a backend returns, gently close the oldest connections on the busiest ones until the spread is even",
			get:   func(c *Config) []string { return []string{strconv.FormatBool(c.Proxy.Rebalance)} },
			set: func(c *Config, s string) (err error) {
				c.Proxy.Rebalance, err = strconv.ParseBool(s)
				return err
			},
		},
		{
			Name: "health-check", Kind: KindValue, Category: CategoryHealth,
			Usage: "backend check: https (GET --health-path, expect 200), tls (handshake) or tcp (connect)",
			get:   func(c *Config) []string { return []string{string(c.Health.Check)} },
			set: func(c *Config, s string) error {
				c.Health.Check = health.Kind(s)
				return oneOf(s, health.Kinds()...)
			},
		},
		{
			Name: "health-path", Kind: KindValue, Category: CategoryHealth,
			Usage: fmt.Sprintf("path of the https check, printable ASCII without spaces, at most %d bytes; kube-apiserver's /readyz turns 503 while it shuts down", MaxHealthPath),
			get:   func(c *Config) []string { return []string{c.Health.Path} },
			set: func(c *Config, s string) error {
				c.Health.Path = s
				return checkHealthPath(s)
			},
		},
		{
			Name: "health-interval", Kind: KindValue, Category: CategoryHealth,
			Usage: fmt.Sprintf("time between two checks of one backend (at least %v)", MinHealthInterval),
			get:   func(c *Config) []string { return []string{durationString(c.Health.Interval)} },
			set: func(c *Config, s string) (err error) {
				c.Health.Interval, err = parseDuration(s)
				return err
			},
		},
		{
			Name: "health-timeout", Kind: KindValue, Category: CategoryHealth,
			Usage: fmt.Sprintf("time one check may take (at least %v, at most --health-interval)", MinHealthTimeout),
			get:   func(c *Config) []string { return []string{durationString(c.Health.Timeout)} },
			set: func(c *Config, s string) (err error) {
				c.Health.Timeout, err = parseDuration(s)
				return err
			},
		},
		{
			Name: "health-rise", Kind: KindValue, Category: CategoryHealth,
			Usage: "successful checks in a row that bring a backend up",
			get:   func(c *Config) []string { return []string{intString(c.Health.Rise)} },
			set: func(c *Config, s string) error {
				n, err := parseUint(s, 1, 100)
				c.Health.Rise = int(n)
				return err
			},
		},
		{
			Name: "health-fall", Kind: KindValue, Category: CategoryHealth,
			Usage: "failed checks in a row that take a backend down",
			get:   func(c *Config) []string { return []string{intString(c.Health.Fall)} },
			set: func(c *Config, s string) error {
				n, err := parseUint(s, 1, 100)
				c.Health.Fall = int(n)
				return err
			},
		},
		{
			Name: "health-ca-file", Kind: KindValue, Category: CategoryHealth,
			Usage: "CA bundle to verify the apiservers' certificates, e.g. /etc/kubernetes/pki/ca.crt (default: no verification)",
			get:   func(c *Config) []string { return []string{c.Health.CAFile} },
			set: func(c *Config, s string) error {
				c.Health.CAFile = s
				return checkAbsPath(s)
			},
		},
		{
			Name: "no-backend-weight", Kind: KindValue, Category: CategoryHealth,
			Usage: "subtracted from the VRRP priority while no backend is healthy, so a node that reaches an apiserver takes the VIP (0 disables)",
			get:   func(c *Config) []string { return []string{strconv.Itoa(c.Health.Weight)} },
			set: func(c *Config, s string) error {
				n, err := parseUint(s, 0, 253)
				c.Health.Weight = int(n)
				return err
			},
		},
		{
			Name: "discover", Kind: KindBool, Category: CategoryMembership,
			Usage: "add the kube-apiservers the API lists (default/kubernetes Endpoints, read with --kubeconfig) to the backends, and in unicast mode to the peers; --backend and --peer stay the floor",
			get:   func(c *Config) []string { return []string{strconv.FormatBool(c.Membership.Discover)} },
			set: func(c *Config, s string) (err error) {
				c.Membership.Discover, err = strconv.ParseBool(s)
				return err
			},
		},
		{
			Name: "kubeconfig", Kind: KindValue, Category: CategoryMembership,
			Usage: "the node identity's kubeconfig discovery reads the API with (the kubelet's; never admin.conf); discovery waits until it exists",
			get:   func(c *Config) []string { return []string{c.Membership.Kubeconfig} },
			set: func(c *Config, s string) error {
				c.Membership.Kubeconfig = s
				return checkAbsPath(s)
			},
		},
		{
			Name: "state-dir", Kind: KindValue, Category: CategoryMembership,
			Usage: "host directory keeping the last known members, so that a restart during an API outage starts with them",
			get:   func(c *Config) []string { return []string{c.Membership.StateDir} },
			set: func(c *Config, s string) error {
				c.Membership.StateDir = s
				return checkAbsPath(s)
			},
		},
		{
			Name: "member-grace", Kind: KindValue, Category: CategoryMembership,
			Usage: fmt.Sprintf("how long a discovered member must be missing from the API's list, the API answering all along, before it is removed (at least %v)", MinMemberGrace),
			get:   func(c *Config) []string { return []string{durationString(c.Membership.Grace)} },
			set: func(c *Config, s string) (err error) {
				c.Membership.Grace, err = parseDuration(s)
				return err
			},
		},
		{
			Name: "status-addr", Kind: KindValue, Category: CategoryStatus,
			Usage: "address of the status server (/healthz, /readyz, /metrics, /status): one every node has, never the VIP (kubelet's liveness probe asks it)",
			get:   func(c *Config) []string { return []string{addrPortString(c.Status.Addr)} },
			set: func(c *Config, s string) (err error) {
				c.Status.Addr, err = parseAddrPort(s)
				return err
			},
		},
		{
			Name: "log-format", Kind: KindValue, Category: CategoryStatus,
			Usage: "log format: text or json",
			get:   func(c *Config) []string { return []string{c.Log.Format} },
			set: func(c *Config, s string) error {
				c.Log.Format = s
				return oneOf(s, "text", "json")
			},
		},
		{
			Name: "log-level", Kind: KindValue, Category: CategoryStatus,
			Usage: "log level: debug, info, warn or error",
			get:   func(c *Config) []string { return []string{c.Log.Level} },
			set: func(c *Config, s string) error {
				c.Log.Level = s
				return oneOf(s, "debug", "info", "warn", "error")
			},
		},
	}
}

func parseVIP(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, errors.New("not an IP address with a /prefix")
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, errors.New("IPv4-mapped IPv6 address: write the IPv4 address")
		}
		return p, nil
	}
	a, err := parseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, errors.New("not an IP address")
	}
	if a.Zone() != "" {
		return netip.Addr{}, errors.New("an IPv6 zone is not allowed; use --interface")
	}
	if a.Is4In6() {
		return netip.Addr{}, errors.New("IPv4-mapped IPv6 address: write the IPv4 address")
	}
	return a, nil
}

func parseAddrPort(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err == nil {
		if ap.Port() == 0 {
			return netip.AddrPort{}, errors.New("port 0 is not a port")
		}
		if _, err := parseAddr(ap.Addr().String()); err != nil {
			return netip.AddrPort{}, err
		}
		return ap, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPort{}, fmt.Errorf("missing port: want HOST:PORT, e.g. %s", netip.AddrPortFrom(a, DefaultAPIServerPort))
	}
	host := s
	if h, _, ok := strings.Cut(s, ":"); ok && !strings.Contains(s, "[") {
		host = h
	}
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err != nil {
		return netip.AddrPort{}, errors.New("want IP:PORT (IPv6 as [ADDR]:PORT); host names are not supported")
	}
	return netip.AddrPort{}, errors.New("want IP:PORT with a port of 1-65535 (IPv6 as [ADDR]:PORT)")
}

func parseUint(s string, lo, hi uint64) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("must be a whole number from %d to %d", lo, hi)
	}
	return n, nil
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("not a duration (e.g. 100ms, 2s, 1h)")
	}
	if d <= 0 {
		return 0, errors.New("must be positive")
	}
	return d, nil
}

// oneOf checks that s is one of the valid names, which their own package
// lists (proxy.PolicyNames, health.Kinds) or config does (log settings).
func oneOf[T ~string](s string, valid ...T) error {
	if slices.Contains(valid, T(s)) {
		return nil
	}
	names := make([]string, len(valid))
	for i, v := range valid {
		names[i] = string(v)
	}
	return fmt.Errorf("must be one of %s", strings.Join(names, ", "))
}

// orList spells names as "a, b or c".
func orList[T ~string](names []T) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// MaxHealthPath bounds --health-path: it goes into every check's request
// line.
const MaxHealthPath = 1024

func checkHealthPath(s string) error {
	switch {
	case !strings.HasPrefix(s, "/"):
		return errors.New("must start with /")
	case len(s) > MaxHealthPath:
		return fmt.Errorf("must be at most %d bytes", MaxHealthPath)
	}
	if err := CheckText(s); err != nil {
		return err
	}
	for _, r := range s {
		if r == ' ' {
			return errors.New("must not contain a space (percent-encode it as %20)")
		}
		if r > unicode.MaxASCII {
			return fmt.Errorf("must be ASCII (percent-encode %q)", r)
		}
	}
	return nil
}

// CheckText refuses a string that would not read as one line of plain
// text: invalid UTF-8, control characters (newlines, escapes, NUL) and
// other unprintable characters. Settings end up in the pod spec, in
// request lines and in one-line error messages.
func CheckText(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("control character %q", r)
		}
		if !unicode.IsPrint(r) {
			return fmt.Errorf("unprintable character %q", r)
		}
	}
	return nil
}

func checkInterfaceName(s string) error {
	if err := CheckText(s); err != nil {
		return err
	}
	if len(s) == 0 || len(s) > 15 || strings.ContainsAny(s, "/ \t\n:") || s == "." || s == ".." {
		return errors.New("not a Linux interface name (1-15 characters, no '/', ':' or spaces)")
	}
	return nil
}

func checkAbsPath(s string) error {
	if err := CheckText(s); err != nil {
		return err
	}
	if !strings.HasPrefix(s, "/") {
		return errors.New("must be an absolute path (it is mounted into the pod at the same path)")
	}
	return nil
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func addrPortString(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}

func uintString[T uint8 | uint16](n T) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(n), 10)
}

func intString(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// durationString formats d so it reads well in a manifest: "1h", not "1h0m0s".
func durationString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") { // "2m0s" -> "2m", "1h0m0s" -> "1h0m"
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") { // "1h0m" -> "1h"
		s = s[:len(s)-2]
	}
	return s
}

func addrStrings(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

func addrPortStrings(aps []netip.AddrPort) []string {
	out := make([]string, len(aps))
	for i, ap := range aps {
		out[i] = ap.String()
	}
	return out
}
