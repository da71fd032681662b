package proxy

import (
	"net/netip"
	"sync/atomic"
)

// CloseAll closes every client connection now, dials in progress
// included, and goes on accepting; it returns how many were open. Call it
// right before the listen address leaves this host (the node gives up
// the VIP): the FIN still leaves from the address the clients know, so
// they reconnect, through whoever holds the address next, at once. After
// the address is gone their connections here are unreachable, and an idle
// one (an API watch) would hang until its keepalive gives up.
func (p *Proxy) CloseAll() int {
	p.mu.Lock()
	serving := p.serving
	p.mu.Unlock()
	if !serving {
		return 0
	}
	n := int(p.active.Load())
	p.postWait(func(l *loop) { l.closeAll() })
	p.vipClosed.Add(uint64(n))
	return n
}

// CloseLocal is CloseAll for some addresses: it closes the client
// connections made to one of addrs (their local address, the VIP the
// client connected to; an nftables DNAT to the proxy's port keeps it),
// dials in progress included, and returns how many it closed. The other
// connections go on relaying, and every listener goes on accepting. Call
// it right before these addresses leave this host while others stay, as
// when one address family's VIPs move to another node.
func (p *Proxy) CloseLocal(addrs ...netip.Addr) int {
	p.mu.Lock()
	serving := p.serving
	p.mu.Unlock()
	if !serving || len(addrs) == 0 {
		return 0
	}
	want := make([]netip.Addr, len(addrs))
	for i, a := range addrs {
		want[i] = a.Unmap() // as the listeners bind and the kernel reports
	}
	var n atomic.Int64
	p.postWait(func(l *loop) { n.Add(int64(l.closeLocal(want))) })
	p.vipClosed.Add(uint64(n.Load()))
	return int(n.Load())
}
