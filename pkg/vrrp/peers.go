package vrrp

import (
	"net/netip"
	"slices"
	"time"
)

// MaxPeers is how many routers a Speaker remembers having heard. A VRRP
// group has a handful; the bound keeps a LAN full of (authenticated, or
// unauthenticated v3) senders from growing the table without end.
const MaxPeers = 32

// Peer is another router heard advertising for this virtual router: an
// advert that passed the Conn's checks and carried our VRID and version.
type Peer struct {
	// Addr is the advert's source address.
	Addr netip.Addr
	// Priority and Interval are those of its last advert; priority 0 means
	// it said it was leaving.
	Priority uint8
	Interval time.Duration
	// LastHeard is when its last advert arrived; Adverts counts them.
	LastHeard time.Time
	Adverts   uint64
}

// peerTable is the Speaker's record of the routers it heard, bounded by
// MaxPeers. Guarded by Speaker.mu.
type peerTable map[netip.Addr]*Peer

// heard records an advert from addr at now. A new router in a full table
// takes the place of the one heard least recently.
func (t peerTable) heard(now time.Time, addr netip.Addr, prio uint8, interval time.Duration) {
	p := t[addr]
	if p == nil {
		if len(t) >= MaxPeers {
			var oldest *Peer
			for _, q := range t {
				if oldest == nil || q.LastHeard.Before(oldest.LastHeard) ||
					(q.LastHeard.Equal(oldest.LastHeard) && q.Addr.Less(oldest.Addr)) {
					oldest = q
				}
			}
			delete(t, oldest.Addr)
		}
		p = &Peer{Addr: addr}
		t[addr] = p
	}
	p.Priority, p.Interval, p.LastHeard = prio, interval, now
	p.Adverts++
}

// list returns copies of the peers, by address.
func (t peerTable) list() []Peer {
	if len(t) == 0 {
		return nil
	}
	out := make([]Peer, 0, len(t))
	for _, p := range t {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return a.Addr.Compare(b.Addr) })
	return out
}
