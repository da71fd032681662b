package preflight

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hapod/hapod/internal/hostnet"
	"github.com/hapod/hapod/pkg/config"
)

// node is a control-plane node holding the VIP 198.18.0.10 and
// 2001:db8::10 next to its own addresses.
var node = []hostnet.Addr{
	{Prefix: netip.MustParsePrefix("127.0.0.1/8"), Interface: "lo"},
	{Prefix: netip.MustParsePrefix("198.18.0.10/24"), Interface: "eth0"},
	{Prefix: netip.MustParsePrefix("198.18.0.11/24"), Interface: "eth0"},
	{Prefix: netip.MustParsePrefix("2001:db8::10/64"), Interface: "eth0"},
	{Prefix: netip.MustParsePrefix("2001:db8::11/64"), Interface: "eth0"},
	{Prefix: netip.MustParsePrefix("fe80::11/64"), Interface: "eth0"},
	{Prefix: netip.MustParsePrefix("198.18.9.11/24"), Interface: "eth1"},
}

func TestSourceAddr(t *testing.T) {
	for _, tc := range []struct {
		ifname, vip string
		unicast     bool
		want, err   string
	}{
		{"eth0", "198.18.0.10", false, "198.18.0.11", ""},
		{"eth0", "2001:db8::10", false, "fe80::11", ""},
		{"eth0", "2001:db8::10", true, "2001:db8::11", ""},
		{"eth1", "198.18.0.10", false, "198.18.9.11", ""},
		{"eth1", "2001:db8::10", false, "", "has no IPv6 link-local address of its own"},
		{"eth1", "2001:db8::10", true, "", "has no global IPv6 address of its own"},
		{"eth9", "198.18.0.10", false, "", "has no IPv4 address of its own to send VRRP adverts from"},
	} {
		got, err := SourceAddr(node, tc.ifname, []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr(tc.vip), 64)}, tc.unicast)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %s unicast=%v: %v %v, want error %q", tc.ifname, tc.vip, tc.unicast, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != netip.MustParseAddr(tc.want) {
			t.Errorf("%s %s unicast=%v: %v %v, want %s", tc.ifname, tc.vip, tc.unicast, got, err, tc.want)
		}
	}
}

// TestCheck: what `hapod run` would fail on at start, each with an error
// naming the flag. Issue 19, item 7.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	pass := write("pass", "s3cret\n")
	notPEM := write("ca.crt", "this is not a certificate\n")
	base := func() config.Config {
		c := config.Default()
		c.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.18.0.10/24")}
		c.VIP.Interface = "eth0"
		c.Proxy.Backends = []netip.AddrPort{netip.MustParseAddrPort("198.18.0.11:6443")}
		c.Complete()
		return c
	}
	host := Host{Addrs: func() ([]hostnet.Addr, error) { return node, nil }}

	c := base()
	c.VRRP.Version, c.VRRP.AdvertInterval, c.VRRP.AuthPassFile = 2, 0, pass
	c.Complete()
	s, err := Check(context.Background(), c, host)
	if err != nil || s.Sources[config.IPv4] != netip.MustParseAddr("198.18.0.11") || s.Password != "s3cret" || s.HealthTLS == nil || !s.HealthTLS.InsecureSkipVerify {
		t.Fatalf("Check = %+v, %v", s, err)
	}
	// Dual-stack: one source per router; multicast IPv6 adverts leave
	// from the link-local address, unicast ones from the global one.
	c = base()
	c.VIP.Prefixes = append(c.VIP.Prefixes, netip.MustParsePrefix("2001:db8::10/64"), netip.MustParsePrefix("198.18.0.20/24"))
	if s, err := Check(context.Background(), c, host); err != nil ||
		s.Sources[config.IPv4] != netip.MustParseAddr("198.18.0.11") || s.Sources[config.IPv6] != netip.MustParseAddr("fe80::11") {
		t.Errorf("dual-stack multicast: sources %v, %v", s.Sources, err)
	}
	c.VRRP.Peers = []netip.Addr{netip.MustParseAddr("198.18.0.12"), netip.MustParseAddr("2001:db8::12")}
	if s, err := Check(context.Background(), c, host); err != nil ||
		s.Sources[config.IPv4] != netip.MustParseAddr("198.18.0.11") || s.Sources[config.IPv6] != netip.MustParseAddr("2001:db8::11") {
		t.Errorf("dual-stack unicast: sources %v, %v", s.Sources, err)
	}
	for _, addr := range []string{"127.0.0.1:10270", "127.0.0.53:10270", "[::1]:10270", "0.0.0.0:10270", "[::]:10270", "198.18.0.11:10270", "198.18.9.11:10270"} {
		c := base()
		c.Status.Addr = netip.MustParseAddrPort(addr)
		if _, err := Check(context.Background(), c, host); err != nil {
			t.Errorf("--status-addr %s: %v", addr, err)
		}
	}

	for _, tc := range []struct {
		name   string
		mutate func(*config.Config)
		want   string // the whole error
	}{
		{"status address of another node", func(c *config.Config) { c.Status.Addr = netip.MustParseAddrPort("198.18.0.12:10270") },
			"--status-addr 198.18.0.12:10270: not an address of this host: the status server could not listen there, and kubelet's liveness probe would restart hapod forever; use an address this node always has (default 127.0.0.1:10270)"},
		{"CA file without a certificate", func(c *config.Config) { c.Health.CAFile = notPEM },
			"--health-ca-file " + notPEM + ": no PEM certificate found: want the cluster CA in PEM, e.g. /etc/kubernetes/pki/ca.crt"},
		{"CA file missing", func(c *config.Config) { c.Health.CAFile = dir + "/missing.crt" },
			"--health-ca-file " + dir + "/missing.crt: no such file or directory"},
		{"CA file is a directory", func(c *config.Config) { c.Health.CAFile = dir },
			"--health-ca-file " + dir + ": not a regular file (a directory)"},
		{"password file missing", func(c *config.Config) {
			c.VRRP.Version, c.VRRP.AdvertInterval, c.VRRP.AuthPassFile = 2, 0, dir+"/nope"
			c.Complete()
		}, "--auth-pass-file " + dir + "/nope: no such file or directory"},
		{"interface without an address", func(c *config.Config) { c.VIP.Interface = "eth9" },
			"--interface eth9: has no IPv4 address of its own to send VRRP adverts from"},
		{"IPv6 multicast without link-local", func(c *config.Config) {
			c.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("2001:db8::10/64")}
			c.VIP.Interface = "eth1"
		}, "--interface eth1: has no IPv6 link-local address of its own to send VRRP adverts from"},
		// Issue 22: each family's router needs its own source.
		{"dual-stack without an IPv6 address", func(c *config.Config) {
			c.VIP.Prefixes = append(c.VIP.Prefixes, netip.MustParsePrefix("2001:db8::10/64"))
			c.VIP.Interface = "eth1"
		}, "--interface eth1: has no IPv6 link-local address of its own to send VRRP adverts from, for the VIP 2001:db8::10/64: each address family's virtual router sends from this node's own address of that family, on the one interface of all the VIPs"},
	} {
		c := base()
		tc.mutate(&c)
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: test config invalid: %v", tc.name, err)
		}
		_, err := Check(context.Background(), c, host)
		var fe *config.FieldError
		if !errors.As(err, &fe) || err.Error() != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.name, err, tc.want)
		}
	}
}
