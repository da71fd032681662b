// Package redirect puts the cluster endpoint on the kube-apiservers' own
// port without changing them: an nftables rule in hapod's own table sends
// TCP for VIP:Port to the proxy listening on VIP:ListenPort.
//
// kube-apiserver binds 0.0.0.0:6443, and Linux refuses a specific bind on a
// port a wildcard socket holds, so the proxy cannot listen on VIP:6443. It
// listens on an internal port instead, and a destination NAT rule, in the
// prerouting hook (clients on the network) and the output hook (clients on
// this node), rewrites VIP:6443 to VIP:ListenPort, as OpenShift's on-prem
// load balancer does. The address stays the VIP (DNAT, not nftables'
// `redirect`, which would rewrite it to the interface's primary address,
// where the proxy does not listen). A rule acts only while the VIP is a
// local address (fib daddr type local): on a node that does not hold the
// VIP, its own clients' packets leave untouched for the holder. Conntrack
// keeps each connection on the path it started on, so installing or
// removing the rule never breaks an established connection.
//
// The rule set is data (Spec.Ruleset), checked without a kernel; Switch
// owns whether it is installed and applies it through an Applier, whose
// Linux implementation (NFTables) talks nftables over netlink. The table
// is hapod's own, one per VIP, replaced whole in one transaction and
// deleted whole: other tables (kube-proxy's, firewalld's, iptables-nft's)
// are never read or written.
package redirect

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Spec is what to redirect: TCP for VIP:Port, for each VIP, to
// VIP:ListenPort.
type Spec struct {
	// VIPs are the virtual addresses, IPv4 or IPv6; the first names the
	// table.
	VIPs []netip.Addr
	// Port is the cluster endpoint's port clients use (6443).
	Port uint16
	// ListenPort is the port the proxy listens on, on the same VIPs.
	ListenPort uint16
}

// ErrSpec is wrapped by Ruleset for a spec it cannot express.
var ErrSpec = errors.New("invalid redirect")

// Hook is a netfilter hook a chain is attached to.
type Hook int

// The hooks hapod's chains use. The zero value is invalid.
const (
	HookPrerouting Hook = iota + 1 // packets from the network, before routing
	HookOutput                     // packets this node's own processes send
)

func (h Hook) String() string {
	switch h {
	case HookPrerouting:
		return "prerouting"
	case HookOutput:
		return "output"
	}
	return fmt.Sprintf("Hook(%d)", int(h))
}

// PriorityDstNAT is the chain priority where NAT rewrites destinations
// (nft's "dstnat"), in prerouting and output alike.
const PriorityDstNAT = -100

// Ruleset is hapod's table: an inet table (IPv4 and IPv6 in one) with one
// nat chain per hook.
type Ruleset struct {
	Table  string
	Chains []Chain
}

// Chain is a base chain of type nat.
type Chain struct {
	Name     string
	Hook     Hook
	Priority int
	Rules    []Rule
}

// Rule rewrites TCP for VIP:Port, while VIP is a local address, to
// VIP:ToPort.
type Rule struct {
	VIP    netip.Addr
	Port   uint16
	ToPort uint16
}

// TableName is the name of hapod's table for vip: one per VIP, like the
// instance lock, so two instances for different VIPs on one host never
// touch each other's rules. Only letters, digits and underscores, so the
// nft command line can name it unquoted.
func TableName(vip netip.Addr) string {
	s := vip.Unmap().WithZone("").String()
	return "hapod_" + strings.NewReplacer(".", "_", ":", "_").Replace(s)
}

// Ruleset builds the rule set for s: a chain on the prerouting hook and
// one on the output hook, at the dstnat priority, each with one rule per
// VIP.
func (s Spec) Ruleset() (Ruleset, error) {
	if err := s.check(); err != nil {
		return Ruleset{}, err
	}
	rs := Ruleset{Table: TableName(s.VIPs[0])}
	for _, h := range []Hook{HookPrerouting, HookOutput} {
		c := Chain{Name: h.String(), Hook: h, Priority: PriorityDstNAT}
		for _, v := range s.VIPs {
			c.Rules = append(c.Rules, Rule{VIP: v.Unmap(), Port: s.Port, ToPort: s.ListenPort})
		}
		rs.Chains = append(rs.Chains, c)
	}
	return rs, nil
}

func (s Spec) check() error {
	if len(s.VIPs) == 0 {
		return fmt.Errorf("%w: no VIP", ErrSpec)
	}
	for _, v := range s.VIPs {
		if !v.IsValid() || v.Zone() != "" || v.Unmap().IsUnspecified() {
			return fmt.Errorf("%w: VIP %q", ErrSpec, v)
		}
	}
	if s.Port == 0 || s.ListenPort == 0 {
		return fmt.Errorf("%w: port %d to %d", ErrSpec, s.Port, s.ListenPort)
	}
	if s.Port == s.ListenPort {
		return fmt.Errorf("%w: port %d to itself", ErrSpec, s.Port)
	}
	return nil
}

// String is the rule in nft's syntax.
func (r Rule) String() string {
	fam, to := "ip", r.VIP.String()
	if r.VIP.Is6() {
		fam, to = "ip6", "["+to+"]"
	}
	return fmt.Sprintf("%s daddr %s tcp dport %d fib daddr type local dnat %s to %s:%d", fam, r.VIP, r.Port, fam, to, r.ToPort)
}

// String is the rule set in nft's syntax, as `nft list table` shows it
// (and `nft -f` would read it).
func (rs Ruleset) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", rs.Table)
	for i, c := range rs.Chains {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "\tchain %s {\n\t\ttype nat hook %s priority %d; policy accept;\n", c.Name, c.Hook, c.Priority)
		for _, r := range c.Rules {
			fmt.Fprintf(&b, "\t\t%s\n", r)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}
