package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The data path is one event loop per GOMAXPROCS, like haproxy's
// threads: each loop owns an epoll instance, accepts from the shared
// listener and keeps what it accepted, dials backends with non-blocking
// connects and relays bytes with read(2)/write(2) through one scratch
// buffer (splice(2) for long bulk streams with Config.Splice). Per
// connection there is no goroutine, no stack, no runtime timer and no
// buffer while idle: an idle connection costs under 1 KiB of RSS.
// The first version, two goroutines per connection with io.Copy-style
// loops, measured 0.65x haproxy's rate for a new connection per request
// and twice its memory per idle connection (bench/proxy).
//
// Loops make only raw system calls and wait for events in one of two
// ways, picked by their rates of new connections and bulk data (see
// rawAbove): parked in Go's netpoller on their epoll fd, or in epoll_wait
// on it like haproxy's threads. See also yieldAfter and sys_linux.go.

const (
	// scratchSize is the loop's read buffer; data stays in it only until
	// written, unless the write is partial (see keep). One read takes what
	// a socket holds, up to its 1 MiB receive buffer (Config.RecvBuffer).
	// Against the 64 KiB buffer with splice(2) after 16 MiB that came
	// before it (Config.Splice), 10 MiB responses from a Go server
	// arrived at 1.9-2.0 GB/s against 1.7-1.8, with 280-300 against
	// 350-430 ms of proxy CPU per GB (four at once: 2.6 against 2.1 GB/s);
	// 1 GiB ones at 1.9 against 1.5 GB/s; four iperf3 streams from one
	// process at 1.07-1.16 of haproxy's rate against 0.94-0.96 (paired
	// rounds). A spliced page stays the sender's until the receiver has
	// read it, so a sender on the same host writes into cold pages: its
	// copy cost about a third more per byte (perf). Only a single iperf3
	// stream ran faster spliced: 1.35-1.46 of haproxy's rate against
	// 1.22-1.28. Reading 64 KiB at a time without splice, four streams ran
	// at 0.62.
	scratchSize = 1 << 20
	// keepCopy is the largest unwritten rest that keep copies into a
	// buffer of its own size rather than keeping the scratch buffer: a
	// slow reader left a little holds 64 KiB, not 1 MiB.
	keepCopy = 64 << 10
	// maxHeld is how many scratch-size buffers a loop lets unwritten
	// rests hold. While they are out, its reads take keepCopy at most, so
	// many slow readers of bulk data hold 64 KiB each: with 200 clients
	// reading a 100 MB response at 1.6 MB/s each, the proxy's RSS was
	// 213 MiB without the limit, a 1 MiB rest per client (the kernel held
	// 1.2 GB of TCP memory for the same connections).
	maxHeld = 8
	// bulkRead is the smallest read counted as bulk (loop.bulk): an
	// exchange of small messages never reaches it.
	bulkRead = 64 << 10
	// acceptBatch bounds accepts per wake-up so one loop does not take a
	// whole burst while the others idle: the listener stays readable and
	// wakes the next loop. With a new connection per request, 4 ran at
	// 1.05-1.07 of haproxy's rate against 1.00-1.03 for 16 (8 in between,
	// 1 and 2 like 4; paired runs of wrk, 8-10 rounds).
	acceptBatch = 4
	maxEvents   = 256
	// maxSpare is how many pending-data buffers of each size, and empty
	// pipes, a loop keeps for reuse.
	maxSpare = maxHeld
	// spliceAfter is how many bytes of bulk reads (bulkRead or more) a
	// direction takes before it is spliced, with Config.Splice.
	spliceAfter = 16 << 20
	// pipeSize is the capacity asked for each splice pipe (F_SETPIPE_SZ),
	// so one splice pair moves up to 1 MiB instead of the default 64 KiB.
	// Only page references sit in it. A single iperf3 stream went from
	// 0.86 of haproxy's rate to 1.21, and the proxy's CPU per GB from 403
	// to 231 ms (bench/proxy, 8 runs each).
	pipeSize = 1 << 20
)

// yieldAfter is how long a loop may keep finding events without parking
// before it yields (runtime.Gosched, which also wakes an idle P). Its
// system calls are raw, so a busy loop never enters the scheduler by
// itself, and whatever needs the scheduler waits until it parks: a
// goroutine queued behind it on its P (another loop, the VRRP speaker),
// or the other loop's wake-up from the netpoller while no idle thread is
// polling. The runtime's backstop is sysmon, which sleeps until the next
// timer once every P was idle. With a new connection per request, 1-2% of
// requests waited 20-750 ms for that (a stalled loop woke to find an event
// on each of its connections); yielding after 1 ms of running left none
// over 30 ms and cost nothing measurable with keep-alive, where yielding
// after every batch cost 5-10% of the rate (bench/proxy).
const yieldAfter = int64(time.Millisecond)

const (
	evRead  = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR
	evWrite = unix.EPOLLOUT | unix.EPOLLHUP | unix.EPOLLERR
	evHup   = unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR
	evDead  = unix.EPOLLHUP | unix.EPOLLERR
	evConn  = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET
)

// listenFD is the listening socket, bound with IP_FREEBIND. Accepted
// sockets inherit TCP_NODELAY, the keep-alive settings and the receive
// buffer (recvBuf bytes, 0: autotuned) from it (checked on Linux), which
// saves six setsockopt calls per connection. recvOpt is the option that
// set the buffer, for the backend sockets (see setRecvBuf).
func listenFD(addr netip.AddrPort, recvBuf int) (fd int, bound netip.AddrPort, recvOpt int, err error) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	family := unix.AF_INET
	if addr.Addr().Is6() {
		family = unix.AF_INET6
	}
	fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, netip.AddrPort{}, 0, fmt.Errorf("socket: %w", err)
	}
	fail := func(what string, err error) (int, netip.AddrPort, int, error) {
		unix.Close(fd)
		return -1, netip.AddrPort{}, 0, fmt.Errorf("%s: %w", what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("set SO_REUSEADDR", err)
	}
	if family == unix.AF_INET6 {
		// Only the address asked for, as with a tcp6 listener in Go.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fail("set IPV6_V6ONLY", err)
		}
	}
	if err := setFreebind(fd, family == unix.AF_INET6); err != nil {
		return fail("set freebind", err)
	}
	if err := setConnOpts(fd); err != nil {
		return fail("set socket options", err)
	}
	if recvBuf > 0 {
		// Set before listen: the window scale of accepted connections
		// is chosen from it.
		if recvOpt, err = setRecvBuf(fd, recvBuf); err != nil {
			return fail("set receive buffer", err)
		}
	}
	if err := unix.Bind(fd, sockaddr(addr)); err != nil {
		return fail("bind "+addr.String(), err)
	}
	// The kernel caps the backlog at net.core.somaxconn.
	if err := unix.Listen(fd, 65535); err != nil {
		return fail("listen", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	return fd, addrPort(sa), recvOpt, nil
}

// setRecvBuf sets fd's receive buffer to size with SO_RCVBUFFORCE, which
// needs CAP_NET_ADMIN and ignores net.core.rmem_max, or else with
// SO_RCVBUF. It returns the option that worked, for the backend sockets.
func setRecvBuf(fd, size int) (int, error) {
	err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
	if err == nil {
		return unix.SO_RCVBUFFORCE, nil
	}
	if err != unix.EPERM {
		return 0, err
	}
	return unix.SO_RCVBUF, unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size)
}

// setFreebind sets IPV6_FREEBIND on IPv6 sockets (Linux 4.15+) and falls
// back to IP_FREEBIND, which Linux honours on IPv6 sockets too (the flag
// is shared; SOL_IP options reach inet-level code for AF_INET6 TCP).
func setFreebind(fd int, v6 bool) error {
	if v6 {
		if err := unix.SetsockoptInt(fd, unix.SOL_IPV6, unix.IPV6_FREEBIND, 1); err == nil {
			return nil
		}
	}
	return unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_FREEBIND, 1)
}

// setConnOpts sets TCP_NODELAY (relayed requests must not wait for
// Nagle) and TCP keep-alive (a dead peer is found within a minute and a
// half, and middleboxes keep the state of a quiet watch). Both sides of
// every connection get the same: the listener, whose accepted sockets
// inherit it, and each backend socket.
func setConnOpts(fd int) error {
	for _, o := range [...]struct{ level, opt, val int }{
		{unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(KeepAliveIdle / time.Second)},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(KeepAliveInterval / time.Second)},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, KeepAliveCount},
	} {
		if err := rawSetsockoptInt(fd, o.level, o.opt, o.val); err != 0 {
			return err
		}
	}
	return nil
}

func sockaddr(a netip.AddrPort) unix.Sockaddr {
	if a.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(a.Port()), Addr: a.Addr().As16()}
}

func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

func closeFD(fd int) { unix.Close(fd) }

// loop is one event loop.
type loop struct {
	p    *Proxy
	epfd int
	evfd int // eventfd: wakes the loop for posted commands
	lnfd int

	listening   bool
	acceptPause time.Duration // back-off after accept errors
	resumeAt    int64         // unix ns when accepting resumes; 0: not paused

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
	deadline time.Time // read deadline set on file; zero: none
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
	l := &loop{p: p, epfd: epfd, evfd: evfd, lnfd: p.lnfd, scratch: make([]byte, scratchSize), done: make(chan struct{})}
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

// How a loop waits for events is picked by what it does (see pickWait).
//
// Parked in Go's netpoller (epfd nested in the runtime's epoll instance)
// is best for many small exchanges on long-lived connections, the API
// server's usual traffic: keep-alive requests ran at 1.10 of haproxy's
// rate with a p99 latency 1.09 of its, against 1.17 and 0.62 when every
// loop waited in epoll_wait with its spin (spinFor), 1.03 and 1.01
// without the spin (paired runs of wrk, 6 rounds). A spinning loop uses
// up its fair share of the CPU, and the kernel's scheduler then runs it
// after the client and server when it has work.
//
// With many new connections, or bulk streams, epoll_wait with the spin
// wins: new connections 1.02 of haproxy's rate against 0.95, four
// iperf3 streams from one process 1.14 against 1.08 (one stream: 1.22
// against 1.23; spliced, 1.36 against 1.18; paired rounds). An event on
// a nested epoll instance wakes the runtime's poller thread, which
// hands the loop to whichever thread holds a free P: three times
// haproxy's cross-CPU wake-up interrupts, and the CPUs idle 5-7% of the
// time against 1-3%.
//
// A loop waits in epoll_wait once it accepts or reads bulk at rawAbove's
// rates over a waitWindow, and goes back to the netpoller when both fall
// under rawBelow's.
var (
	rawAbove = waitRates{accepts: 1000, bulk: 64 << 20}
	rawBelow = waitRates{accepts: 250, bulk: 16 << 20}
)

const waitWindow = int64(100 * time.Millisecond)

// holdWait is how long, in milliseconds, a loop waiting in epoll_wait
// keeps its P (rawEpollWait) before it waits on in an ordinary system
// call that gives the P back to the runtime. Under load every wait ends
// within it, without the runtime handing the P to another thread and
// back (waiting in the ordinary call from the start: 0.98 against 1.00
// of haproxy's rate with new connections). An idle loop ends up in the
// ordinary call, where neither sysmon nor the garbage collector has to
// interrupt it. While every loop holds a P, another goroutine (the VRRP
// speaker in hapod run) waits for one about holdWait plus yieldAfter at
// most.
const holdWait = 2

// spinFor is how long a loop waiting in epoll_wait polls, yielding the
// CPU between polls (sched_yield), before it sleeps. Without it a loop
// slept about once per request and was woken, often onto a CPU that had
// gone idle meanwhile: the proxy's threads slept three times as often as
// haproxy's, whose threads were mostly preempted while runnable, and the
// CPUs idled 5-7% of the time against 1-3%. A 20µs spin took the idle
// time to 3% without more CPU per request (37.9 against 38.0 µs) and the
// rate from 0.991 to 1.020 of haproxy's (paired runs of wrk, a new
// connection per request, 6 rounds). It costs a loop at most spinFor per
// wake-up, and loops spin only at the rates that put them in epoll_wait
// (rawAbove).
const spinFor = 20 * time.Microsecond

// waitRaw reports whether a loop working at rates got should wait in
// epoll_wait rather than in the netpoller; raw is how it waits now.
func waitRaw(raw bool, got, above, below waitRates) bool {
	limit := above
	if raw {
		limit = below
	}
	return got.accepts >= limit.accepts || got.bulk >= limit.bulk
}

// pickWait switches the loop's wait once per waitWindow (see rawAbove).
func (l *loop) pickWait(now int64) {
	el := now - l.winStart
	if el < waitWindow {
		return
	}
	raw := l.file == nil
	sec := float64(time.Second) / float64(el)
	got := waitRates{accepts: float64(l.accepts) * sec, bulk: float64(l.bulk) * sec}
	want := waitRaw(raw, got, l.p.rawAbove, l.p.rawBelow)
	l.accepts, l.bulk, l.winStart = 0, 0, now
	switch {
	case want && !raw:
		l.detach()
	case !want && raw:
		if err := l.attach(); err != nil {
			// Out of descriptors: epoll_wait serves as well.
			l.p.log.Debug("event loop stays out of the netpoller", "err", err)
		}
	}
}

// attach puts a duplicate of the epoll fd in the netpoller; the loop
// parks there from its next wait. The duplicate lets detach take it out
// again by closing it, while epfd stays open.
func (l *loop) attach() error {
	fd, err := unix.FcntlInt(uintptr(l.epfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("dup epoll fd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return err
	}
	l.file, l.rc, l.deadline = f, rc, time.Time{}
	return nil
}

// detach takes the epoll fd out of the netpoller; the loop waits in
// epoll_wait from its next wait. Left registered, every event would also
// wake the runtime's poller thread.
func (l *loop) detach() {
	l.file.Close()
	l.file, l.rc = nil, nil
}

// wait returns the next batch of events; none when a timer is due or a
// signal interrupted the wait.
func (l *loop) wait(events []unix.EpollEvent) (int, error) {
	if l.file == nil {
		return l.rawWait(events)
	}
	var want time.Time
	if next := l.nextTimer(); next != 0 {
		want = time.Unix(0, next)
	}
	if !want.Equal(l.deadline) {
		if err := l.file.SetReadDeadline(want); err != nil {
			return 0, err
		}
		l.deadline = want
	}
	l.pollEvs = events
	if err := l.rc.Read(l.pollFn); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Expired deadlines stay expired until set again.
			l.deadline = time.Unix(0, 1)
			return 0, nil
		}
		return 0, err
	}
	return l.pollN, l.pollErr
}

// rawWait is wait in epoll_wait: a spin of polls (see spinFor), up to
// holdWait holding the P, then as an ordinary system call.
func (l *loop) rawWait(events []unix.EpollEvent) (int, error) {
	timeout := -1
	if next := l.nextTimer(); next != 0 {
		// Round up: waking a little late is harmless, early is a spin.
		timeout = int(max(0, (next-time.Now().UnixNano()+int64(time.Millisecond)-1)/int64(time.Millisecond)))
	}
	if timeout != 0 {
		if n, err := l.spin(events); n != 0 || err != 0 {
			return epollResult(n, err)
		}
	}
	if timeout >= 0 && timeout <= holdWait {
		return epollResult(rawEpollWait(l.epfd, events, timeout))
	}
	if n, err := rawEpollWait(l.epfd, events, holdWait); n != 0 || err != 0 {
		return epollResult(n, err)
	}
	if timeout > 0 {
		timeout -= holdWait
	}
	n, err := unix.EpollWait(l.epfd, events, timeout)
	l.parked = true
	if err == unix.EINTR {
		return 0, nil
	}
	return n, err
}

// spin polls the epoll instance for up to spinFor, giving the CPU to
// whatever else is runnable on it between polls.
func (l *loop) spin(events []unix.EpollEvent) (int, unix.Errno) {
	end := time.Now().UnixNano() + int64(spinFor)
	for {
		if n, err := rawEpollWait(l.epfd, events, 0); n != 0 || err != 0 {
			return n, err
		}
		if time.Now().UnixNano() >= end {
			return 0, 0
		}
		rawSchedYield()
	}
}

func epollResult(n int, err unix.Errno) (int, error) {
	if err == unix.EINTR {
		return 0, nil
	}
	return n, errnoErr(err)
}

// poll is the RawConn callback: false parks the loop until the epoll fd
// is readable, i.e. some registered socket has an event.
func (l *loop) poll(uintptr) bool {
	n, err := rawEpollWait(l.epfd, l.pollEvs, 0)
	if err == unix.EINTR {
		l.pollN, l.pollErr = 0, nil
		return true
	}
	l.pollN, l.pollErr = n, errnoErr(err)
	if n == 0 && err == 0 {
		l.parked = true
		return false
	}
	return true
}

func (l *loop) nextTimer() int64 {
	next := int64(0)
	if len(l.timers) > 0 {
		next = l.timers[0].when
	}
	if l.resumeAt != 0 && (next == 0 || l.resumeAt < next) {
		next = l.resumeAt
	}
	return next
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

// listen registers the listener, exclusive so a connection wakes one loop.
func (l *loop) listen() error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(l.lnfd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.lnfd, &ev); err != nil {
		return fmt.Errorf("epoll add listener: %w", err)
	}
	l.listening = true
	return nil
}

func (l *loop) unlisten() {
	if l.listening {
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.lnfd, nil)
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
			switch fd := int(ev.Fd); fd {
			case l.evfd:
				if l.runCmds() {
					l.closeAll()
					return
				}
			case l.lnfd:
				if l.listening {
					l.accept()
				}
			default:
				if fd < len(l.socks) {
					if s := l.socks[fd]; s != nil && s.gen == ev.Pad {
						l.event(s, ev.Events)
					}
				}
			}
		}
		now := time.Now().UnixNano()
		if len(l.timers) > 0 || l.resumeAt != 0 {
			l.expire(now)
		}
		l.pickWait(now)
		if l.yieldDue(now) {
			runtime.Gosched()
		}
	}
}

// yieldDue reports whether the loop has run for yieldAfter since it last
// parked or yielded, and if so starts counting again from now.
func (l *loop) yieldDue(now int64) bool {
	if l.parked {
		l.parked = false
		l.ranSince = now
		return false
	}
	if now-l.ranSince < yieldAfter {
		return false
	}
	l.ranSince = now
	return true
}

func (l *loop) expire(now int64) {
	if l.resumeAt != 0 && now >= l.resumeAt {
		l.resumeAt = 0
		if err := l.listen(); err != nil {
			l.p.log.Error("resume accepting", "err", err)
		}
	}
	for len(l.timers) > 0 && l.timers[0].when <= now {
		c := l.timers[0]
		l.timers.remove(c)
		switch c.state {
		case stateDialing:
			l.dialFailed(c, unix.ETIMEDOUT)
		case statePaused:
			l.dial(c)
		}
	}
}

func (l *loop) addTimer(c *conn, when int64) {
	l.timers.remove(c)
	c.when = when
	l.timers.push(c)
}

// register adds fd to the loop's epoll and table.
func (l *loop) register(s *side) error {
	for s.fd >= len(l.socks) {
		l.socks = append(l.socks, make([]*side, max(64, len(l.socks)))...)
	}
	l.gen++
	s.gen = l.gen
	l.socks[s.fd] = s
	ev := unix.EpollEvent{Events: evConn, Fd: int32(s.fd), Pad: s.gen}
	if err := rawEpollCtl(l.epfd, unix.EPOLL_CTL_ADD, s.fd, &ev); err != 0 {
		l.socks[s.fd] = nil
		return err
	}
	return nil
}

func (l *loop) accept() {
	p := l.p
	for range acceptBatch {
		nfd, client, err := rawAccept4(l.lnfd)
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
		p.accepted.Add(1)
		l.accepts++
		// The loop keeps what it accepts. The listener wakes one parked
		// loop per connection (EPOLLEXCLUSIVE), so while one loop is busy
		// the next connection goes to another: connections spread by how
		// busy the loops are, not by how many they hold. Handing them to
		// the loop holding the fewest (the first version) cost a wake-up
		// of that loop for a quarter of new connections: 0.65 instead of
		// 0.4 context switches per short request, and no gain on long
		// streams (bench/proxy).
		l.adopt(nfd, client)
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
	l.resumeAt = time.Now().Add(l.acceptPause).UnixNano()
}

// adopt takes an accepted client socket.
func (l *loop) adopt(nfd int, client netip.AddrPort) {
	p := l.p
	c := &conn{p: p, l: l, client: client, pause: 10 * time.Millisecond, tidx: -1}
	c.cl = side{c: c, peer: &c.be, fd: nfd, readable: true, writable: true, count: &c.out, pipeR: -1, pipeW: -1}
	c.be = side{c: c, peer: &c.cl, fd: -1, count: &c.in, pipeR: -1, pipeW: -1}
	if err := l.register(&c.cl); err != nil {
		p.log.Error("epoll add client", "err", err)
		rawClose(nfd)
		p.connDone()
		return
	}
	c.dialDeadline = time.Now().Add(p.cfg.ConnectTimeout).UnixNano()
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
		now := time.Now().UnixNano()
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
			// the whole budget: each attempt gets a share of what is left.
			share := (c.dialDeadline - now) / int64(max(1, p.pool.Healthy()-len(c.tried)))
			c.state = stateDialing
			l.addTimer(c, now+share)
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
	// such state alive and find such a peer. The raw setsockopt calls
	// per dial cost next to nothing beside the connect: without the four
	// keep-alive ones, new connections ran at the same rate (0.950 of
	// haproxy's against 0.945, 10 paired rounds).
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
	p.pool.markSuspect(b)
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
	if c.aborted.Load() || time.Now().UnixNano() >= c.dialDeadline {
		l.p.noBackend.Add(1)
		l.finish(c)
		return
	}
	l.dial(c)
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

// relay moves what it can both ways and finishes c when both directions
// are done.
func (l *loop) relay(c *conn) {
	if !l.pump(&c.cl, &c.be) || !l.pump(&c.be, &c.cl) {
		l.finish(c)
		return
	}
	if c.cl.eof && c.be.eof && c.cl.shut && c.be.shut {
		l.finish(c)
	}
}

// pump copies src to dst until src would block, dst is full, or src
// ended (then dst gets a FIN: half-close passes through). It returns
// false when the connection must be torn down.
//
// Reads go through the loop's scratch buffer with read(2) and write(2);
// see scratchSize for why by default. With Config.Splice, a direction
// that has read spliceAfter bytes in bulk reads is spliced through a pipe
// from then on: the kernel moves page references and the proxy copies
// nothing.
func (l *loop) pump(src, dst *side) bool {
	for {
		if !l.flush(dst) {
			return false
		}
		if dst.pipeN > 0 || len(dst.pending) > 0 {
			return true // dst is full; its EPOLLOUT resumes us
		}
		if src.eof {
			if !dst.shut {
				dst.shut = true
				if dst.eof && src.pipeN == 0 && len(src.pending) == 0 {
					// The other direction is over too: close(2) sends
					// this FIN, without a shutdown call and, towards a
					// peer that already closed, without its RST.
					return true
				}
				if err := rawShutdown(dst.fd, unix.SHUT_WR); err != 0 && err != unix.ENOTCONN {
					return false
				}
			}
			return true
		}
		if !src.readable {
			return true
		}
		if src.bulk >= spliceAfter && l.takePipe(dst) {
			// The pipe is empty here, so EAGAIN means the socket is.
			n, err := rawSplice(src.fd, dst.pipeW, pipeSize)
			if err != 0 {
				if err == unix.EAGAIN {
					src.readable = false
					l.dropPipe(dst)
					return true
				}
				return false
			}
			if n == 0 {
				src.eof = true
				l.dropPipe(dst)
				continue
			}
			dst.pipeN = n
			l.bulk += int64(n)
			continue
		}
		buf := l.scratch
		if l.held >= maxHeld {
			buf = buf[:keepCopy]
		}
		n, err := rawRead(src.fd, buf)
		if err != 0 {
			if err == unix.EAGAIN {
				src.readable = false
				return true
			}
			return false
		}
		if n == 0 {
			src.eof = true
			continue
		}
		if n >= bulkRead {
			l.bulk += int64(n)
			if l.p.cfg.Splice {
				src.bulk += n
			}
		}
		if n < len(buf) {
			if src.fin {
				// A short read drained the socket, and nothing comes
				// after the peer's FIN: skip the read that would return 0.
				src.eof = true
			} else if !src.hup {
				// A short read drained the socket: with edge-triggered
				// epoll the next arrival raises a new event, so skip the
				// read that would only say EAGAIN. Not after a reset was
				// signalled: that event may already be consumed.
				src.readable = false
			}
		}
		w := 0
		if dst.writable {
			// The last data before a FIN that this call passes on goes
			// out corked (MSG_MORE): the shutdown or close that follows
			// sends data and FIN in one segment, as haproxy does, instead
			// of two segments and two wake-ups of the peer.
			w, err = rawSend(dst.fd, l.scratch[:n], src.eof && !dst.shut)
			if err != 0 {
				if err != unix.EAGAIN {
					return false
				}
				dst.writable = false
				w = 0
			}
		}
		if w > 0 {
			dst.count.Add(int64(w))
		}
		if w < n {
			l.keep(dst, l.scratch[w:n])
		}
	}
}

// keep makes rest, unwritten, s's pending data. A small rest is copied
// into a keepCopy buffer; a larger one keeps the scratch buffer, and the
// loop takes a spare.
func (l *loop) keep(s *side, rest []byte) {
	if len(rest) <= keepCopy {
		s.pbuf = l.getSpare(&l.small, keepCopy)
		s.pending = s.pbuf[:copy(s.pbuf, rest)]
		return
	}
	s.pbuf, s.pending = l.scratch, rest
	l.scratch = l.getSpare(&l.spare, scratchSize)
	l.held++
}

// flush writes what is pending for s. Only EAGAIN clears writable: with
// edge-triggered epoll, EPOLLOUT comes only after the socket was full.
func (l *loop) flush(s *side) bool {
	for s.pipeN > 0 && s.writable {
		n, err := rawSplice(s.pipeR, s.fd, s.pipeN)
		if err != 0 {
			if err == unix.EAGAIN {
				s.writable = false
				return true
			}
			return false
		}
		s.count.Add(int64(n))
		s.pipeN -= n
	}
	for len(s.pending) > 0 && s.writable {
		n, err := rawWrite(s.fd, s.pending)
		if err != 0 {
			if err == unix.EAGAIN {
				s.writable = false
				return true
			}
			return false
		}
		s.count.Add(int64(n))
		s.pending = s.pending[n:]
		if len(s.pending) == 0 {
			l.putSpare(s.pbuf)
			s.pbuf, s.pending = nil, nil
		}
	}
	return true
}

// takePipe gives s a pipe for spliced data, from the loop's spares or
// new; false if none can be had (out of descriptors: read/write then).
func (l *loop) takePipe(s *side) bool {
	if s.pipeR >= 0 {
		return true
	}
	if n := len(l.pipes); n > 0 {
		s.pipeR, s.pipeW = l.pipes[n-1][0], l.pipes[n-1][1]
		l.pipes = l.pipes[:n-1]
		return true
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		s.peer.bulk = 0
		return false
	}
	// Without room for it (fs.pipe-max-size, or the user's pipe pages
	// over fs.pipe-user-pages-soft) the pipe keeps its default size.
	unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, pipeSize)
	s.pipeR, s.pipeW = fds[0], fds[1]
	return true
}

// dropPipe returns s's pipe to the spares when empty, or closes it.
func (l *loop) dropPipe(s *side) {
	if s.pipeR < 0 {
		return
	}
	if s.pipeN == 0 && len(l.pipes) < maxSpare {
		l.pipes = append(l.pipes, [2]int{s.pipeR, s.pipeW})
	} else {
		unix.Close(s.pipeR)
		unix.Close(s.pipeW)
	}
	s.pipeR, s.pipeW, s.pipeN = -1, -1, 0
}

// getSpare takes a buffer of size bytes from pool, or makes one.
func (l *loop) getSpare(pool *[][]byte, size int) []byte {
	if n := len(*pool); n > 0 {
		b := (*pool)[n-1]
		*pool = (*pool)[:n-1]
		return b
	}
	return make([]byte, size)
}

// putSpare keeps b, a drained pending buffer, for reuse in the pool for
// its size; a scratch-size one is no longer held (see maxHeld).
func (l *loop) putSpare(b []byte) {
	pool := &l.spare
	if cap(b) == keepCopy {
		pool = &l.small
	} else {
		l.held--
	}
	if len(*pool) < maxSpare {
		*pool = append(*pool, b[:cap(b)])
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

// timerHeap orders connections by their one pending deadline (connect
// attempt or retry pause), a min-heap on conn.when. Each connection knows
// its index, so the deadline goes away the moment a connect succeeds:
// nothing is kept alive until a stale deadline would have expired.
type timerHeap []*conn

func (h *timerHeap) push(c *conn) {
	*h = append(*h, c)
	c.tidx = len(*h) - 1
	h.up(c.tidx)
}

// remove takes c out of the heap if it is in it.
func (h *timerHeap) remove(c *conn) {
	i := c.tidx
	if i < 0 {
		return
	}
	a := *h
	last := len(a) - 1
	h.swap(i, last)
	a[last] = nil
	*h = a[:last]
	c.tidx = -1
	if i < last {
		h.down(i)
		h.up(i)
	}
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].tidx, h[j].tidx = i, j
}

func (h timerHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent].when <= h[i].when {
			return
		}
		h.swap(parent, i)
		i = parent
	}
}

func (h timerHeap) down(i int) {
	for {
		small, l, r := i, 2*i+1, 2*i+2
		if l < len(h) && h[l].when < h[small].when {
			small = l
		}
		if r < len(h) && h[r].when < h[small].when {
			small = r
		}
		if small == i {
			return
		}
		h.swap(i, small)
		i = small
	}
}
