package proxy

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestBulkBothWays pushes 32 MiB each way at once through an echo
// backend, copied and spliced (Config.Splice: both directions switch to
// splice after 16 MiB). The echo's back-pressure leaves data unwritten
// (see keep) or in the pipe on both paths.
func TestBulkBothWays(t *testing.T) {
	for _, splice := range []bool{false, true} {
		t.Run(fmt.Sprintf("splice=%v", splice), func(t *testing.T) {
			b := startBackend(t, echo)
			p := startProxy(t, NewPool([]netip.AddrPort{b.addr}, nil), func(c *Config) { c.Splice = splice })
			c := dial(t, p.Addr())
			c.SetDeadline(time.Now().Add(60 * time.Second))
			payload := make([]byte, 32<<20)
			for i := range payload {
				payload[i] = byte(rand.Uint32())
			}
			errc := make(chan error, 1)
			go func() {
				_, err := c.Write(payload)
				if err == nil {
					err = c.CloseWrite()
				}
				errc <- err
			}()
			h := sha256.New()
			n, err := io.Copy(h, c)
			if err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			want := sha256.Sum256(payload)
			if n != int64(len(payload)) || !bytes.Equal(h.Sum(nil), want[:]) {
				t.Fatalf("echoed %d bytes, content equal %v", n, bytes.Equal(h.Sum(nil), want[:]))
			}
			eventually(t, "byte counters", func() bool {
				s := p.Stats().Backends[0]
				return s.BytesIn == uint64(len(payload)) && s.BytesOut == uint64(len(payload))
			})
			// A pipe that was used goes back to its loop's spares.
			if splice {
				eventually(t, "a spare pipe", func() bool { return sparePipes(p) > 0 })
			} else if n := sparePipes(p); n != 0 {
				t.Errorf("%d spare pipes without splice", n)
			}
		})
	}
}

// TestServerSpeaksFirst: the backend greets before the client sends
// anything (SSH, SMTP): the proxy must not wait for the client.
func TestServerSpeaksFirst(t *testing.T) {
	b := startBackend(t, func(c *net.TCPConn) {
		io.WriteString(c, "hello\n")
		io.Copy(io.Discard, c)
	})
	p := startProxy(t, NewPool([]netip.AddrPort{b.addr}, nil), nil)
	c := dial(t, p.Addr())
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 6)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "hello\n" {
		t.Fatalf("greeting %q, %v", got, err)
	}
}

// TestClientResetClosesBackend: a client that resets makes the proxy
// close the backend connection too.
func TestClientResetClosesBackend(t *testing.T) {
	closed := make(chan struct{})
	b := startBackend(t, func(c *net.TCPConn) {
		io.Copy(io.Discard, c)
		close(closed)
	})
	p := startProxy(t, NewPool([]netip.AddrPort{b.addr}, nil), nil)
	c := dial(t, p.Addr())
	eventually(t, "connection established", func() bool { return p.Stats().Backends[0].Active == 1 })
	c.SetLinger(0)
	c.Close() // RST
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("backend connection not closed after the client reset")
	}
	eventually(t, "no connection left", func() bool { return p.Stats().Active == 0 })
}

func TestTimerHeap(t *testing.T) {
	var h timerHeap
	var cs []*conn
	for range 200 {
		c := &conn{when: rand.Int64N(1000), tidx: -1}
		cs = append(cs, c)
		h.push(c)
	}
	// Established connections leave at once, from anywhere in the heap.
	var want []int64
	for i, c := range cs {
		if i%3 == 0 {
			h.remove(c)
			h.remove(c) // twice is harmless
		} else {
			want = append(want, c.when)
		}
	}
	slices.Sort(want)
	var got []int64
	for len(h) > 0 {
		c := h[0]
		h.remove(c)
		if c.tidx != -1 {
			t.Fatal("removed conn keeps its index")
		}
		got = append(got, c.when)
	}
	if !slices.Equal(got, want) {
		t.Errorf("heap order %v, want %v", got, want)
	}
}

// TestYieldDue: a loop that keeps finding events yields once per
// yieldAfter of running; parking restarts the count.
func TestYieldDue(t *testing.T) {
	ms := int64(time.Millisecond)
	l := &loop{parked: true}
	steps := []struct {
		now    int64
		parked bool // the wait before this batch parked
		want   bool
	}{
		{now: 100 * ms, parked: true, want: false}, // woke from a park: count from here
		{now: 100*ms + ms/2, want: false},
		{now: 101*ms - 1, want: false},
		{now: 101 * ms, want: true}, // 1 ms without parking
		{now: 101*ms + ms/2, want: false},
		{now: 102 * ms, want: true},
		{now: 102*ms + ms/2, parked: true, want: false}, // parked: count again
		{now: 103 * ms, want: false},
		{now: 103*ms + ms/2, want: true},
	}
	for i, s := range steps {
		l.parked = s.parked
		if got := l.yieldDue(s.now); got != s.want {
			t.Errorf("step %d (t=%v parked=%v): yield %v, want %v", i, time.Duration(s.now), s.parked, got, s.want)
		}
		if l.parked {
			t.Errorf("step %d: parked flag not consumed", i)
		}
	}
}

// TestFINRidesWithLastData: data read up to a FIN that had already
// arrived goes out with that FIN in one segment, and data without a FIN
// behind it is not held back.
func TestFINRidesWithLastData(t *testing.T) {
	for _, finArrived := range []bool{true, false} {
		t.Run(fmt.Sprintf("fin=%v", finArrived), func(t *testing.T) {
			srcFD, srcPeer := tcpPair(t)
			dstFD, dstPeer := tcpPair(t)
			if _, err := io.WriteString(srcPeer, "reply"); err != nil {
				t.Fatal(err)
			}
			if finArrived {
				srcPeer.CloseWrite()
				waitPoll(t, srcFD, unix.POLLRDHUP)
			} else {
				waitPoll(t, srcFD, unix.POLLIN)
			}
			var in, out atomic.Int64
			src := &side{fd: srcFD, readable: true, hup: finArrived, fin: finArrived, count: &in, pipeR: -1, pipeW: -1}
			dst := &side{fd: dstFD, writable: true, count: &out, pipeR: -1, pipeW: -1}
			src.peer, dst.peer = dst, src
			before := segsIn(t, dstPeer)
			l := &loop{scratch: make([]byte, scratchSize)}
			if !l.pump(src, dst) {
				t.Fatal("pump failed")
			}
			if src.eof != finArrived || dst.shut != finArrived {
				t.Fatalf("src eof %v, dst shut %v; want both %v", src.eof, dst.shut, finArrived)
			}
			dstPeer.SetReadDeadline(time.Now().Add(5 * time.Second))
			got := make([]byte, 5)
			if _, err := io.ReadFull(dstPeer, got); err != nil || string(got) != "reply" {
				t.Fatalf("read %q, %v", got, err)
			}
			if !finArrived {
				return
			}
			if n, err := dstPeer.Read(got); n != 0 || err != io.EOF {
				t.Fatalf("after the data: %d bytes, %v; want EOF", n, err)
			}
			if segs := segsIn(t, dstPeer) - before; segs != 1 {
				t.Errorf("data and FIN came in %d segments, want 1", segs)
			}
		})
	}
}

// tcpPair returns a connected loopback TCP pair: a raw non-blocking fd
// for the side under test (closed at cleanup) and the peer.
func tcpPair(t *testing.T) (int, *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	peer, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	// A descriptor of our own: File duplicates it, Fd makes that one
	// blocking, so take a duplicate of it and make that non-blocking.
	f, err := c.File()
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd); peer.Close() })
	return fd, peer
}

func waitPoll(t *testing.T, fd int, ev int16) {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(fd), Events: ev}}
	if n, err := unix.Poll(fds, 5000); n != 1 || err != nil || fds[0].Revents&ev == 0 {
		t.Fatalf("poll for %#x: %d, %v, revents %#x", ev, n, err, fds[0].Revents)
	}
}

func segsIn(t *testing.T, c *net.TCPConn) uint32 {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	var ierr error
	if err := rc.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		t.Fatal(err)
	}
	if ierr != nil {
		t.Fatal(ierr)
	}
	return info.Segs_in
}

// TestReadsShrinkWhileHeld: while maxHeld large rests are out, a loop's
// reads take keepCopy at most, so what a slow reader leaves stays in a
// small buffer; below it, a read takes what the socket holds.
func TestReadsShrinkWhileHeld(t *testing.T) {
	srcFD, srcPeer := tcpPair(t)
	dstFD, _ := tcpPair(t)
	if err := unix.SetsockoptInt(srcFD, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20); err != nil {
		t.Fatal(err)
	}
	go srcPeer.Write(make([]byte, 4<<20))
	for deadline := time.Now().Add(5 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatal("the source socket never held 4 x keepCopy")
		}
		waitPoll(t, srcFD, unix.POLLIN)
		if n, err := unix.IoctlGetInt(srcFD, unix.SIOCINQ); err != nil {
			t.Fatal(err)
		} else if n >= 4*keepCopy {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var in, out atomic.Int64
	src := &side{fd: srcFD, count: &in, pipeR: -1, pipeW: -1}
	dst := &side{fd: dstFD, count: &out, pipeR: -1, pipeW: -1} // not writable: every read stays
	src.peer, dst.peer = dst, src
	l := &loop{p: &Proxy{}, scratch: make([]byte, scratchSize)}
	for _, held := range []int{maxHeld, 0} {
		l.held = held
		src.readable = true
		if !l.pump(src, dst) {
			t.Fatal("pump failed")
		}
		switch got := len(dst.pending); {
		case held == maxHeld && (got != keepCopy || cap(dst.pbuf) != keepCopy):
			t.Errorf("with %d held: kept %d bytes in a %d-byte buffer, want %d in %d", held, got, cap(dst.pbuf), keepCopy, keepCopy)
		case held == 0 && (got <= keepCopy || l.held != 1):
			t.Errorf("with none held: kept %d bytes, %d held; want more than %d, 1 held", got, l.held, keepCopy)
		}
		l.putSpare(dst.pbuf)
		dst.pbuf, dst.pending = nil, nil
	}
	if l.held != 0 {
		t.Errorf("%d held after the rests went back", l.held)
	}
}

// TestKeep: an unwritten rest up to keepCopy is copied into a small
// buffer, so a slow reader does not hold the loop's large one; a larger
// rest keeps the scratch buffer and the loop takes another. Drained
// buffers go back to the pool of their size.
func TestKeep(t *testing.T) {
	for _, n := range []int{1, keepCopy, keepCopy + 1, scratchSize} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			l := &loop{scratch: make([]byte, scratchSize)}
			scratch := l.scratch
			for i := range n {
				scratch[i] = byte(i)
			}
			s := &side{}
			l.keep(s, scratch[:n])
			if !bytes.Equal(s.pending, scratch[:n]) {
				t.Fatal("pending data differs from the rest")
			}
			small := n <= keepCopy
			if got := &s.pbuf[0] == &scratch[0]; got == small {
				t.Errorf("pending in the scratch buffer: %v, want %v", got, !small)
			}
			if want := map[bool]int{true: keepCopy, false: scratchSize}[small]; cap(s.pbuf) != want {
				t.Errorf("pending buffer of %d bytes, want %d", cap(s.pbuf), want)
			}
			if len(l.scratch) != scratchSize {
				t.Fatalf("scratch buffer now %d bytes", len(l.scratch))
			}
			l.putSpare(s.pbuf)
			if len(l.small) != map[bool]int{true: 1, false: 0}[small] || len(l.spare) != map[bool]int{true: 0, false: 1}[small] {
				t.Errorf("pools after the drain: %d small, %d large", len(l.small), len(l.spare))
			}
		})
	}
}

// TestTakePipeSize: splice pipes get pipeSize where the system allows it.
func TestTakePipeSize(t *testing.T) {
	max, err := os.ReadFile("/proc/sys/fs/pipe-max-size")
	if err != nil {
		t.Skip(err)
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(string(max))); n < pipeSize && os.Geteuid() != 0 {
		t.Skipf("fs.pipe-max-size is %d", n)
	}
	l := &loop{}
	s := &side{pipeR: -1, pipeW: -1, peer: &side{}}
	if !l.takePipe(s) {
		t.Fatal("no pipe")
	}
	defer func() { unix.Close(s.pipeR); unix.Close(s.pipeW) }()
	got, err := unix.FcntlInt(uintptr(s.pipeW), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got != pipeSize {
		t.Errorf("pipe size %d, want %d", got, pipeSize)
	}
}

// TestWaitRaw: a loop moves into epoll_wait when it accepts or reads bulk
// at rawAbove's rates, back to the netpoller when both fall under
// rawBelow's, and stays put in between.
func TestWaitRaw(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		raw  bool
		got  waitRates
		want bool
	}{
		{raw: false, got: waitRates{}, want: false},
		{raw: false, got: waitRates{accepts: 990}, want: false},
		{raw: false, got: waitRates{accepts: 1000}, want: true},
		{raw: false, got: waitRates{bulk: 63 * mib}, want: false},
		{raw: false, got: waitRates{bulk: 64 * mib}, want: true},
		{raw: false, got: waitRates{accepts: 999, bulk: 63 * mib}, want: false}, // not added up
		{raw: false, got: waitRates{accepts: 500, bulk: 32 * mib}, want: false}, // between: stays
		{raw: true, got: waitRates{accepts: 500}, want: true},                   // between: stays
		{raw: true, got: waitRates{bulk: 32 * mib}, want: true},                 // between: stays
		{raw: true, got: waitRates{accepts: 250}, want: true},
		{raw: true, got: waitRates{bulk: 16 * mib}, want: true},
		{raw: true, got: waitRates{accepts: 240, bulk: 15 * mib}, want: false},
		{raw: true, got: waitRates{}, want: false}, // idle
	} {
		if got := waitRaw(c.raw, c.got, rawAbove, rawBelow); got != c.want {
			t.Errorf("waitRaw(raw=%v, %+v) = %v, want %v", c.raw, c.got, got, c.want)
		}
	}
}

// sparePipes counts the empty pipes p's loops keep for reuse.
func sparePipes(p *Proxy) int {
	var mu sync.Mutex
	n := 0
	p.postWait(func(l *loop) {
		mu.Lock()
		n += len(l.pipes)
		mu.Unlock()
	})
	return n
}

// rawLoops returns how many of p's loops wait in epoll_wait, and how
// many loops it has (none before Serve started them).
func rawLoops(p *Proxy) (raw, n int) {
	p.mu.Lock() // orders this after startLoops, as CloseAll does
	serving := p.serving
	p.mu.Unlock()
	if !serving {
		return 0, 0
	}
	var mu sync.Mutex
	p.postWait(func(l *loop) {
		mu.Lock()
		defer mu.Unlock()
		n++
		if l.file == nil {
			raw++
		}
	})
	return raw, n
}

// TestWaitFollowsLoad: a burst of new connections, or a bulk stream,
// moves a loop into epoll_wait and a quiet spell moves it back to the
// netpoller, while a connection held across both switches keeps working.
func TestWaitFollowsLoad(t *testing.T) {
	// Rates this machine reaches even when loaded, one kind at a time;
	// the defaults are tested in TestWaitRaw.
	never := waitRates{accepts: 1e12, bulk: 1e15}
	for _, c := range []struct {
		name         string
		above, below waitRates
		burst        func(t *testing.T, p *Proxy) string
	}{
		{"accepts", waitRates{accepts: 50, bulk: never.bulk}, waitRates{accepts: 10, bulk: never.bulk}, acceptBurst},
		{"bulk", waitRates{accepts: never.accepts, bulk: 1 << 20}, waitRates{accepts: never.accepts, bulk: 1 << 10}, bulkBurst},
	} {
		t.Run(c.name, func(t *testing.T) {
			// A connection starts with "echo" or "bulk" (discarded).
			b := startBackend(t, func(c *net.TCPConn) {
				kind := make([]byte, 4)
				if _, err := io.ReadFull(c, kind); err != nil {
					return
				}
				if string(kind) == "bulk" {
					io.Copy(io.Discard, c)
					return
				}
				c.Write(kind)
				echo(c)
			})
			pool := NewPool([]netip.AddrPort{b.addr}, nil)
			p := startProxy(t, pool, nil, func(p *Proxy) { p.rawAbove, p.rawBelow = c.above, c.below })
			held := dial(t, p.Addr())
			roundTrip(t, held, "echo")
			if raw, n := rawLoops(p); n == 0 || raw != 0 {
				t.Fatalf("%d of %d loops in epoll_wait before any burst", raw, n)
			}

			what := c.burst(t, p)
			raw, loops := rawLoops(p)
			if raw == 0 {
				t.Fatalf("no loop in epoll_wait after %s", what)
			}
			roundTrip(t, held, "during")

			// Quiet: a posted command wakes each loop after a window.
			// The first wake-up may still count the end of the burst;
			// after the second, the loop has seen a quiet window.
			for range 2 {
				time.Sleep(3 * time.Duration(waitWindow) / 2)
				p.postWait(func(*loop) {})
			}
			if raw, _ := rawLoops(p); raw != 0 {
				t.Fatalf("%d of %d loops still in epoll_wait after a quiet spell", raw, loops)
			}
			roundTrip(t, held, "after")
		})
	}
}

// acceptBurst opens connections through p for three windows.
func acceptBurst(t *testing.T, p *Proxy) string {
	n := 0
	for start := time.Now(); time.Since(start) < 3*time.Duration(waitWindow); n++ {
		c := dial(t, p.Addr())
		roundTrip(t, c, "echo")
		c.Close()
	}
	return fmt.Sprintf("%d connections in %v", n, 3*time.Duration(waitWindow))
}

// bulkBurst streams to a discarding backend through p for three windows.
func bulkBurst(t *testing.T, p *Proxy) string {
	c := dial(t, p.Addr())
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte("bulk")); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	sent := 0
	for start := time.Now(); time.Since(start) < 3*time.Duration(waitWindow); sent += len(chunk) {
		if _, err := c.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	return fmt.Sprintf("%d MiB streamed", sent>>20)
}

// TestEpollWaitSuite runs every other test of the package again with its
// proxies' loops in epoll_wait from the start (rawAbove -1), so both ways
// of waiting get the whole suite: timers, drains, rebalancing, bulk.
func TestEpollWaitSuite(t *testing.T) {
	if os.Getenv(waitEnv) != "" {
		t.Skip("already the child")
	}
	if testing.Short() {
		t.Skip("runs the package's tests again")
	}
	cmd := exec.Command(os.Args[0], "-test.count=1", "-test.v",
		"-test.skip", "^(TestEpollWaitSuite|TestRecvBufferWithoutNetAdmin|TestWaitFollowsLoad)$")
	cmd.Env = append(os.Environ(), waitEnv+"=epoll_wait")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestBulkBothWays") {
		t.Fatalf("with every loop in epoll_wait: %v\n%s", err, out)
	}
}

// waitEnv set makes every proxy of the tests keep its loops in epoll_wait.
const waitEnv = "HAPOD_TEST_WAIT"

func init() {
	if os.Getenv(waitEnv) == "" {
		return
	}
	startHooks = append(startHooks, func(t *testing.T, p *Proxy) func() {
		p.rawAbove, p.rawBelow = waitRates{-1, -1}, waitRates{-1, -1}
		return func() {
			if raw, n := rawLoops(p); raw != n {
				t.Errorf("%d of %d loops in epoll_wait, want all", raw, n)
			}
		}
	})
}
