package lab

import (
	"net/netip"
	"strings"
	"testing"
)

// The lab's address rules hold for fixed prefixes too: only 198.18.0.0/15
// and 2001:db8::/32, in the sizes the host numbering needs.
func TestOptionsCheck(t *testing.T) {
	p := netip.MustParsePrefix
	for _, tc := range []struct {
		o    Options
		want string // "" for valid
	}{
		{Options{Nodes: 2}, ""},
		{Options{Nodes: 2, Prefix4: p("198.19.7.0/24"), Prefix6: p("2001:db8:1::/64")}, ""},
		{Options{Nodes: 0}, "0 nodes"},
		{Options{Nodes: maxNodes + 1}, "nodes"},
		{Options{Nodes: 1, Prefix4: p("10.0.0.0/24")}, "inside 198.18.0.0/15"},
		{Options{Nodes: 1, Prefix4: p("198.20.0.0/24")}, "inside 198.18.0.0/15"},
		{Options{Nodes: 1, Prefix4: p("198.18.0.0/16")}, "a /24"},
		{Options{Nodes: 1, Prefix6: p("2001:db9::/64")}, "inside 2001:db8::/32"},
		{Options{Nodes: 1, Prefix6: p("fd00::/64")}, "inside 2001:db8::/32"},
		{Options{Nodes: 1, Prefix6: p("2001:db8::/48")}, "a /64"},
		{Options{Nodes: 1, Prefix4: p("2001:db8::/24")}, "a /24"},
	} {
		err := tc.o.check()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: check() = %v, want %q", tc.o, err, tc.want)
		}
	}
}
