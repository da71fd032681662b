package proxy

import (
	"errors"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// adopt takes a client socket accepted from ln.
func (l *loop) adopt(nfd int, client netip.AddrPort, ln *listener) {
	p := l.p
	c := &conn{p: p, l: l, ln: ln, client: client, pause: 10 * time.Millisecond, tidx: -1}
	c.cl = side{c: c, peer: &c.be, fd: nfd, readable: true, writable: true, count: &c.out, pipeR: -1, pipeW: -1}
	c.be = side{c: c, peer: &c.cl, fd: -1, count: &c.in, pipeR: -1, pipeW: -1}
	if err := l.register(&c.cl); err != nil {
		p.log.Error("epoll add client", "err", err)
		rawClose(nfd)
		p.connDone()
		return
	}
	c.dialDeadline = l.clockNow() + int64(p.cfg.ConnectTimeout)
	l.dial(c)
}

// dial starts a connect to the next candidate backend. A failed dial
// marks the backend suspect and the next candidate is tried at once, so a
// client never sees a refusal while some backend is healthy; when every
// candidate failed it pauses briefly and starts over, all within
// ConnectTimeout.
func (l *loop) dial(c *conn) {
	p := l.p
	for {
		now := l.clockNow()
		b := p.pool.pick(c.client, c.tried)
		if b == nil {
			if len(c.tried) == 0 || now >= c.dialDeadline {
				p.noBackend.Add(1)
				l.finish(c)
				return
			}
			// Every candidate failed this round (a rolling restart,
			// say): wait a little and try them all again.
			c.state = statePaused
			c.tried = c.tried[:0]
			l.addTimer(c, min(now+int64(c.pause), c.dialDeadline))
			c.pause = min(2*c.pause, 200*time.Millisecond)
			return
		}
		c.b = b
		err := l.connect(c, b)
		if err == nil {
			// One unresponsive backend (SYNs blackholed) must not eat
			// the budget: see attemptShare.
			share := attemptShare(time.Duration(c.dialDeadline-now), p.pool.Healthy()-len(c.tried))
			c.state = stateDialing
			l.addTimer(c, now+int64(share))
			return
		}
		if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
			// Our own limit, not the backend's fault: this client is
			// lost, the ones behind it wait in the backlog.
			b.active.Add(-1)
			c.b = nil
			p.noBackend.Add(1)
			l.finish(c)
			l.pauseAccepting("opening a backend socket", err)
			return
		}
		l.dialError(c, err)
		if now >= c.dialDeadline {
			p.noBackend.Add(1)
			l.finish(c)
			return
		}
	}
}

// connect opens a non-blocking socket to b and registers it.
func (l *loop) connect(c *conn, b *Backend) error {
	family := unix.AF_INET
	if b.Addr.Addr().Is6() {
		family = unix.AF_INET6
	}
	fd, errno := rawSocket(family)
	if errno != 0 {
		return errno
	}
	l.acceptPause = 0 // descriptors to spare again
	// Keep-alive towards backends whatever CloseOnDown says. The health
	// checker only finds a backend that is dead as a whole; a single
	// connection can die alone (a NAT or firewall between the nodes drops
	// its state during a long quiet watch, or the backend's host reboots
	// faster than fall x interval), and keep-alive probes are what keep
	// such state alive and find such a peer. The four calls cost nothing
	// measurable (docs/proxy-tuning.md#keep-alive-towards-backends).
	if err := setConnOpts(fd); err != nil {
		rawClose(fd)
		return err
	}
	if o := l.p.recvOpt; o != 0 {
		if err := rawSetsockoptInt(fd, unix.SOL_SOCKET, o, l.p.cfg.RecvBuffer); err != 0 {
			rawClose(fd)
			return err
		}
	}
	if err := rawConnect(fd, b.Addr); err != 0 && err != unix.EINPROGRESS {
		rawClose(fd)
		return err
	}
	c.mu.Lock()
	c.be.fd = fd
	c.mu.Unlock()
	c.be.readable, c.be.writable, c.be.hup, c.be.fin = false, false, false, false
	if err := l.register(&c.be); err != nil {
		c.mu.Lock()
		c.be.fd = -1
		c.mu.Unlock()
		rawClose(fd)
		return err
	}
	return nil
}

// dialError records a failed attempt on c.b and releases it.
func (l *loop) dialError(c *conn, err error) {
	p := l.p
	b := c.b
	c.b = nil
	b.active.Add(-1)
	if c.aborted.Load() {
		return
	}
	p.pool.markSuspect(b, err)
	p.log.Debug("dial failed", "backend", b.Addr, "client", c.client, "err", err)
	c.tried = append(c.tried, b)
	p.retries.Add(1)
}

// dialFailed handles an attempt that failed after connect returned.
func (l *loop) dialFailed(c *conn, err error) {
	c.mu.Lock()
	l.socks[c.be.fd] = nil
	rawClose(c.be.fd)
	c.be.fd = -1
	c.mu.Unlock()
	l.dialError(c, err)
	if c.aborted.Load() || l.clockNow() >= c.dialDeadline {
		l.p.noBackend.Add(1)
		l.finish(c)
		return
	}
	l.dial(c)
}

func (l *loop) established(c *conn) {
	c.state = stateEstablished
	l.timers.remove(c) // the attempt's deadline
	c.tried = nil
	if !c.b.add(c, &l.p.hard) {
		l.finish(c)
		return
	}
	l.relay(c)
}
