package proxy

import (
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// RaiseNoFile raises the soft RLIMIT_NOFILE to the hard limit and returns
// the new soft limit. Go already does this at start-up (and restores the
// original for child processes); calling it makes the limit explicit and
// reportable. Each relayed connection costs two descriptors.
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

// listenFD is the listening socket, bound with IP_FREEBIND. Accepted
// sockets inherit TCP_NODELAY, the keep-alive settings and the receive
// buffer (recvBuf bytes, 0: autotuned) from it (checked on Linux), which
// saves six setsockopt calls per connection. recvOpt is the option that
// set the buffer, for the backend sockets (see setRecvBuf).
func listenFD(addr netip.AddrPort, recvBuf int) (fd int, bound netip.AddrPort, recvOpt int, err error) {
	addr = unmapped(addr)
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
