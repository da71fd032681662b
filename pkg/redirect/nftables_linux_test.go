package redirect

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/hapod/hapod/internal/lab"
)

// Every expression of a rule encodes, without a kernel.
func TestExprsMarshal(t *testing.T) {
	for _, vip := range []string{"198.18.0.10", "2001:db8::10"} {
		r := Rule{VIP: netip.MustParseAddr(vip), Port: 6443, ToPort: 9445}
		for _, e := range exprs(r) {
			if _, err := expr.Marshal(byte(nftables.TableFamilyINet), e); err != nil {
				t.Errorf("%s: %T: %v", vip, e, err)
			}
		}
	}
}

// The lab tests: node a holds the VIPs, with an "apiserver" on the
// wildcard address and the endpoint's port and a "proxy" on VIP:9445;
// b is a client on the network.

const (
	endpointPort = 6443
	listenPort   = 9445
)

// serveName accepts on ln and writes name on every connection.
func serveName(t *testing.T, ln net.Listener, name string) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(name))
			c.Close()
		}
	}()
}

// reach dials addr from n and returns who answered.
func reach(t *testing.T, n *lab.Node, addr netip.AddrPort) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := n.Dial(ctx, "tcp", addr.String())
	if err != nil {
		t.Fatalf("%s to %s: %v", n.Name, addr, err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("%s to %s: %v", n.Name, addr, err)
	}
	return string(b)
}

func openIn(t *testing.T, n *lab.Node) *NFTables {
	t.Helper()
	var a *NFTables
	if err := n.Do(func() (err error) { a, err = NewNFTables(); return err }); err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestNFTablesLab(t *testing.T) {
	l := lab.New(t, 2)
	a, b := l.Nodes[0], l.Nodes[1]
	vips := []netip.Addr{l.VIP4(0), l.VIP6(0)}
	a.Run(t, "ip", "addr", "add", l.VIP4Prefix(0).String(), "dev", "eth0")
	a.Run(t, "ip", "addr", "add", l.VIP6Prefix(0).String(), "dev", "eth0", "nodad")
	for _, network := range []string{"tcp4", "tcp6"} {
		api, err := a.Listen(network, ":"+strconv.Itoa(endpointPort))
		if err != nil {
			t.Fatal(err)
		}
		serveName(t, api, "apiserver")
	}
	for _, v := range vips {
		px, err := a.Listen("tcp", netip.AddrPortFrom(v, listenPort).String())
		if err != nil {
			t.Fatal(err)
		}
		serveName(t, px, "proxy")
	}
	// Someone else's table (kube-proxy, firewalld) with a nat chain of its own.
	foreign := &nftables.Table{Name: "kube-proxy", Family: nftables.TableFamilyIPv4}
	if err := a.Do(func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		c.AddTable(foreign)
		c.AddChain(&nftables.Chain{Name: "nat-output", Table: foreign, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
		return c.Flush()
	}); err != nil {
		t.Fatalf("foreign table: %v", err)
	}

	spec := Spec{VIPs: vips, Port: endpointPort, ListenPort: listenPort}
	rs, err := spec.Ruleset()
	if err != nil {
		t.Fatal(err)
	}
	nft := openIn(t, a)
	expect := func(what, who string) {
		t.Helper()
		for _, v := range vips {
			for _, n := range []*lab.Node{a, b} { // output hook, prerouting hook
				if got := reach(t, n, netip.AddrPortFrom(v, endpointPort)); got != who {
					t.Errorf("%s: %s to %s:%d reached %q, want %q", what, n.Name, v, endpointPort, got, who)
				}
			}
		}
	}
	expect("no table", "apiserver")
	if err := nft.Replace(rs); err != nil {
		t.Fatalf("Replace: %v", err)
	}
	expect("installed", "proxy")

	// A successor (a new netlink socket, as after a SIGKILL) finds the
	// table and replaces it whole: still exactly the rule set, once.
	next := openIn(t, a)
	if ok, err := next.Present(rs.Table); !ok || err != nil {
		t.Fatalf("Present after Replace = %v, %v", ok, err)
	}
	if err := next.Replace(rs); err != nil {
		t.Fatalf("second Replace: %v", err)
	}
	if err := a.Do(func() error { return checkKernel(t, rs) }); err != nil {
		t.Fatal(err)
	}
	expect("replaced", "proxy")

	// b holds the rule too but not the VIP: fib daddr type local keeps its
	// clients' packets for the holder, whose apiserver answers.
	nftB := openIn(t, b)
	if err := nftB.Replace(rs); err != nil {
		t.Fatal(err)
	}
	if err := nft.Delete(rs.Table); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	expect("removed on the holder", "apiserver")
	if ok, err := nft.Present(rs.Table); ok || err != nil {
		t.Errorf("Present after Delete = %v, %v; want false, nil", ok, err)
	}
	if err := nft.Delete(rs.Table); err != nil {
		t.Errorf("Delete of a missing table: %v", err)
	}
	// The foreign table is as it was.
	if err := a.Do(func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		if _, err := c.ListTableOfFamily(foreign.Name, foreign.Family); err != nil {
			t.Errorf("foreign table gone: %v", err)
		}
		if _, err := c.ListChain(foreign, "nat-output"); err != nil {
			t.Errorf("foreign chain gone: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// checkKernel compares the kernel's copy of hapod's table with rs: its
// chains and one rule per VIP in each.
func checkKernel(t *testing.T, rs Ruleset) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return err
	}
	n := 0
	for _, ch := range chains {
		if ch.Table.Name != rs.Table {
			continue
		}
		n++
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return err
		}
		if len(rules) != len(rs.Chains[0].Rules) {
			t.Errorf("chain %s: %d rules, want %d", ch.Name, len(rules), len(rs.Chains[0].Rules))
		}
	}
	if n != len(rs.Chains) {
		t.Errorf("table %s: %d chains, want %d", rs.Table, n, len(rs.Chains))
	}
	return nil
}
