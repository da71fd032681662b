package proxy

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestKeepAliveBothSides reads the socket options back from both sockets
// of a relayed connection: the accepted client socket (inherited from the
// listener) and the backend socket (set at dial), with CloseOnDown on and
// off. Long quiet watches rely on keep-alive on both sides.
func TestKeepAliveBothSides(t *testing.T) {
	for _, closeOnDown := range []bool{true, false} {
		t.Run(fmt.Sprint("CloseOnDown=", closeOnDown), func(t *testing.T) {
			b := startBackend(t, echo)
			pool := NewPool([]netip.AddrPort{b.addr}, nil)
			p := startProxy(t, pool, func(c *Config) { c.CloseOnDown = closeOnDown })
			roundTrip(t, dial(t, p.Addrs()[0]), "ping")

			eachSide(t, pool, func(side string, fd int) {
				for _, o := range []struct {
					name       string
					level, opt int
					want       int
				}{
					{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
					{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(KeepAliveIdle / time.Second)},
					{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(KeepAliveInterval / time.Second)},
					{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, KeepAliveCount},
					{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
				} {
					got, err := unix.GetsockoptInt(fd, o.level, o.opt)
					if err != nil {
						t.Fatalf("%s: getsockopt %s: %v", side, o.name, err)
					}
					if got != o.want {
						t.Errorf("%s: %s = %d, want %d", side, o.name, got, o.want)
					}
				}
			})
		})
	}
}

// TestRecvBufferWithoutNetAdmin reruns TestRecvBufferBothSides in a
// child without CAP_NET_ADMIN (setpriv drops it from the bounding set),
// where SO_RCVBUFFORCE fails with EPERM and SO_RCVBUF must take over.
func TestRecvBufferWithoutNetAdmin(t *testing.T) {
	if os.Getenv("HAPOD_TEST_RECV_OPT") != "" {
		t.Skip("already the child")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to drop CAP_NET_ADMIN from")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	cmd := exec.Command(setpriv, "--bounding-set", "-net_admin", os.Args[0],
		"-test.run", "^TestRecvBufferBothSides$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "HAPOD_TEST_RECV_OPT=SO_RCVBUF")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestRecvBufferBothSides/RecvBuffer=8388608") {
		t.Fatalf("without CAP_NET_ADMIN: %v\n%s", err, out)
	}
}

// eachSide calls f with both sockets of pool's one relayed connection:
// the accepted client socket and the backend socket.
func eachSide(t *testing.T, pool *Pool, f func(side string, fd int)) {
	t.Helper()
	cs := pool.list()[0].conns()
	if len(cs) != 1 {
		t.Fatalf("%d established connections, want 1", len(cs))
	}
	c := cs[0]
	c.mu.Lock()
	defer c.mu.Unlock()
	f("client side", c.cl.fd)
	f("backend side", c.be.fd)
}

// TestRecvBufferBothSides checks that Config.RecvBuffer reaches the
// accepted client socket (inherited from the listener) and the backend
// socket, and that 0 leaves both at the kernel's autotuned default.
//
// Run as root it takes the SO_RCVBUFFORCE path; TestRecvBufferWithoutNetAdmin
// runs it again without CAP_NET_ADMIN for the SO_RCVBUF fallback, where
// 8 MiB is above this machine's net.core.rmem_max.
func TestRecvBufferBothSides(t *testing.T) {
	child := os.Getenv("HAPOD_TEST_RECV_OPT") == "SO_RCVBUF"
	for _, size := range []int{DefaultRecvBuffer, 256 << 10, 8 << 20, 0} {
		t.Run(fmt.Sprint("RecvBuffer=", size), func(t *testing.T) {
			b := startBackend(t, echo)
			pool := NewPool([]netip.AddrPort{b.addr}, nil)
			p := startProxy(t, pool, func(c *Config) { c.RecvBuffer = size })
			client := dial(t, p.Addrs()[0])
			roundTrip(t, client, "ping")
			if child && size != 0 && p.recvOpt != unix.SO_RCVBUF {
				t.Fatalf("receive buffer set with option %d, want SO_RCVBUF", p.recvOpt)
			}

			// Linux reports double what was set (its bookkeeping
			// overhead); SO_RCVBUF alone is capped at net.core.rmem_max.
			want := 2 * size
			switch p.recvOpt {
			case unix.SO_RCVBUF:
				data, err := os.ReadFile("/proc/sys/net/core/rmem_max")
				if err != nil {
					t.Fatal(err)
				}
				rmemMax, err := strconv.Atoi(strings.TrimSpace(string(data)))
				if err != nil {
					t.Fatal(err)
				}
				want = 2 * min(size, rmemMax)
			case 0:
				if size != 0 {
					t.Fatalf("RecvBuffer %d set no option for backend sockets", size)
				}
				// An untouched loopback socket: the test's own client.
				rc, err := client.SyscallConn()
				if err != nil {
					t.Fatal(err)
				}
				var gerr error
				if err := rc.Control(func(fd uintptr) { want, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) }); err != nil {
					t.Fatal(err)
				}
				if gerr != nil {
					t.Fatal(gerr)
				}
			}
			eachSide(t, pool, func(side string, fd int) {
				got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
				if err != nil {
					t.Fatalf("%s: getsockopt SO_RCVBUF: %v", side, err)
				}
				if got != want {
					t.Errorf("%s: SO_RCVBUF = %d, want %d", side, got, want)
				}
			})
		})
	}
}
