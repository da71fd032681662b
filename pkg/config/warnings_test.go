package config

import (
	"net/netip"
	"strings"
	"testing"
)

func TestWarnings(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want []string // substrings, one per expected warning
	}{
		{"defaults", func(*Config) {}, nil},
		{"preempt off, weight 0", func(c *Config) { c.VRRP.Preempt = false; c.Health.Weight = 0 }, nil},
		{"preempt on, weight 0", func(c *Config) { c.Health.Weight = 0 }, nil},
		{"preempt off, default weight", func(c *Config) { c.VRRP.Preempt = false },
			[]string{"--preempt=false makes --no-backend-weight 50 useless"}},
		{"preempt off, weight 20", func(c *Config) { c.VRRP.Preempt = false; c.Health.Weight = 20 },
			[]string{"--no-backend-weight 20"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.18.0.10/24")}
			c.Proxy.Backends = []netip.AddrPort{netip.MustParseAddrPort("198.18.0.11:6443")}
			tc.mod(&c)
			c.Complete()
			if err := c.Validate(); err != nil {
				t.Fatalf("a warning is for a valid config: %v", err)
			}
			got := c.Warnings()
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d", got, len(tc.want))
			}
			for i, w := range got {
				if !strings.Contains(w, tc.want[i]) {
					t.Errorf("warning %q lacks %q", w, tc.want[i])
				}
				if strings.Contains(w, "\n") {
					t.Errorf("warning spans lines: %q", w)
				}
			}
		})
	}
}
