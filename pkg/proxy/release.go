package proxy

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
