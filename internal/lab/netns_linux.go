package lab

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"syscall"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// inNS runs fn on an OS thread that is inside the network namespace at path,
// so sockets fn creates belong to that namespace.
//
// The technique: a network namespace is a property of a thread, and a socket
// stays in the namespace it was created in for its whole life, whichever
// thread later reads or writes it. So a fresh goroutine locks itself to its
// thread (runtime.LockOSThread), switches that thread with setns(2), creates
// the socket, and switches back before unlocking. If switching back fails,
// the goroutine returns still locked and the Go runtime terminates the thread
// rather than reuse it, so no other goroutine ever runs in the wrong
// namespace. Threads the runtime creates while this one is switched are
// cloned from its clean template thread, not from this one.
//
// The socket call must happen synchronously inside fn: net.Dialer and
// net.ListenConfig create the socket on the calling goroutine (for a literal
// address there is no resolver or parallel dial goroutine).
func inNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open netns: %w", err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			// Still in the original namespace (setns is all or nothing).
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			errc <- fmt.Errorf("restore netns: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Do runs fn on an OS thread switched into the node's namespace (see inNS):
// sockets and netlink handles fn creates stay in the node's namespace
// whichever thread uses them later.
func (n *Node) Do(fn func() error) error { return inNS(n.NetNSPath(), fn) }

// Dial connects from inside the node's namespace (see inNS for how), so the
// connection's source is the node, and routes, ARP and VIPs are the node's.
// Use literal addresses: the network is "tcp", "tcp4", "tcp6", "udp", ...
func (n *Node) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNS(n.NetNSPath(), func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: dial %s %s: %w", n.Name, network, addr, err)
	}
	return c, nil
}

// Listen opens a listener inside the node's namespace with IP_FREEBIND (or
// IPV6_FREEBIND) set, so it may bind an address the node doesn't hold yet,
// such as a VIP, without changing ip_nonlocal_bind.
func (n *Node) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNS(n.NetNSPath(), func() error {
		lc := net.ListenConfig{Control: freebind}
		var err error
		ln, err = lc.Listen(context.Background(), network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: listen %s %s: %w", n.Name, network, addr, err)
	}
	return ln, nil
}

// freebind sets the FREEBIND option of the socket's family before bind.
func freebind(network, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		switch network {
		case "tcp6", "udp6":
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
		default:
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}
