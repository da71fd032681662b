package redirect

import (
	"errors"
	"net/netip"
	"testing"
)

func TestRuleset(t *testing.T) {
	v4, v6 := netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("2001:db8::10")
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"ipv4", Spec{VIPs: []netip.Addr{v4}, Port: 6443, ListenPort: 9445}, `table inet hapod_198_18_0_10 {
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		ip daddr 198.18.0.10 tcp dport 6443 fib daddr type local dnat ip to 198.18.0.10:9445
	}

	chain output {
		type nat hook output priority -100; policy accept;
		ip daddr 198.18.0.10 tcp dport 6443 fib daddr type local dnat ip to 198.18.0.10:9445
	}
}
`},
		{"ipv6", Spec{VIPs: []netip.Addr{v6}, Port: 443, ListenPort: 9445}, `table inet hapod_2001_db8__10 {
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		ip6 daddr 2001:db8::10 tcp dport 443 fib daddr type local dnat ip6 to [2001:db8::10]:9445
	}

	chain output {
		type nat hook output priority -100; policy accept;
		ip6 daddr 2001:db8::10 tcp dport 443 fib daddr type local dnat ip6 to [2001:db8::10]:9445
	}
}
`},
		// A v4-mapped address is the IPv4 VIP; the first VIP names the table.
		{"dual stack", Spec{VIPs: []netip.Addr{netip.MustParseAddr("::ffff:198.18.0.10"), v6}, Port: 6443, ListenPort: 9445}, `table inet hapod_198_18_0_10 {
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		ip daddr 198.18.0.10 tcp dport 6443 fib daddr type local dnat ip to 198.18.0.10:9445
		ip6 daddr 2001:db8::10 tcp dport 6443 fib daddr type local dnat ip6 to [2001:db8::10]:9445
	}

	chain output {
		type nat hook output priority -100; policy accept;
		ip daddr 198.18.0.10 tcp dport 6443 fib daddr type local dnat ip to 198.18.0.10:9445
		ip6 daddr 2001:db8::10 tcp dport 6443 fib daddr type local dnat ip6 to [2001:db8::10]:9445
	}
}
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := tt.spec.Ruleset()
			if err != nil {
				t.Fatal(err)
			}
			if got := rs.String(); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
			for _, c := range rs.Chains {
				if c.Hook.String() != c.Name || c.Priority != PriorityDstNAT {
					t.Errorf("chain %+v: want named for its hook, at dstnat", c)
				}
			}
		})
	}
}

func TestRulesetInvalid(t *testing.T) {
	vip := netip.MustParseAddr("198.18.0.10")
	for name, spec := range map[string]Spec{
		"no VIP":          {Port: 6443, ListenPort: 9445},
		"zero VIP":        {VIPs: []netip.Addr{{}}, Port: 6443, ListenPort: 9445},
		"unspecified VIP": {VIPs: []netip.Addr{netip.IPv4Unspecified()}, Port: 6443, ListenPort: 9445},
		"zoned VIP":       {VIPs: []netip.Addr{netip.MustParseAddr("fe80::1%eth0")}, Port: 6443, ListenPort: 9445},
		"no port":         {VIPs: []netip.Addr{vip}, ListenPort: 9445},
		"no listen port":  {VIPs: []netip.Addr{vip}, Port: 6443},
		"to itself":       {VIPs: []netip.Addr{vip}, Port: 6443, ListenPort: 6443},
	} {
		if _, err := spec.Ruleset(); !errors.Is(err, ErrSpec) {
			t.Errorf("%s: err %v, want ErrSpec", name, err)
		}
	}
}

func TestTableNamePerVIP(t *testing.T) {
	seen := map[string]string{}
	for _, s := range []string{"198.18.0.10", "198.18.0.11", "2001:db8::10", "2001:db8::1:0", "::ffff:198.18.0.12"} {
		name := TableName(netip.MustParseAddr(s))
		if prev, dup := seen[name]; dup {
			t.Errorf("%s and %s share table %s", prev, s, name)
		}
		seen[name] = s
		for _, r := range name {
			if !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
				t.Errorf("table %q: %q needs quoting in nft", name, r)
			}
		}
	}
	if got := TableName(netip.MustParseAddr("::ffff:198.18.0.12")); got != "hapod_198_18_0_12" {
		t.Errorf("mapped VIP: table %s, want the IPv4 VIP's", got)
	}
}
