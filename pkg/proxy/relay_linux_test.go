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
			c := dial(t, p.Addrs()[0])
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
	c := dial(t, p.Addrs()[0])
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 6)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "hello\n" {
		t.Fatalf("greeting %q, %v", got, err)
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
