package instance

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// requestTimeout bounds how long the holder waits for a client's request
// line, so a client that connects and says nothing holds no goroutine.
const requestTimeout = 2 * time.Second

// Lock is the VIP's lock, held by one `hapod run`. It serves the lock
// socket: handover requests, and anyone asking who holds it.
type Lock struct {
	vip netip.Addr
	ln  *net.UnixListener

	mu       sync.Mutex
	waiting  []net.Conn // handover requesters, told the outcome by Release
	released bool
	serving  sync.WaitGroup
}

// Acquire takes vip's lock, or returns a *HeldError naming the holder.
func Acquire(vip netip.Addr) (*Lock, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: Name(vip), Net: "unix"})
	if errors.Is(err, syscall.EADDRINUSE) {
		pid := 0
		if c, derr := Dial(vip); derr == nil {
			pid = c.PID
			c.Close()
		}
		return nil, &HeldError{VIP: vip, PID: pid}
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", Name(vip), err)
	}
	return &Lock{vip: vip, ln: ln}, nil
}

// Serve answers requests in the background until Release. handover is
// called for each handover request (it must be idempotent and must not
// block) and returns the instance's state in a few words ("active",
// "backup"), which the requester gets at once.
func (l *Lock) Serve(handover func() string) {
	l.serving.Add(1)
	go func() {
		defer l.serving.Done()
		for {
			c, err := l.ln.AcceptUnix()
			if err != nil {
				return // closed by Release
			}
			l.serving.Add(1)
			go func() {
				defer l.serving.Done()
				l.serve(c, handover)
			}()
		}
	}()
}

func (l *Lock) serve(c *net.UnixConn, handover func() string) {
	_ = c.SetReadDeadline(time.Now().Add(requestTimeout))
	line, err := readLine(bufio.NewReader(c))
	if err != nil {
		c.Close() // a probe (Dial and Close) or a silent client
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	req, err := ParseRequest(line)
	if err == nil {
		// Anyone in the network namespace can connect to an abstract
		// socket; stopping hapod is for those who could kill it.
		var cred *unix.Ucred
		if cred, err = peerCred(c); err == nil {
			err = mayStop(cred.Uid, uint32(os.Geteuid()))
		}
	}
	if err != nil {
		_, _ = c.Write([]byte(reply(replyError, err.Error())))
		c.Close()
		return
	}
	switch req {
	case RequestHandover:
		l.mu.Lock()
		if l.released {
			l.mu.Unlock()
			c.Close()
			return
		}
		// Under mu, so that the accepted line goes out before Release's
		// done line.
		l.waiting = append(l.waiting, c)
		_, _ = c.Write([]byte(reply(replyAccepted, handover())))
		l.mu.Unlock()
	}
}

// Release tells every handover requester the outcome, closes the lock
// socket and waits for its goroutines. Call it last, once the VIP is
// released: the lock is free when Release returns.
func (l *Lock) Release(outcome string) {
	l.mu.Lock()
	l.released = true
	waiting := l.waiting
	l.waiting = nil
	l.mu.Unlock()
	l.ln.Close()
	for _, c := range waiting {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write([]byte(reply(replyDone, outcome)))
		c.Close()
	}
	l.serving.Wait()
}

// Conn is a connection to the running instance of a VIP.
type Conn struct {
	// VIP is the instance's VIP.
	VIP netip.Addr
	// PID is its process ID as this process sees it; 0 when it runs in
	// another PID namespace.
	PID int

	c *net.UnixConn
	r *bufio.Reader
}

// Dial connects to vip's running instance; ErrNotRunning when there is
// none.
func Dial(vip netip.Addr) (*Conn, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: Name(vip), Net: "unix"})
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
		return nil, ErrNotRunning
	}
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", Name(vip), err)
	}
	cred, err := peerCred(c)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: %w", Name(vip), err)
	}
	return &Conn{VIP: vip, PID: int(cred.Pid), c: c, r: bufio.NewReader(c)}, nil
}

// peerCred is the process at the other end of c (SO_PEERCRED): for a
// client, the one that listens; for the listener, the one that connected.
// Its PID is 0 when it lives in another PID namespace.
func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, fmt.Errorf("SO_PEERCRED: %w", serr)
	}
	return cred, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// Handover asks the instance to hand its VIP over and exit. It returns
// the state the instance was in when it accepted, and the outcome it
// reported right before exiting; ctx bounds the whole wait. An instance
// that goes away without reporting one (it was stopping already: kubelet
// stops it once its manifest is gone) yields ErrStopped.
func (c *Conn) Handover(ctx context.Context) (state, outcome string, err error) {
	stop := context.AfterFunc(ctx, func() { _ = c.c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := c.c.Write([]byte(RequestHandover.String() + "\n")); err != nil {
		if ctx.Err() != nil {
			return "", "", ctx.Err()
		}
		return "", "", fmt.Errorf("%w (sending the request: %v)", ErrStopped, err)
	}
	for {
		line, err := readLine(c.r)
		if err != nil {
			if ctx.Err() != nil {
				return state, "", ctx.Err()
			}
			return state, "", fmt.Errorf("%w (%v)", ErrStopped, err)
		}
		kind, text, err := parseReply(line)
		if err != nil {
			return state, "", err
		}
		switch kind {
		case replyAccepted:
			state = text
		case replyDone:
			return state, text, nil
		case replyError:
			return state, "", fmt.Errorf("hapod refused the handover: %s", text)
		}
	}
}

// WaitGone waits until no instance holds vip's lock, polling every 20 ms,
// or until ctx ends.
func WaitGone(ctx context.Context, vip netip.Addr) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := Dial(vip)
		if errors.Is(err, ErrNotRunning) {
			return nil
		}
		if err == nil {
			c.Close()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// List returns the VIPs of the hapod instances running in this network
// namespace.
func List() ([]netip.Addr, error) {
	f, err := os.Open("/proc/net/unix")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseProcNetUnix(f)
}
