package vrrp

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// sentTo returns the destinations of the writes since the last call.
func sentTo(f *wFakePC) []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netip.Addr
	for _, w := range f.written {
		out = append(out, w.d.Dst)
	}
	f.written = nil
	return out
}

// received feeds c an advert from src and returns the drop reason, or
// DropReason(-1) when it was accepted.
func received(t *testing.T, c *RawConn, f *wFakePC, src netip.Addr) DropReason {
	t.Helper()
	p := Packet{Version: Version3, VRID: 51, Priority: 100, Interval: time.Second, Addrs: wAddrs("198.18.0.100")}
	b := advert(t, p, src, wSrc4)
	_, de := c.check(b, datagram{Src: src, Dst: wSrc4, HopLimit: 255, IfIndex: wIfIndex})
	if de == nil {
		return -1
	}
	return de.Reason
}

// SetPeers: the next advert goes to exactly the new peers, a new peer's
// adverts are accepted at once, a removed one's are dropped.
func TestSetPeers(t *testing.T) {
	peerB, peerC := netip.MustParseAddr("198.18.0.3"), netip.MustParseAddr("198.18.0.4")
	c, f := wNewConn(t, ConnConfig{Interface: "x", Source: wSrc4, Peers: []netip.Addr{wPeer4, peerB}, VRID: 51, Version: Version3})
	p := Packet{Priority: 100, Interval: time.Second, Addrs: wAddrs("198.18.0.100")}
	send := func() []netip.Addr {
		t.Helper()
		if err := c.Send(&p); err != nil {
			t.Fatal(err)
		}
		return sentTo(f)
	}
	if got := send(); !slices.Equal(got, []netip.Addr{wPeer4, peerB}) {
		t.Fatalf("before SetPeers: sent to %v", got)
	}
	if r := received(t, c, f, peerC); r != DropUnknownPeer {
		t.Fatalf("advert from %v before it is a peer: %v, want DropUnknownPeer", peerC, r)
	}
	if err := c.SetPeers([]netip.Addr{wPeer4, peerC}); err != nil {
		t.Fatal(err)
	}
	if got := send(); !slices.Equal(got, []netip.Addr{wPeer4, peerC}) {
		t.Fatalf("after SetPeers: sent to %v", got)
	}
	if r := received(t, c, f, peerC); r != -1 {
		t.Fatalf("advert from the new peer %v: dropped %v", peerC, r)
	}
	if r := received(t, c, f, peerB); r != DropUnknownPeer {
		t.Fatalf("advert from the removed peer %v: %v, want DropUnknownPeer", peerB, r)
	}

	for _, bad := range [][]netip.Addr{nil, {netip.MustParseAddr("2001:db8::1")}} {
		if err := c.SetPeers(bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("SetPeers(%v) = %v, want ErrInvalidConfig", bad, err)
		}
	}
	if got := send(); !slices.Equal(got, []netip.Addr{wPeer4, peerC}) {
		t.Fatalf("a refused SetPeers changed the peers: sent to %v", got)
	}

	mc, _ := wNewConn(t, ConnConfig{Interface: "x", Source: wSrc4, VRID: 51, Version: Version3})
	if err := mc.SetPeers([]netip.Addr{wPeer4}); !errors.Is(err, ErrMulticast) {
		t.Fatalf("SetPeers on a multicast conn = %v, want ErrMulticast", err)
	}
}

// The peers set on a RedialConn survive a Redial.
func TestRedialConnSetPeers(t *testing.T) {
	peerB := netip.MustParseAddr("198.18.0.3")
	cfg := ConnConfig{Interface: "eth0", Source: wSrc4, Peers: []netip.Addr{wPeer4}, VRID: 51, Version: Version3}
	var pcs []*wFakePC
	r, err := newRedial(cfg, func(cfg ConnConfig) (*RawConn, error) {
		pc := wNewFakePC()
		pcs = append(pcs, pc)
		return newConn(cfg, wIfIndex, pc)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.SetPeers([]netip.Addr{peerB}); err != nil {
		t.Fatal(err)
	}
	if err := r.Redial(); err != nil {
		t.Fatal(err)
	}
	p := Packet{Priority: 100, Interval: time.Second, Addrs: wAddrs("198.18.0.100")}
	if err := r.Send(&p); err != nil {
		t.Fatal(err)
	}
	if got := sentTo(pcs[1]); !slices.Equal(got, []netip.Addr{peerB}) {
		t.Fatalf("after Redial: sent to %v, want [%v]", got, peerB)
	}
}
