package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// listen binds addr with IP_FREEBIND so that the bind succeeds before the
// VIP is on any interface. TCP keep-alive is set on accepted sockets.
func listen(addr netip.AddrPort) (*net.TCPListener, error) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	v6 := addr.Addr().Is6()
	lc := net.ListenConfig{
		KeepAliveConfig: net.KeepAliveConfig{
			Enable: true, Idle: KeepAliveIdle, Interval: KeepAliveInterval, Count: KeepAliveCount,
		},
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) { serr = setFreebind(int(fd), v6) }); err != nil {
				return err
			}
			return serr
		},
	}
	network := "tcp4"
	if v6 {
		network = "tcp6"
	}
	ln, err := lc.Listen(context.Background(), network, addr.String())
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
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
	if err := unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_FREEBIND, 1); err != nil {
		return fmt.Errorf("set IP_FREEBIND: %w", err)
	}
	return nil
}

// RaiseNoFile raises the soft RLIMIT_NOFILE to the hard limit and returns
// the new soft limit. Go already does this at start-up (and restores the
// original for child processes); calling it makes the limit explicit and
// reportable.
func RaiseNoFile() (uint64, error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("getrlimit nofile: %w", err)
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
			return 0, fmt.Errorf("setrlimit nofile to %d: %w", r.Max, err)
		}
	}
	return r.Cur, nil
}

func noFileLimit() (uint64, error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	return r.Cur, nil
}
