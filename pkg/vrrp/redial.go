package vrrp

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
)

// RedialConn is a RawConn that can be opened again on the same interface
// name. A raw socket is bound to an interface index: when the interface
// is deleted and created again (driver reload, NIC hot-plug, netplan), the
// old socket neither sends nor receives, and only a new one reaches the
// new interface. The speaker keeps one Conn for its whole run; Redial
// swaps the socket under it.
type RedialConn struct {
	cfg  ConnConfig
	dial func(ConnConfig) (*RawConn, error)

	mu      sync.Mutex
	cur     *RawConn
	retired map[DropReason]uint64 // drops counted by closed sockets
	closed  bool
}

var _ Conn = (*RedialConn)(nil)

// DialRedial opens a RawConn (see Dial) that Redial can replace.
func DialRedial(cfg ConnConfig) (*RedialConn, error) {
	return newRedial(cfg, Dial)
}

func newRedial(cfg ConnConfig, dial func(ConnConfig) (*RawConn, error)) (*RedialConn, error) {
	c, err := dial(cfg)
	if err != nil {
		return nil, err
	}
	return &RedialConn{cfg: cfg, dial: dial, cur: c, retired: make(map[DropReason]uint64)}, nil
}

// Redial opens a new socket on the interface as it is now and closes the
// old one; a Receive blocked on the old one goes on with the new one.
// On error the old socket stays.
func (r *RedialConn) Redial() error {
	r.mu.Lock()
	cfg := r.cfg
	r.mu.Unlock()
	c, err := r.dial(cfg)
	if err != nil {
		return err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		c.Close()
		return net.ErrClosed
	}
	if len(r.cfg.Peers) > 0 {
		_ = c.SetPeers(r.cfg.Peers) // set while it was dialled: validated already
	}
	old := r.cur
	r.cur = c
	for reason, n := range old.Drops() {
		r.retired[reason] += n
	}
	r.mu.Unlock()
	old.Close()
	return nil
}

// SetPeers replaces the unicast peers of the current socket and of
// those Redial opens later (see RawConn.SetPeers).
func (r *RedialConn) SetPeers(peers []netip.Addr) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.cur.SetPeers(peers); err != nil {
		return err
	}
	r.cfg.Peers = slices.Clone(peers)
	return nil
}

func (r *RedialConn) conn() *RawConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// Send sends on the current socket.
func (r *RedialConn) Send(p *Packet) error { return r.conn().Send(p) }

// Receive receives on the current socket, and on its successor when
// Redial closes it meanwhile.
func (r *RedialConn) Receive() (Received, error) {
	for {
		c := r.conn()
		rcv, err := c.Receive()
		if err != nil && errors.Is(err, net.ErrClosed) {
			r.mu.Lock()
			replaced := !r.closed && r.cur != c
			r.mu.Unlock()
			if replaced {
				continue
			}
		}
		return rcv, err
	}
}

// Drops returns the drop counters of every socket so far, by reason.
func (r *RedialConn) Drops() map[DropReason]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.cur.Drops()
	for reason, n := range r.retired {
		m[reason] += n
	}
	return m
}

// Close closes the current socket; Receive returns net.ErrClosed.
func (r *RedialConn) Close() error {
	r.mu.Lock()
	r.closed = true
	c := r.cur
	r.mu.Unlock()
	return c.Close()
}
