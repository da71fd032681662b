package config

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hapod/hapod/pkg/health"
	"github.com/hapod/hapod/pkg/proxy"
)

// full returns a valid Config in which every field differs from its
// default, so a round trip proves each value travelled.
func full() Config {
	return Config{
		VIP: VIP{Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.10/24")}, Interface: "eth1", DHCP: true, ClusterName: "prod-eu"},
		VRRP: VRRP{
			VRID: 42, Priority: 150, AdvertInterval: 2 * time.Second, Version: 2, Preempt: false,
			Peers:        []netip.Addr{netip.MustParseAddr("198.18.0.12"), netip.MustParseAddr("198.18.0.13")},
			AuthPassFile: "/etc/hapod/vrrp-pass",
		},
		Proxy: Proxy{
			Port:           9443,
			ListenPort:     9444,
			Backends:       []netip.AddrPort{netip.MustParseAddrPort("198.18.0.11:6443"), netip.MustParseAddrPort("198.18.0.12:6443")},
			Balance:        "round-robin",
			ConnectTimeout: 1500 * time.Millisecond,
			IdleTimeout:    90 * time.Minute,
			MaxConns:       1000,
			RecvBuffer:     0,
			Splice:         true,
			CloseOnDown:    false,
			Rebalance:      true,
		},
		Health: Health{
			Check: "tls", Path: "/livez", Interval: 5 * time.Second, Timeout: 2 * time.Second,
			Rise: 4, Fall: 5, CAFile: "/etc/kubernetes/pki/ca.crt", Weight: 0,
		},
		Membership: Membership{Discover: false, Kubeconfig: "/etc/hapod/node.conf", StateDir: "/run/hapod", Grace: 90 * time.Second},
		Status:     Status{Addr: netip.MustParseAddrPort("[::1]:9999")},
		Log:        Log{Format: "json", Level: "debug"},
	}
}

// fullDualStack is full's counterpart for the fields a DHCP-leased VIP
// excludes: VIPs of both families, each family's router with its own
// VRID and peers.
func fullDualStack() Config {
	c := full()
	c.VIP.DHCP = false
	c.VIP.Prefixes = []netip.Prefix{
		netip.MustParsePrefix("2001:db8::10/64"), netip.MustParsePrefix("198.18.0.10/24"), netip.MustParsePrefix("198.18.0.20/24"),
	}
	c.VRRP.VRID6 = 43
	c.VRRP.Version, c.VRRP.AdvertInterval, c.VRRP.AuthPassFile = 3, 200*time.Millisecond, ""
	c.VRRP.Peers = append(c.VRRP.Peers, netip.MustParseAddr("2001:db8::12"))
	c.Proxy.Backends = append(c.Proxy.Backends, netip.MustParseAddrPort("[2001:db8::11]:6443"))
	return c
}

// leaves calls fn for every leaf field of v with its dotted path.
func leaves(path string, v reflect.Value, fn func(string, reflect.Value)) {
	if v.Kind() == reflect.Struct && v.Type().PkgPath() == "github.com/hapod/hapod/pkg/config" {
		for i := 0; i < v.NumField(); i++ {
			leaves(path+"."+v.Type().Field(i).Name, v.Field(i), fn)
		}
		return
	}
	fn(path, v)
}

func TestFullDiffersFromDefaultEverywhere(t *testing.T) {
	d := Default()
	dv := map[string]reflect.Value{}
	leaves("Config", reflect.ValueOf(d), func(p string, v reflect.Value) { dv[p] = v })
	differs := map[string]bool{}
	for _, f := range []Config{full(), fullDualStack()} {
		leaves("Config", reflect.ValueOf(f), func(p string, v reflect.Value) {
			differs[p] = differs[p] || !reflect.DeepEqual(v.Interface(), dv[p].Interface())
		})
	}
	for p, ok := range differs {
		if !ok {
			t.Errorf("%s: full or fullDualStack must differ from the default (%v) so the round trip proves it", p, dv[p])
		}
	}
}

func TestArgsRoundTrip(t *testing.T) {
	for _, c := range []Config{full(), fullDualStack(), func() Config {
		c := Default()
		c.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("2001:db8::10/64")}
		c.Proxy.Backends = []netip.AddrPort{netip.MustParseAddrPort("[2001:db8::11]:6443")}
		c.Complete()
		return c
	}()} {
		if err := c.Validate(); err != nil {
			t.Fatalf("test config invalid: %v", err)
		}
		got, err := ParseArgs(c.Args())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("round trip changed the config\n got: %+v\nwant: %+v\nargs: %q", got, c, c.Args())
		}
	}
}

func TestArgsStable(t *testing.T) {
	c := full()
	want := []string{
		"--vip=198.18.0.10/24", "--vip-dhcp=true", "--cluster-name=prod-eu", "--interface=eth1", "--vrid=42", "--priority=150", "--advert-interval=2s",
		"--vrrp-version=2", "--preempt=false", "--peer=198.18.0.12", "--peer=198.18.0.13",
		"--auth-pass-file=/etc/hapod/vrrp-pass", "--port=9443", "--listen-port=9444", "--backend=198.18.0.11:6443",
		"--backend=198.18.0.12:6443", "--balance=round-robin", "--connect-timeout=1.5s",
		"--idle-timeout=1h30m", "--max-conns=1000", "--recv-buffer=0", "--splice=true", "--close-on-down=false",
		"--rebalance=true", "--health-check=tls", "--health-path=/livez", "--health-interval=5s",
		"--health-timeout=2s", "--health-rise=4", "--health-fall=5", "--health-ca-file=/etc/kubernetes/pki/ca.crt",
		"--no-backend-weight=0", "--discover=false", "--kubeconfig=/etc/hapod/node.conf", "--state-dir=/run/hapod", "--member-grace=1m30s", "--status-addr=[::1]:9999", "--log-format=json", "--log-level=debug",
	}
	if got := c.Args(); !reflect.DeepEqual(got, want) {
		t.Errorf("Args() =\n%q\nwant\n%q", got, want)
	}
}

func TestFieldNamesUniqueAndDocumented(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range Fields() {
		if seen[f.Name] {
			t.Errorf("flag %q appears twice", f.Name)
		}
		seen[f.Name] = true
		if f.Usage == "" || f.Category == "" || f.Kind == 0 {
			t.Errorf("flag %q lacks usage, category or kind", f.Name)
		}
	}
}

func TestDHCPSettings(t *testing.T) {
	c := Default()
	f, _ := Lookup("vip")
	if err := f.Apply(&c, []string{"dhcp"}); err != nil || !c.VIP.DHCP || len(c.VIP.Prefixes) > 0 {
		t.Fatalf("--vip dhcp: %v %+v", err, c.VIP)
	}
	c.Complete()
	if c.VRRP.VRID != DeriveVRIDFromName("kubernetes") || c.VRRP.VRID == 0 {
		t.Errorf("VRID of a DHCP VIP = %d, want the cluster name's", c.VRRP.VRID)
	}
	c.Proxy.Backends = []netip.AddrPort{netip.MustParseAddrPort("198.18.0.11:6443")}
	var fe *FieldError
	if err := c.Validate(); !errors.As(err, &fe) || fe.Flag != "vip-dhcp" || !strings.Contains(err.Error(), "hapod init --vip dhcp") {
		t.Errorf("DHCP without a leased address: %v", err)
	}
	c.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("2001:db8::10/64")}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "DHCP leases IPv4") {
		t.Errorf("DHCP with IPv6: %v", err)
	}
	if DeriveVRIDFromName("a") == DeriveVRIDFromName("b") {
		t.Error("two cluster names share a VRID")
	}
}

func TestComplete(t *testing.T) {
	for _, tc := range []struct {
		vip      string
		version  int
		wantVRID uint8
		wantInt  time.Duration
	}{
		{"198.18.0.10/24", 3, 10, 100 * time.Millisecond},
		{"198.18.1.0/23", 3, 1, 100 * time.Millisecond},
		{"198.18.0.77", 2, 77, time.Second},
		{"2001:db8::a:ff", 3, 255, 100 * time.Millisecond},
	} {
		c := Default()
		c.VRRP.Version = tc.version
		f, _ := Lookup("vip")
		if err := f.Apply(&c, []string{tc.vip}); err != nil {
			t.Fatal(err)
		}
		c.Complete()
		if c.VRRP.VRID != tc.wantVRID || c.VRRP.AdvertInterval != tc.wantInt {
			t.Errorf("%s v%d: VRID %d interval %v, want %d %v", tc.vip, tc.version, c.VRRP.VRID, c.VRRP.AdvertInterval, tc.wantVRID, tc.wantInt)
		}
	}
}

func TestApplyErrors(t *testing.T) {
	for _, tc := range []struct {
		flag, value, want string
	}{
		{"vip", "198.18.0.300", "--vip 198.18.0.300: not an IP address"},
		{"vip", "198.18.0.10/33", "--vip 198.18.0.10/33: not an IP address with a /prefix"},
		{"vip", "fe80::1%eth0", "--vip fe80::1%eth0: an IPv6 zone is not allowed"},
		{"vip", "::ffff:198.18.0.1", "IPv4-mapped"},
		{"vrid", "0", "--vrid 0: must be a whole number from 1 to 255"},
		{"vrid", "256", "--vrid 256: must be a whole number from 1 to 255"},
		{"priority", "255", "--priority 255: 255 is reserved for the address owner"},
		{"priority", "0", "--priority 0: must be a whole number from 1 to 254"},
		{"advert-interval", "fast", "--advert-interval fast: not a duration"},
		{"advert-interval", "-1s", "must be positive"},
		{"vrrp-version", "4", "--vrrp-version 4: must be a whole number from 2 to 3"},
		{"backend", "198.18.0.11", "--backend 198.18.0.11: missing port: want HOST:PORT, e.g. 198.18.0.11:6443"},
		{"backend", "2001:db8::11", "e.g. [2001:db8::11]:6443"},
		{"backend", "api.example:6443", "host names are not supported"},
		{"backend", "198.18.0.11:0", "port 0"},
		{"backend", "198.18.0.11:70000", "port of 1-65535"},
		{"peer", "nope", "--peer nope: not an IP address"},
		{"port", "0", "--port 0: must be a whole number from 1 to 65535"},
		{"auth-pass-file", "pass.txt", "must be an absolute path"},
		{"interface", "a/b", "not a Linux interface name"},
		{"interface", "lo", "not loopback"},
		{"interface", "averyveryverylongname", "not a Linux interface name"},
		{"balance", "random", "must be one of least-conn, round-robin"},
		{"health-check", "icmp", "must be one of https, tls, tcp"},
		{"health-path", "readyz", "must start with /"},
		{"health-path", "/readyz\r\nX-Evil: 1", `--health-path "/readyz\r\nX-Evil: 1": control character '\r'`},
		{"health-path", "/ready z", `space`},
		{"health-path", "/" + strings.Repeat("a", 1024), "at most 1024 bytes"},
		{"cluster-name", "prod\x00", "control character"},
		{"interface", "eth\x01", "control character"},
		{"auth-pass-file", "/etc/hapod/pass\n", "control character"},
		{"health-ca-file", "/etc/kubernetes/pki/ca.crt\x1b[2J", "control character"},
		{"preempt", "maybe", "--preempt maybe"},
		{"status-addr", "localhost:1", "host names are not supported"},
		{"log-format", "xml", "must be one of text, json"},
		{"recv-buffer", "-1", "--recv-buffer -1: must be a whole number from 0 to 1073741824"},
		{"recv-buffer", "2MiB", "--recv-buffer 2MiB: must be a whole number"},
	} {
		c := Default()
		f, ok := Lookup(tc.flag)
		if !ok {
			t.Fatalf("no flag %q", tc.flag)
		}
		err := f.Apply(&c, []string{tc.value})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Flag != tc.flag || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--%s %s: got %v, want a FieldError containing %q", tc.flag, tc.value, err, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	base := func() Config {
		c := Default()
		c.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.18.0.10/24")}
		c.Proxy.Backends = []netip.AddrPort{netip.MustParseAddrPort("198.18.0.11:6443")}
		c.Complete()
		return c
	}
	if c := base(); c.Validate() != nil {
		t.Fatalf("base config invalid: %v", c.Validate())
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		flag   string
		want   string
	}{
		{"no vip", func(c *Config) { c.VIP.Prefixes = nil }, "vip", "required"},
		{"network address", func(c *Config) { c.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")} }, "vip", "network address"},
		{"broadcast address", func(c *Config) { c.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.18.0.255/24")} }, "vip", "broadcast address"},
		{"multicast vip", func(c *Config) { c.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("224.0.0.18/32")} }, "vip", "not a usable unicast"},
		{"link-local vip", func(c *Config) { c.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("fe80::1/64")} }, "vip", "not a usable unicast"},
		{"v3 interval too short", func(c *Config) { c.VRRP.AdvertInterval = 5 * time.Millisecond }, "advert-interval", "VRRPv3 allows 10ms to 40.95s"},
		{"v3 interval too long", func(c *Config) { c.VRRP.AdvertInterval = 41 * time.Second }, "advert-interval", "VRRPv3 allows"},
		{"v3 interval not centiseconds", func(c *Config) { c.VRRP.AdvertInterval = 105 * time.Millisecond }, "advert-interval", "multiple of 10ms"},
		{"v2 interval below 1s", func(c *Config) { c.VRRP.Version = 2; c.VRRP.AdvertInterval = 100 * time.Millisecond }, "advert-interval", "VRRPv2 allows 1s to 4m15s"},
		{"v2 interval fractional", func(c *Config) { c.VRRP.Version = 2; c.VRRP.AdvertInterval = 1500 * time.Millisecond }, "advert-interval", "whole seconds"},
		{"v2 with IPv6", func(c *Config) {
			c.VRRP.Version = 2
			c.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("2001:db8::10/64")}
			c.VRRP.AdvertInterval = time.Second
		}, "vrrp-version", "VRRPv2 is IPv4 only"},
		{"auth with v3", func(c *Config) { c.VRRP.AuthPassFile = "/etc/hapod/pass" }, "auth-pass-file", "VRRPv3 has no authentication"},
		{"peer other family", func(c *Config) { c.VRRP.Peers = []netip.Addr{netip.MustParseAddr("2001:db8::2")} }, "peer", "no VIP is of its address family (ipv6)"},
		// Issue 22: several VIPs, one router per family.
		{"vip twice", func(c *Config) { c.VIP.Prefixes = append(c.VIP.Prefixes, netip.MustParsePrefix("198.18.0.10/32")) }, "vip", "given twice"},
		{"second vip unusable", func(c *Config) { c.VIP.Prefixes = append(c.VIP.Prefixes, netip.MustParsePrefix("198.18.0.0/24")) }, "vip", "network address"},
		{"too many vips", func(c *Config) {
			for i := range MaxVIPs {
				c.VIP.Prefixes = append(c.VIP.Prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 2, byte(i + 1)}), 24))
			}
		}, "vip", "at most 16 VIPs, got 17"},
		{"dhcp beside another vip", func(c *Config) {
			c.VIP.DHCP = true
			c.VIP.Prefixes = append(c.VIP.Prefixes, netip.MustParsePrefix("2001:db8::10/64"))
		}, "vip", "a DHCP-leased VIP is the only one"},
		{"v2 with an IPv6 vip beside", func(c *Config) {
			c.VRRP.Version, c.VRRP.AdvertInterval = 2, time.Second
			c.VIP.Prefixes = append(c.VIP.Prefixes, netip.MustParsePrefix("2001:db8::10/64"))
		}, "vrrp-version", "VRRPv2 is IPv4 only"},
		{"vrid6 with one family", func(c *Config) { c.VRRP.VRID6 = 7 }, "vrid6", "beside an IPv4 one"},
		{"unicast peers of one family only", func(c *Config) {
			c.VIP.Prefixes = append(c.VIP.Prefixes, netip.MustParsePrefix("2001:db8::10/64"))
			c.VRRP.Peers = []netip.Addr{netip.MustParseAddr("198.18.0.12")}
		}, "peer", "ipv6 addresses too, for the ipv6 VIP 2001:db8::10/64"},
		{"backend on the second vip", func(c *Config) {
			c.VIP.Prefixes = append(c.VIP.Prefixes, netip.MustParsePrefix("198.18.0.20/24"))
			c.Proxy.Backends = []netip.AddrPort{netip.MustParseAddrPort("198.18.0.20:6443")}
		}, "backend", "would loop"},
		{"status on the ipv6 vip", func(c *Config) {
			c.VIP.Prefixes = append(c.VIP.Prefixes, netip.MustParsePrefix("2001:db8::10/64"))
			c.Status.Addr = netip.MustParseAddrPort("[2001:db8::10]:10270")
		}, "status-addr", "is a VIP"},
		{"peer is vip", func(c *Config) { c.VRRP.Peers = []netip.Addr{netip.MustParseAddr("198.18.0.10")} }, "peer", "is a VIP"},
		{"peer twice", func(c *Config) {
			c.VRRP.Peers = []netip.Addr{netip.MustParseAddr("198.18.0.12"), netip.MustParseAddr("198.18.0.12")}
		}, "peer", "given twice"},
		{"no backend", func(c *Config) { c.Proxy.Backends = nil }, "backend", "at least one"},
		{"backend loops", func(c *Config) { c.Proxy.Backends = []netip.AddrPort{netip.MustParseAddrPort("198.18.0.10:6443")} }, "backend", "would loop"},
		{"backend loops through the redirect", func(c *Config) { c.Proxy.Backends = []netip.AddrPort{netip.MustParseAddrPort("198.18.0.10:9445")} }, "backend", "would loop"},
		{"backend on vip", func(c *Config) { c.Proxy.Backends = []netip.AddrPort{netip.MustParseAddrPort("198.18.0.10:7000")} }, "backend", "is on the VIP"},
		{"no listen port", func(c *Config) { c.Proxy.ListenPort = 0 }, "listen-port", "must be 1-65535"},
		{"redirect to the apiservers' port", func(c *Config) { c.Proxy.Port, c.Proxy.ListenPort = 8443, 6443 }, "listen-port", "is the kube-apiservers' port"},
		{"backend twice", func(c *Config) {
			c.Proxy.Backends = append(c.Proxy.Backends, c.Proxy.Backends[0])
		}, "backend", "given twice"},
		{"timeout above interval", func(c *Config) { c.Health.Timeout = 3 * time.Second }, "health-timeout", "at most --health-interval"},
		{"weight above priority", func(c *Config) { c.Health.Weight = 100 }, "no-backend-weight", "must be 0-99"},
		{"tiny receive buffer", func(c *Config) { c.Proxy.RecvBuffer = 100 }, "recv-buffer", "at least 4096"},
		{"status collides", func(c *Config) { c.Status.Addr = netip.MustParseAddrPort("0.0.0.0:9445") }, "status-addr", "collides"},
		// Issue 19, item 12: input bounds.
		{"vip /0", func(c *Config) { c.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.18.0.10/0")} }, "vip", "prefix /0 is shorter than /8"},
		{"vip /7", func(c *Config) { c.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.18.0.10/7")} }, "vip", "shorter than /8"},
		{"ipv6 vip /47", func(c *Config) {
			c.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("2001:db8::10/47")}
			c.Proxy.Backends = []netip.AddrPort{netip.MustParseAddrPort("[2001:db8::11]:6443")}
		}, "vip", "shorter than /48"},
		{"peer limited broadcast", func(c *Config) { c.VRRP.Peers = []netip.Addr{netip.MustParseAddr("255.255.255.255")} }, "peer", "broadcast"},
		{"peer subnet broadcast", func(c *Config) { c.VRRP.Peers = []netip.Addr{netip.MustParseAddr("198.18.0.255")} }, "peer", "broadcast address of the VIP's /24"},
		{"peer network address", func(c *Config) { c.VRRP.Peers = []netip.Addr{netip.MustParseAddr("198.18.0.0")} }, "peer", "network address of the VIP's /24"},
		{"peer link-local", func(c *Config) {
			c.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("2001:db8::10/64")}
			c.Proxy.Backends = []netip.AddrPort{netip.MustParseAddrPort("[2001:db8::11]:6443")}
			c.VRRP.Peers = []netip.Addr{netip.MustParseAddr("fe80::12")}
		}, "peer", "link-local"},
		{"backend limited broadcast", func(c *Config) { c.Proxy.Backends = []netip.AddrPort{netip.MustParseAddrPort("255.255.255.255:6443")} }, "backend", "broadcast"},
		{"backend subnet broadcast", func(c *Config) { c.Proxy.Backends = []netip.AddrPort{netip.MustParseAddrPort("198.18.0.255:6443")} }, "backend", "broadcast address of the VIP's /24"},
		{"backend link-local", func(c *Config) {
			c.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("2001:db8::10/64")}
			c.Proxy.Backends = []netip.AddrPort{netip.MustParseAddrPort("[fe80::11]:6443")}
		}, "backend", "link-local"},
		{"too many backends", func(c *Config) {
			c.Proxy.Backends = nil
			for i := range MaxBackends + 1 {
				c.Proxy.Backends = append(c.Proxy.Backends, netip.AddrPortFrom(netip.MustParseAddr("198.18.1.1"), uint16(6000+i)))
			}
		}, "backend", "at most 64 backends, got 65"},
		{"too many peers", func(c *Config) {
			for i := range MaxPeers + 1 {
				c.VRRP.Peers = append(c.VRRP.Peers, netip.AddrFrom4([4]byte{198, 18, 1, byte(i + 1)}))
			}
		}, "peer", "at most 64 peers, got 65"},
		{"health interval 1ns", func(c *Config) { c.Health.Interval = 1; c.Health.Timeout = 1 }, "health-interval", "at least 100ms"},
		{"health interval 99ms", func(c *Config) { c.Health.Interval = 99 * time.Millisecond; c.Health.Timeout = 50 * time.Millisecond }, "health-interval", "at least 100ms"},
		{"health timeout 1ns", func(c *Config) { c.Health.Timeout = 1 }, "health-timeout", "at least 10ms"},
		{"idle timeout 1ns", func(c *Config) { c.Proxy.IdleTimeout = 1 }, "idle-timeout", "at least 1s"},
		{"connect timeout 1ns", func(c *Config) { c.Proxy.ConnectTimeout = 1 }, "connect-timeout", "at least 10ms"},
		{"status on the vip", func(c *Config) { c.Status.Addr = netip.MustParseAddrPort("198.18.0.10:10270") }, "status-addr", "is a VIP"},
		{"status multicast", func(c *Config) { c.Status.Addr = netip.MustParseAddrPort("224.0.0.1:10270") }, "status-addr", "not a unicast address"},
		{"member grace 999ms", func(c *Config) { c.Membership.Grace = 999 * time.Millisecond }, "member-grace", "at least 1s"},
		{"discovery without a kubeconfig", func(c *Config) { c.Membership.Kubeconfig = "" }, "kubeconfig", "required with --discover"},
		{"discovery without a state directory", func(c *Config) { c.Membership.StateDir = "" }, "state-dir", "required with --discover"},
	} {
		c := base()
		tc.mutate(&c)
		err := c.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Flag != tc.flag || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want --%s ... %q", tc.name, err, tc.flag, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error spans several lines: %q", tc.name, err)
		}
	}
}

func TestDurationString(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Hour: "1h", 90 * time.Minute: "1h30m", 2 * time.Minute: "2m", 100 * time.Millisecond: "100ms",
		1500 * time.Millisecond: "1.5s", time.Hour + 5*time.Second: "1h0m5s", 0: "",
	} {
		if got := durationString(d); got != want {
			t.Errorf("durationString(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestReadPassword(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if got, err := ReadPassword(context.Background(), write("ok", "s3cret\n")); err != nil || got != "s3cret" {
		t.Errorf("ReadPassword = %q, %v", got, err)
	}
	for _, tc := range []struct{ path, want string }{
		{write("empty", "\n"), "must be 1-8 bytes"},
		{write("long", "123456789"), "found 9"},
		{dir + "/missing", "no such file"},
		{dir, "not a regular file (a directory)"},
		{"/dev/zero", "not a regular file (a character device)"},
		{write("huge", strings.Repeat("x", 5000)), "file too large: hapod reads at most 4 KiB"},
	} {
		if _, err := ReadPassword(context.Background(), tc.path); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--auth-pass-file "+tc.path) {
			t.Errorf("ReadPassword(%s) = %v, want an error naming the flag, file and %q", tc.path, err, tc.want)
		}
	}
}

// TestNamesComeFromTheirPackages: --balance and --health-check accept
// exactly the names proxy and health list (and can build), and the help
// text names each of them.
func TestNamesComeFromTheirPackages(t *testing.T) {
	base := full()
	for _, tc := range []struct {
		flag  string
		names []string
		build func(string) error
	}{
		{"balance", names(proxy.PolicyNames()), func(n string) error { _, err := proxy.PolicyByName(proxy.PolicyName(n)); return err }},
		{"health-check", names(health.Kinds()), func(n string) error { _, err := health.NewChecker(health.Kind(n), "", nil); return err }},
	} {
		var usage string
		for _, f := range Fields() {
			if f.Name == tc.flag {
				usage = f.Usage
			}
		}
		for _, n := range append(tc.names, "no-such-name") {
			valid := n != "no-such-name"
			c := base
			f, _ := Lookup(tc.flag)
			err := f.Apply(&c, []string{n})
			if err == nil {
				err = c.Validate()
			}
			if (err == nil) != valid {
				t.Errorf("--%s=%s: %v, want valid=%v", tc.flag, n, err, valid)
			}
			if valid && tc.build(n) != nil {
				t.Errorf("--%s=%s is valid but its package cannot build it: %v", tc.flag, n, tc.build(n))
			}
			if valid && !strings.Contains(usage, n) {
				t.Errorf("--%s help %q does not name %s", tc.flag, usage, n)
			}
		}
	}
}

func names[T ~string](list []T) []string {
	s := make([]string, len(list))
	for i, n := range list {
		s[i] = string(n)
	}
	return s
}

// TestCompleteListenPort: the proxy leaves the apiservers' port to them
// and takes VIP:--port through the redirect; any other port it listens on
// itself, as manifests from before --listen-port (--port=8443) expect.
func TestCompleteListenPort(t *testing.T) {
	backends := []netip.AddrPort{netip.MustParseAddrPort("198.18.0.11:7443")}
	for _, tt := range []struct {
		name           string
		port, listen   uint16
		backends       []netip.AddrPort
		wantListen     uint16
		wantRedirected bool
	}{
		{"kubeadm's default", DefaultPort, 0, nil, DefaultListenPort, true},
		{"a backend's port", 7443, 0, backends, DefaultListenPort, true},
		{"a port of its own", 8443, 0, backends, 8443, false},
		{"given: per-node bind patches", 6443, 6443, nil, 6443, false},
		{"given: another internal port", 6443, 7000, nil, 7000, true},
	} {
		c := Default()
		c.Proxy.Port, c.Proxy.ListenPort, c.Proxy.Backends = tt.port, tt.listen, tt.backends
		c.Complete()
		if c.Proxy.ListenPort != tt.wantListen || c.Proxy.Redirect() != tt.wantRedirected {
			t.Errorf("%s: listen port %d, redirect %v; want %d, %v", tt.name, c.Proxy.ListenPort, c.Proxy.Redirect(), tt.wantListen, tt.wantRedirected)
		}
	}
}

func TestRouters(t *testing.T) {
	c := fullDualStack()
	got := c.Routers()
	want := []Router{
		{Family: IPv4, VRID: 42,
			VIPs:  []netip.Prefix{netip.MustParsePrefix("198.18.0.10/24"), netip.MustParsePrefix("198.18.0.20/24")},
			Peers: []netip.Addr{netip.MustParseAddr("198.18.0.12"), netip.MustParseAddr("198.18.0.13")}},
		{Family: IPv6, VRID: 43,
			VIPs:  []netip.Prefix{netip.MustParsePrefix("2001:db8::10/64")},
			Peers: []netip.Addr{netip.MustParseAddr("2001:db8::12")}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Routers() =\n%+v\nwant\n%+v", got, want)
	}
	// Without --vrid6 both routers take --vrid; multicast has no peers.
	c.VRRP.VRID6, c.VRRP.Peers = 0, nil
	for _, r := range c.Routers() {
		if r.VRID != 42 || r.Peers != nil {
			t.Errorf("%s router: VRID %d, peers %v; want 42 and multicast", r.Family, r.VRID, r.Peers)
		}
	}
}

func TestPrimaryVIPAndDerivedVRID(t *testing.T) {
	for _, tc := range []struct {
		vips        []string
		primary     string
		vrid, vrid6 uint8
	}{
		{[]string{"198.18.0.10/24"}, "198.18.0.10/24", 10, 10},
		{[]string{"2001:db8::a7/64"}, "2001:db8::a7/64", 0xa7, 0xa7},
		// The first IPv4 VIP names the cluster whatever the order, so
		// nodes whose manifests list the families differently agree.
		{[]string{"2001:db8::a7/64", "198.18.0.10/24", "198.18.0.11/24"}, "198.18.0.10/24", 10, 10},
		{[]string{"198.18.0.10/24", "2001:db8::a7/64"}, "198.18.0.10/24", 10, 10},
	} {
		c := Default()
		for _, v := range tc.vips {
			c.VIP.Prefixes = append(c.VIP.Prefixes, netip.MustParsePrefix(v))
		}
		c.Complete()
		if got := c.VIP.Primary().String(); got != tc.primary {
			t.Errorf("%v: primary %s, want %s", tc.vips, got, tc.primary)
		}
		rs := c.Routers()
		if rs[0].VRID != tc.vrid || rs[len(rs)-1].VRID != tc.vrid6 {
			t.Errorf("%v: VRIDs %d/%d, want %d/%d", tc.vips, rs[0].VRID, rs[len(rs)-1].VRID, tc.vrid, tc.vrid6)
		}
	}
}
