package vrrp

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

// A Receive blocked on the old socket goes on with the new one after
// Redial; sends go to the new one; drops of both are counted; after Close
// Receive ends.
func TestRedialConn(t *testing.T) {
	cfg := ConnConfig{Interface: "eth0", Source: netip.MustParseAddr("198.18.0.1"), VRID: 51, Version: Version3,
		Addrs: wAddrs("198.18.0.100")}
	var pcs []*wFakePC
	dial := func(cfg ConnConfig) (*RawConn, error) {
		pc := wNewFakePC()
		pcs = append(pcs, pc)
		return newConn(cfg, wIfIndex+len(pcs), pc)
	}
	r, err := newRedial(cfg, dial)
	if err != nil {
		t.Fatal(err)
	}
	peer, group := netip.MustParseAddr("198.18.0.2"), GroupIPv4
	p := Packet{Version: Version3, VRID: 51, Priority: 100, Interval: time.Second, Addrs: wAddrs("198.18.0.100")}
	// A drop on the first socket (wrong TTL).
	pcs[0].in <- wFakeDatagram{b: advert(t, p, peer, group), d: datagram{Src: peer, Dst: group, HopLimit: 64, IfIndex: wIfIndex + 1}}

	got := make(chan error, 1)
	go func() {
		rcv, err := r.Receive()
		if err == nil && rcv.Src != peer {
			err = errors.New("advert from " + rcv.Src.String())
		}
		got <- err
	}()
	// Receive has read the first socket's datagram and waits on it again.
	for deadline := time.Now().Add(10 * time.Second); r.Drops()[DropTTL] == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first socket's datagram was not read")
		}
	}
	if err := r.Redial(); err != nil {
		t.Fatal(err)
	}
	pcs[1].in <- wFakeDatagram{b: advert(t, p, peer, group), d: datagram{Src: peer, Dst: group, HopLimit: 255, IfIndex: wIfIndex + 2}}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Receive across Redial: %v", err)
		}
	case <-time.After(10 * time.Second): // a hang guard
		t.Fatal("Receive did not go on with the new socket")
	}
	if err := r.Send(&p); err != nil {
		t.Fatal(err)
	}
	if len(pcs[0].written) != 0 || len(pcs[1].written) != 1 {
		t.Errorf("written: old %d, new %d; want 0, 1", len(pcs[0].written), len(pcs[1].written))
	}
	if d := r.Drops(); d[DropTTL] != 1 {
		t.Errorf("drops %v, want the old socket's TTL drop", d)
	}
	r.Close()
	if _, err := r.Receive(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Receive after Close = %v, want net.ErrClosed", err)
	}
	if err := r.Redial(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Redial after Close = %v, want net.ErrClosed", err)
	}
}
