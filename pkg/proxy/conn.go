package proxy

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// conn is one relayed connection, linked into its backend's list.
type conn struct {
	p               *Proxy
	b               *Backend
	client, backend *net.TCPConn

	prev, next *conn // in b's list, guarded by b.mu

	in, out atomic.Int64 // bytes client->backend, backend->client
	halves  atomic.Int32 // directions still running
	aborted atomic.Bool

	// Idle sweeping state, touched only by the sweeper under b.mu.
	seen      int64
	idleSince time.Time
}

// handle serves one accepted client: dial, then relay. The accepting
// goroutine's child copies client->backend itself; one more goroutine
// copies backend->client.
func (p *Proxy) handle(client *net.TCPConn) {
	defer p.wg.Done()
	backend, b := p.dial(client)
	if backend == nil {
		client.Close()
		p.noBackend.Add(1)
		p.active.Add(-1)
		return
	}
	c := &conn{p: p, b: b, client: client, backend: backend}
	c.halves.Store(2)
	if !b.add(c, &p.hard) {
		backend.Close()
		client.Close()
		b.active.Add(-1)
		p.active.Add(-1)
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		c.pump(backend, client, &c.out)
	}()
	c.pump(client, backend, &c.in)
}

// pump copies src to dst until EOF or an error. EOF passes on as a
// half-close (FIN) and the other direction keeps going; an error ends
// both. The last direction to finish tears the connection down.
func (c *conn) pump(src, dst *net.TCPConn, count *atomic.Int64) {
	err := relay(src, dst, count)
	if err == nil && !c.aborted.Load() {
		err = dst.CloseWrite()
	}
	if err != nil {
		c.abort()
	}
	if c.halves.Add(-1) == 0 {
		c.finish()
	}
}

// abort closes both sockets; the pumps then return and finish cleans up.
func (c *conn) abort() {
	c.aborted.Store(true)
	c.client.Close()
	c.backend.Close()
}

func (c *conn) finish() {
	c.client.Close()
	c.backend.Close()
	c.b.remove(c)
	c.b.active.Add(-1)
	c.p.active.Add(-1)
}

// dial connects to a backend for client. A failed dial marks the backend
// suspect and the next candidate is tried at once, so a client never sees
// a refusal while some backend is healthy; when every candidate failed
// it pauses briefly and starts over, all within ConnectTimeout. On
// success the backend's Active count already includes the connection.
func (p *Proxy) dial(client *net.TCPConn) (*net.TCPConn, *Backend) {
	var caddr netip.AddrPort
	if a, ok := client.RemoteAddr().(*net.TCPAddr); ok {
		caddr = a.AddrPort()
	}
	ctx, cancel := context.WithTimeout(p.hardCtx, p.cfg.ConnectTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var tried []*Backend
	pause := 10 * time.Millisecond
	for {
		b := p.pool.pick(caddr, tried)
		if b == nil {
			if len(tried) == 0 {
				return nil, nil // nothing healthy at all
			}
			// Every candidate failed this round (a rolling restart, say):
			// wait a little and try them all again.
			t := p.cfg.Clock.NewTimer(pause)
			select {
			case <-t.C():
			case <-ctx.Done():
				t.Stop()
				return nil, nil
			}
			pause = min(2*pause, 200*time.Millisecond)
			tried = tried[:0]
			continue
		}
		// One unresponsive backend (SYNs blackholed) must not eat the
		// whole budget: each attempt gets a share of what is left.
		attempt := time.Until(deadline) / time.Duration(max(1, p.pool.Healthy()-len(tried)))
		actx, acancel := context.WithTimeout(ctx, attempt)
		bc, err := p.dialer.DialTCP(actx, "tcp", netip.AddrPort{}, b.Addr)
		acancel()
		if err == nil {
			return bc, b
		}
		b.active.Add(-1)
		if p.hard.Load() {
			return nil, nil
		}
		p.pool.markSuspect(b)
		p.log.Debug("dial failed", "backend", b.Addr, "client", caddr, "err", err)
		if ctx.Err() != nil {
			return nil, nil
		}
		tried = append(tried, b)
		p.retries.Add(1)
	}
}
