package lab

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func v2Unicast() KeepalivedConfig {
	return KeepalivedConfig{
		Interface: "eth0", VRID: 51, Priority: 150, Version: 2, Interval: time.Second,
		VIP:      netip.MustParsePrefix("198.18.7.200/24"),
		Source:   netip.MustParseAddr("198.18.7.10"),
		Peers:    []netip.Addr{netip.MustParseAddr("198.18.7.11"), netip.MustParseAddr("198.18.7.12")},
		AuthPass: "s3cret", Preempt: true,
	}
}

func v3Multicast6() KeepalivedConfig {
	return KeepalivedConfig{
		Name: "hapod6", Interface: "eth0", VRID: 7, Priority: 100, Version: 3,
		Interval: 250 * time.Millisecond, VIP: netip.MustParsePrefix("2001:db8:7::c8/64"),
		Extra: []string{"garp_master_delay 0"},
	}
}

// dualStackUnicast is one process's instances for a dual-stack group: an
// IPv4 and an IPv6 instance on one VRID (RFC 9568 keeps them apart), each
// with its family's peers, named by default.
func dualStackUnicast() []KeepalivedConfig {
	return []KeepalivedConfig{
		{
			Interface: "eth0", VRID: 77, Priority: 200, Version: 3, Interval: 100 * time.Millisecond,
			VIP: netip.MustParsePrefix("198.18.7.200/24"), Source: netip.MustParseAddr("198.18.7.3"),
			Peers: []netip.Addr{netip.MustParseAddr("198.18.7.1"), netip.MustParseAddr("198.18.7.2")}, Preempt: true,
		},
		{
			Interface: "eth0", VRID: 77, Priority: 120, Version: 3, Interval: 100 * time.Millisecond,
			VIP: netip.MustParsePrefix("2001:db8:7::c8/64"), Source: netip.MustParseAddr("2001:db8:7::3"),
			Peers: []netip.Addr{netip.MustParseAddr("2001:db8:7::1"), netip.MustParseAddr("2001:db8:7::2")}, Preempt: true,
		},
	}
}

func TestKeepalivedRenderGolden(t *testing.T) {
	for name, cs := range map[string][]KeepalivedConfig{
		"v2-unicast-auth.conf":    {v2Unicast()},
		"v3-multicast6.conf":      {v3Multicast6()},
		"dual-stack-unicast.conf": dualStackUnicast(),
	} {
		t.Run(name, func(t *testing.T) {
			if err := ValidateKeepalived(cs...); err != nil {
				t.Fatal(err)
			}
			got := RenderKeepalived(cs...)
			path := filepath.Join("testdata", name)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if got != string(want) {
				t.Errorf("Render() differs from %s (run with -update after checking):\n%s", path, got)
			}
		})
	}
}

// TestKeepalivedRenderPeersOnePerLine guards the split-brain trap: keepalived
// reads only the first address of a unicast_peer line.
func TestKeepalivedRenderPeersOnePerLine(t *testing.T) {
	c := v2Unicast()
	out := c.Render()
	for _, p := range c.Peers {
		if !strings.Contains(out, "\n        "+p.String()+"\n") {
			t.Errorf("peer %v is not alone on its line:\n%s", p, out)
		}
	}
}

func TestKeepalivedRenderOptions(t *testing.T) {
	c := v2Unicast()
	if out := c.Render(); strings.Contains(out, "nopreempt") || !strings.Contains(out, "state BACKUP") {
		t.Errorf("Preempt: want no nopreempt and state BACKUP:\n%s", out)
	}
	c.Preempt = false
	if out := c.Render(); !strings.Contains(out, "    nopreempt\n") || !strings.Contains(out, "state BACKUP") {
		t.Errorf("no Preempt: want nopreempt with state BACKUP:\n%s", out)
	}
	c = v3Multicast6()
	out := c.Render()
	for _, absent := range []string{"unicast", "authentication", "vrrp_strict"} {
		if strings.Contains(out, absent) {
			t.Errorf("multicast config mentions %q:\n%s", absent, out)
		}
	}
	for _, present := range []string{"advert_int 0.25\n", "version 3\n", "2001:db8:7::c8/64 dev eth0\n", "vrrp_instance hapod6 {"} {
		if !strings.Contains(out, present) {
			t.Errorf("missing %q:\n%s", present, out)
		}
	}
}

func TestKeepalivedValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*KeepalivedConfig)
		want   string // substring of the error; "" for valid
	}{
		{"valid v2", func(*KeepalivedConfig) {}, ""},
		{"no interface", func(c *KeepalivedConfig) { c.Interface = "" }, "interface"},
		{"vrid 0", func(c *KeepalivedConfig) { c.VRID = 0 }, "vrid"},
		{"priority 0", func(c *KeepalivedConfig) { c.Priority = 0 }, "priority"},
		{"version 4", func(c *KeepalivedConfig) { c.Version = 4 }, "version"},
		{"no vip", func(c *KeepalivedConfig) { c.VIP = netip.Prefix{} }, "vip"},
		{"no interval", func(c *KeepalivedConfig) { c.Interval = 0 }, "interval"},
		{"v2 fractional", func(c *KeepalivedConfig) { c.Interval = 1500 * time.Millisecond }, "whole seconds"},
		{"v3 milliseconds", func(c *KeepalivedConfig) {
			c.Version, c.AuthPass, c.Interval = 3, "", 15*time.Millisecond
		}, "centiseconds"},
		{"v3 too long", func(c *KeepalivedConfig) { c.Version, c.AuthPass, c.Interval = 3, "", 41*time.Second }, "centiseconds"},
		{"v3 auth", func(c *KeepalivedConfig) { c.Version = 3 }, "authentication"},
		{"long password", func(c *KeepalivedConfig) { c.AuthPass = "123456789" }, "8 characters"},
		{"ipv6 v2", func(c *KeepalivedConfig) {
			c.VIP, c.Peers, c.Source = netip.MustParsePrefix("2001:db8::1/64"), nil, netip.Addr{}
		}, "needs version 3"},
		{"mixed peer", func(c *KeepalivedConfig) { c.Peers = append(c.Peers, netip.MustParseAddr("2001:db8::2")) }, "peer"},
		{"mixed source", func(c *KeepalivedConfig) { c.Source = netip.MustParseAddr("2001:db8::2") }, "source"},
		{"extra block", func(c *KeepalivedConfig) { c.Extra = []string{"track_script { x }"} }, "extra"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := v2Unicast()
			tc.mutate(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one containing %q", err, tc.want)
			case err != nil && !errors.Is(err, ErrKeepalivedConfig):
				t.Errorf("error %v does not wrap ErrKeepalivedConfig", err)
			}
		})
	}
}

// TestKeepalivedValidateInstances covers the checks across the instances of
// one process.
func TestKeepalivedValidateInstances(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func([]KeepalivedConfig) []KeepalivedConfig
		want   string // substring of the error; "" for valid
	}{
		{"one VRID, both families", func(cs []KeepalivedConfig) []KeepalivedConfig { return cs }, ""},
		{"one VRID on two interfaces", func(cs []KeepalivedConfig) []KeepalivedConfig {
			c := cs[0]
			c.Name, c.Interface = "other", "eth1"
			return append(cs, c)
		}, ""},
		{"none", func([]KeepalivedConfig) []KeepalivedConfig { return nil }, "no vrrp_instance"},
		{"one invalid", func(cs []KeepalivedConfig) []KeepalivedConfig { cs[1].Version = 2; return cs }, "instance 1"},
		{"one name", func(cs []KeepalivedConfig) []KeepalivedConfig {
			cs[0].Name, cs[1].Name = "VI", "VI"
			return cs
		}, "both named VI"},
		{"one VRID and family twice", func(cs []KeepalivedConfig) []KeepalivedConfig {
			c := cs[0]
			c.Name, c.VIP = "again", netip.MustParsePrefix("198.18.7.201/24")
			return append(cs, c)
		}, "both VRID 77"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateKeepalived(tc.mutate(dualStackUnicast())...)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one containing %q", err, tc.want)
			case err != nil && !errors.Is(err, ErrKeepalivedConfig):
				t.Errorf("error %v does not wrap ErrKeepalivedConfig", err)
			}
		})
	}
}

// TestKeepalivedRenderInstances: every instance gets its own block, named
// apart by family by default, and no sync group ties them.
func TestKeepalivedRenderInstances(t *testing.T) {
	out := RenderKeepalived(dualStackUnicast()...)
	for _, want := range []string{"router_id VI_77\n", "vrrp_instance VI_77 {", "vrrp_instance VI6_77 {"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "global_defs"); n != 1 {
		t.Errorf("%d global_defs blocks, want 1:\n%s", n, out)
	}
	if strings.Contains(out, "vrrp_sync_group") {
		t.Errorf("a sync group ties the instances:\n%s", out)
	}
}

func TestKeepalivedSyntaxCheck(t *testing.T) {
	// keepalived's own parser, when installed: --config-test needs no root
	// and touches no network.
	Tool(t, "keepalived", "keepalived")
	for name, cs := range map[string][]KeepalivedConfig{"v2": {v2Unicast()}, "v3": {v3Multicast6()}, "dual-stack": dualStackUnicast()} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keepalived.conf")
			if err := os.WriteFile(path, []byte(RenderKeepalived(cs...)), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := command("keepalived", "--config-test", "-f", path).CombinedOutput()
			if err != nil {
				t.Errorf("keepalived --config-test: %v\n%s", err, out)
			}
		})
	}
}

var command = exec.Command

// TestKeepalivedLogReaders reads a real keepalived 2.2.7 log: an IPv4 and
// an IPv6 instance of VRID 9 in one process; the IPv4 one went MASTER,
// BACKUP to a higher priority peer, then MASTER again when that peer
// resigned; the IPv6 one went MASTER and rejected a peer whose advert
// lists another VIP.
func TestKeepalivedLogReaders(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "keepalived-dual.log"))
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	backup := log[:strings.Index(log, "(VI_9) Entering BACKUP STATE\n")+len("(VI_9) Entering BACKUP STATE\n")]
	for _, tc := range []struct {
		log, name, want string
	}{
		{log, "VI_9", "MASTER"},
		{log, "VI6_9", "MASTER"},
		{backup, "VI_9", "BACKUP"},
		{log[:strings.Index(log, "Entering")], "VI_9", ""},
		{log, "VI_1", ""},
		{log, "VI", ""},
	} {
		if got := keepalivedState(tc.log, tc.name); got != tc.want {
			t.Errorf("state of %s in %d bytes of log: %q, want %q", tc.name, len(tc.log), got, tc.want)
		}
	}
	got := keepalivedComplaints(log)
	if len(got) != 9 {
		t.Errorf("%d complaints, want the 9 address list rejections: %q", len(got), got)
	}
	for _, l := range got {
		if !strings.Contains(l, "(VI6_9) ip address associated with VRID 9 not present in MASTER advert") {
			t.Errorf("complaint %q is not an address list rejection", l)
		}
	}
	if got := keepalivedComplaints(backup); len(got) != 0 {
		t.Errorf("complaints before any rejection: %q", got)
	}
}
