package redirect

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// NFTables applies rule sets with nftables over netlink, in the network
// namespace of the thread that called NewNFTables.
type NFTables struct {
	conn *nftables.Conn
}

var _ Applier = (*NFTables)(nil)

// NewNFTables opens a netlink connection to nftables. The socket is made
// here, so it stays in the calling thread's network namespace.
func NewNFTables() (*NFTables, error) {
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("nftables netlink socket: %w", err)
	}
	return &NFTables{conn: c}, nil
}

// Close closes the netlink connection.
func (n *NFTables) Close() error { return n.conn.CloseLasting() }

func table(name string) *nftables.Table {
	return &nftables.Table{Name: name, Family: nftables.TableFamilyINet}
}

// Present reports whether hapod's table named name exists.
func (n *NFTables) Present(name string) (bool, error) {
	_, err := n.conn.ListTableOfFamily(name, nftables.TableFamilyINet)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	return err == nil, err
}

// Replace adds, deletes and adds the table again, then its chains and
// rules, in one batch: the kernel applies all of it or none, so a
// predecessor's table (or none) turns into rs with no moment in between.
// Adding before deleting makes the delete valid when there was no table.
func (n *NFTables) Replace(rs Ruleset) error {
	t := table(rs.Table)
	n.conn.AddTable(t)
	n.conn.DelTable(t)
	n.conn.AddTable(t)
	for _, c := range rs.Chains {
		chain := n.conn.AddChain(nftChain(t, c))
		for _, r := range c.Rules {
			n.conn.AddRule(&nftables.Rule{Table: t, Chain: chain, Exprs: exprs(r)})
		}
	}
	return n.conn.Flush()
}

// Delete removes hapod's table named name with everything in it, in one
// batch; a missing table is no error.
func (n *NFTables) Delete(name string) error {
	t := table(name)
	n.conn.AddTable(t)
	n.conn.DelTable(t)
	return n.conn.Flush()
}

func nftChain(t *nftables.Table, c Chain) *nftables.Chain {
	hook := nftables.ChainHookPrerouting
	if c.Hook == HookOutput {
		hook = nftables.ChainHookOutput
	}
	return &nftables.Chain{
		Name:     c.Name,
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  hook,
		Priority: nftables.ChainPriorityRef(nftables.ChainPriority(c.Priority)),
	}
}

// exprs is r as nftables expressions, what nft compiles
// `meta nfproto ipv4 ip daddr VIP meta l4proto tcp tcp dport PORT
// fib daddr type local dnat ip to VIP:TOPORT` into (ip6 alike).
func exprs(r Rule) []expr.Any {
	proto, offset := byte(unix.NFPROTO_IPV4), uint32(16) // IPv4 header: daddr at 16
	if r.VIP.Is6() {
		proto, offset = unix.NFPROTO_IPV6, 24 // IPv6 header: daddr at 24
	}
	addr := r.VIP.AsSlice()
	return []expr.Any{
		// An inet table sees both families: match the header first.
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: uint32(len(addr))},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}, // TCP dport
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.Port)},
		// Only while the VIP is this node's; fib's address type is a
		// 32-bit register in host byte order.
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
		&expr.Immediate{Register: 1, Data: addr},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(r.ToPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: uint32(proto), RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}
