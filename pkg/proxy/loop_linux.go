package proxy

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The data path is one event loop per GOMAXPROCS, like haproxy's
// threads: each loop owns an epoll instance, accepts from every one of
// the shared listeners and keeps what it accepted, dials backends with
// non-blocking connects and relays bytes with read(2)/write(2) through
// one scratch buffer (splice(2) for long bulk streams with
// Config.Splice). Per connection there is no goroutine, no stack, no
// runtime timer and no buffer while idle: an idle connection costs under
// 1 KiB of RSS (docs/proxy-tuning.md#event-loops).
//
// Where each part lives:
//   - loop_linux.go (this file): the loop's life, its event dispatch,
//     accepting, and tearing connections down (finish, abort,
//     closeLocal).
//   - wait_linux.go: how a loop waits for events, parked in Go's
//     netpoller or in epoll_wait with a spin, and when it yields.
//   - dial_linux.go: adopting a client and dialing its backend, with
//     retries within Config.ConnectTimeout.
//   - relay_linux.go: moving bytes (pump, flush), splice pipes, and the
//     buffers that hold data a peer cannot take yet.
//   - timer_linux.go: the loop's deadlines and their heap.
//   - sockopt_linux.go, listen_linux.go: socket options, the listeners.
//   - sys_linux.go: the raw system calls the loops make.
//
// Who owns what:
//   - A loop's goroutine alone touches the loop's fields (but cmds) and,
//     of each conn it accepted, the state, the backend (conn.b), the
//     dial fields, the timer fields and both sides (readiness, pending
//     data, pipes). No lock: other goroutines never read them.
//   - loop.mu guards loop.cmds: other goroutines reach a loop only by
//     posting a function to it (post, postWait), which the loop runs.
//   - conn.mu guards the conn's two file descriptors (side.fd) and
//     conn.closed. abort shuts the sockets down from other goroutines
//     (the idle sweep, rebalancing, CloseOnDown), so the loop changes or
//     closes an fd only under it: a closed fd number is reused at once.
//     The loop reads its own fds without it.
//   - Backend.mu guards the backend's list of established conns
//     (conn.prev, conn.next), its byte totals of closed ones, and the
//     sweep's conn.seen and conn.idleSince. The loop takes it to link and
//     unlink a conn (Backend.add, remove); the sweeper, the rebalancer
//     and Stats to walk the list.
//   - Atomics are what crosses goroutines without a lock: conn.aborted
//     (set by abort, checked by the loop), conn.in and conn.out (added
//     by the loop, read by the sweeper and Stats), a Backend's counters,
//     health and suspect hold-down, and the Proxy's counters.

const (
	// acceptBatch bounds accepts per wake-up so one loop does not take a
	// whole burst while the others idle: the listener stays readable and
	// wakes the next loop (docs/proxy-tuning.md#accept-batch).
	acceptBatch = 4
	maxEvents   = 256
)

const (
	evRead  = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR
	evWrite = unix.EPOLLOUT | unix.EPOLLHUP | unix.EPOLLERR
	evHup   = unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR
	evDead  = unix.EPOLLHUP | unix.EPOLLERR
	evConn  = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET
)

// loop is one event loop. Its epoll events carry a tag in Pad: a
// connection's socket its side's gen (positive, see register), a
// listener -1-i for lns[i], the eventfd 0.
type loop struct {
	p    *Proxy
	epfd int
	evfd int         // eventfd: wakes the loop for posted commands
	lns  []*listener // the Proxy's, shared by every loop

	listening   bool          // lns are in the epoll set
	acceptPause time.Duration // back-off after accept errors
	resumeAt    int64         // Clock instant (unix ns) when accepting resumes; 0: not paused

	socks   []*side // by fd
	gen     int32
	scratch []byte
	spare   [][]byte // scratchSize buffers for reuse
	small   [][]byte // keepCopy buffers for reuse
	held    int      // scratchSize buffers holding unwritten rests (see maxHeld)
	pipes   [][2]int // empty pipes for reuse
	timers  timerHeap

	mu   sync.Mutex
	cmds []func(*loop) bool // true: exit the loop

	// Waiting in the netpoller: file is a duplicate of epfd registered
	// there (see attach). nil: the loop waits in epoll_wait (rawWait).
	file     *os.File
	rc       syscall.RawConn
	armed    int64 // the loop deadline (nextTimer) that file's read deadline stands for; 0: none, -1: expired
	pollFn   func(uintptr) bool
	pollEvs  []unix.EpollEvent
	pollN    int
	pollErr  error
	parked   bool  // the last wait parked (gave its P back to the runtime)
	ranSince int64 // unix ns since the loop has run without parking or yielding

	accepts  int64 // accepted since winStart
	bulk     int64 // bytes read (or spliced) in reads of bulkRead or more since winStart
	winStart int64 // unix ns: start of the window the rates are taken over (see pickWait)

	done chan struct{}
	err  error
}

// startLoops creates one loop per GOMAXPROCS and starts them.
func (p *Proxy) startLoops() error {
	if p.rawAbove == (waitRates{}) {
		p.rawAbove, p.rawBelow = rawAbove, rawBelow
	}
	n := runtime.GOMAXPROCS(0)
	for range n {
		l, err := newLoop(p)
		if err != nil {
			for _, l := range p.loops {
				l.post(func(*loop) bool { return true })
				<-l.done
			}
			p.loops = nil
			return err
		}
		p.loops = append(p.loops, l)
	}
	for _, l := range p.loops {
		go l.run()
	}
	return nil
}

func newLoop(p *Proxy) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	l := &loop{p: p, epfd: epfd, evfd: evfd, lns: p.lns, scratch: make([]byte, scratchSize), done: make(chan struct{})}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("epoll add eventfd: %w", err)
	}
	if err := l.listen(); err != nil {
		l.closeFDs()
		return nil, err
	}
	// Non-blocking, so that os.NewFile puts its duplicates in the
	// netpoller; it does not change how epoll_wait waits.
	if err := unix.SetNonblock(epfd, true); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("epoll fd non-blocking: %w", err)
	}
	l.pollFn = l.poll
	l.winStart = time.Now().UnixNano()
	if !waitRaw(false, waitRates{}, p.rawAbove, p.rawBelow) {
		if err := l.attach(); err != nil {
			l.closeFDs()
			return nil, err
		}
	}
	return l, nil
}

func (l *loop) closeFDs() {
	for _, p := range l.pipes {
		unix.Close(p[0])
		unix.Close(p[1])
	}
	l.pipes = nil
	unix.Close(l.evfd)
	if l.file != nil {
		l.file.Close()
	}
	unix.Close(l.epfd)
}

// listen registers every listener, exclusive so a connection wakes one
// loop: all of them or, on failure, none.
func (l *loop) listen() error {
	for i, ln := range l.lns {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(ln.fd), Pad: int32(-1 - i)}
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, ln.fd, &ev); err != nil {
			for _, ln := range l.lns[:i] {
				unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, ln.fd, nil)
			}
			return fmt.Errorf("epoll add listener %v: %w", ln.addr, err)
		}
	}
	l.listening = true
	return nil
}

func (l *loop) unlisten() {
	if l.listening {
		for _, ln := range l.lns {
			unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, ln.fd, nil)
		}
		l.listening = false
	}
	l.resumeAt = 0
}

// post runs f on the loop; f returning true ends the loop.
func (l *loop) post(f func(*loop) bool) {
	l.mu.Lock()
	l.cmds = append(l.cmds, f)
	l.mu.Unlock()
	var one = [8]byte{1}
	unix.Write(l.evfd, one[:])
}

// postWait runs f on every running loop and waits for them.
func (p *Proxy) postWait(f func(*loop)) {
	acks := make([]chan struct{}, len(p.loops))
	for i, l := range p.loops {
		ack := make(chan struct{})
		acks[i] = ack
		l.post(func(l *loop) bool { f(l); close(ack); return false })
	}
	for i, l := range p.loops {
		select {
		case <-acks[i]:
		case <-l.done:
		}
	}
}

func (l *loop) runCmds() (exit bool) {
	var b [8]byte
	unix.Read(l.evfd, b[:])
	l.mu.Lock()
	cmds := l.cmds
	l.cmds = nil
	l.mu.Unlock()
	for _, f := range cmds {
		if f(l) {
			exit = true
		}
	}
	return exit
}

func (l *loop) run() {
	defer close(l.done)
	defer l.closeFDs()
	events := make([]unix.EpollEvent, maxEvents)
	for {
		n, err := l.wait(events)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			l.err = fmt.Errorf("epoll_wait: %w", err)
			l.p.log.Error("event loop failed", "err", err)
			l.closeAll()
			return
		}
		for i := range events[:n] {
			ev := &events[i]
			switch {
			case ev.Pad > 0:
				if fd := int(ev.Fd); fd < len(l.socks) {
					if s := l.socks[fd]; s != nil && s.gen == ev.Pad {
						l.event(s, ev.Events)
					}
				}
			case ev.Pad < 0:
				if l.listening {
					l.accept(l.lns[-1-ev.Pad])
				}
			default:
				if l.runCmds() {
					l.closeAll()
					return
				}
			}
		}
		if len(l.timers) > 0 || l.resumeAt != 0 {
			l.expire(l.clockNow())
		}
		now := time.Now().UnixNano()
		l.pickWait(now)
		if l.yieldDue(now) {
			runtime.Gosched()
		}
	}
}

// register adds fd to the loop's epoll and table.
func (l *loop) register(s *side) error {
	for s.fd >= len(l.socks) {
		l.socks = append(l.socks, make([]*side, max(64, len(l.socks)))...)
	}
	l.gen++
	if l.gen <= 0 {
		l.gen = 1 // wrapped: keep the tag positive (see loop)
	}
	s.gen = l.gen
	l.socks[s.fd] = s
	ev := unix.EpollEvent{Events: evConn, Fd: int32(s.fd), Pad: s.gen}
	if err := rawEpollCtl(l.epfd, unix.EPOLL_CTL_ADD, s.fd, &ev); err != 0 {
		l.socks[s.fd] = nil
		return err
	}
	return nil
}

func (l *loop) accept(ln *listener) {
	p := l.p
	for range acceptBatch {
		nfd, client, err := rawAccept4(ln.fd)
		if err != 0 {
			switch err {
			case unix.EAGAIN:
				return
			case unix.EINTR, unix.ECONNABORTED:
				continue
			}
			// Out of descriptors or memory: stop accepting for a while
			// rather than spin on a listener that stays readable.
			p.acceptErrors.Add(1)
			l.pauseAccepting("accept", err)
			return
		}
		if p.active.Load() >= int64(p.cfg.MaxConns) {
			p.refused.Add(1)
			rawClose(nfd)
			continue
		}
		p.active.Add(1)
		ln.accepted.Add(1)
		l.accepts++
		// The loop keeps what it accepts. The listener wakes one parked
		// loop per connection (EPOLLEXCLUSIVE), so while one loop is busy
		// the next connection goes to another: connections spread by how
		// busy the loops are, not by how many they hold. Handing them to
		// the loop holding the fewest cost that loop a wake-up each
		// (docs/proxy-tuning.md#keeping-what-a-loop-accepts).
		l.adopt(nfd, client, ln)
		if !l.listening {
			return // its backend socket could not be opened: paused
		}
	}
}

// pauseAccepting stops accepting for a back-off (5ms doubling to 1s) after
// running out of descriptors or memory, in accept or in opening a backend
// socket: the listener stays readable, and taking clients that cannot be
// served would only close them one by one (a warning each) while the
// backlog holds them until descriptors are free. A backend socket opened
// ends the back-off (see connect); a paused or stopped loop stays as it is.
func (l *loop) pauseAccepting(what string, err error) {
	if !l.listening {
		return
	}
	l.acceptPause = acceptBackoff(l.acceptPause)
	if l.acceptPause == time.Second {
		l.p.log.Warn(what+" failing, backing off", "err", err, "backoff", l.acceptPause)
	} else {
		l.p.log.Debug(what+" failed, backing off", "err", err, "backoff", l.acceptPause)
	}
	l.unlisten()
	l.resumeAt = l.clockNow() + int64(l.acceptPause)
}

func (l *loop) event(s *side, ev uint32) {
	if ev&evRead != 0 {
		s.readable = true
	}
	if ev&evHup != 0 {
		s.hup = true
		// A reset (EPOLLERR) is no FIN: its read fails instead.
		s.fin = s.fin || ev&(unix.EPOLLRDHUP|unix.EPOLLERR) == unix.EPOLLRDHUP
	}
	if ev&evWrite != 0 {
		s.writable = true
	}
	c := s.c
	if c.aborted.Load() {
		l.finish(c)
		return
	}
	switch c.state {
	case stateDialing:
		if s == &c.be {
			if ev&evDead != 0 {
				err, _ := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR)
				l.dialFailed(c, unix.Errno(err))
			} else if ev&unix.EPOLLOUT != 0 {
				l.established(c)
			}
			return
		}
		fallthrough
	case statePaused:
		// A client that resets while we dial is gone; one that only
		// half-closed after sending its request is still served.
		if s == &c.cl && ev&evDead != 0 {
			l.finish(c)
		}
	case stateEstablished:
		l.relay(c)
	}
}

func (l *loop) finish(c *conn) {
	if c.state == stateDone {
		return
	}
	was := c.state
	c.state = stateDone
	l.timers.remove(c)
	c.mu.Lock()
	c.closed = true
	for _, s := range [...]*side{&c.cl, &c.be} {
		if s.fd >= 0 {
			l.socks[s.fd] = nil
			rawClose(s.fd)
			s.fd = -1
		}
		if s.pbuf != nil {
			l.putSpare(s.pbuf)
			s.pbuf, s.pending = nil, nil
		}
		l.dropPipe(s)
	}
	c.mu.Unlock()
	if c.b != nil {
		if was == stateEstablished {
			c.b.remove(c)
		}
		c.b.active.Add(-1)
	}
	l.p.connDone()
}

// closeAll finishes every connection of the loop.
func (l *loop) closeAll() {
	for _, s := range l.socks {
		if s != nil {
			l.finish(s.c)
		}
	}
	for len(l.timers) > 0 {
		l.finish(l.timers[0]) // paused connections hold no socket in the table
	}
}

// closeLocal finishes the loop's connections whose local address is one
// of addrs and returns how many. A connection's client socket is in the
// table from adopt to finish, whatever its state.
func (l *loop) closeLocal(addrs []netip.Addr) int {
	n := 0
	for _, s := range l.socks {
		if s != nil && slices.Contains(addrs, localAddr(s.c)) {
			l.finish(s.c) // takes both sides out of the table: counted once
			n++
		}
	}
	return n
}

// localAddr returns the address c's client connected to: its listener's,
// or, from a wildcard listener, the socket's own (asked here, not on the
// accept path); the zero Addr when the socket is gone.
func localAddr(c *conn) netip.Addr {
	if a := c.ln.addr.Addr(); !a.IsUnspecified() {
		return a
	}
	if c.cl.fd < 0 {
		return netip.Addr{}
	}
	sa, err := unix.Getsockname(c.cl.fd)
	if err != nil {
		return netip.Addr{}
	}
	return addrPort(sa).Addr()
}

// abort closes c from any goroutine: shutting both sockets down wakes the
// owning loop, which sees the aborted flag and finishes c.
func (c *conn) abort() {
	c.aborted.Store(true)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if c.cl.fd >= 0 {
		rawShutdown(c.cl.fd, unix.SHUT_RDWR)
	}
	if c.be.fd >= 0 {
		rawShutdown(c.be.fd, unix.SHUT_RDWR)
	}
}
