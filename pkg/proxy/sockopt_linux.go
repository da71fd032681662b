package proxy

import (
	"time"

	"golang.org/x/sys/unix"
)

// Socket options of the proxy's sockets. The listener gets them once and
// its accepted sockets inherit them; each backend socket gets them at
// dial (see connect).

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
