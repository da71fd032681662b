package proxy

import (
	"fmt"
	"net"
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
			roundTrip(t, dial(t, p.Addr()), "ping")

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
	cs := pool.backends[0].conns()
	if len(cs) != 1 {
		t.Fatalf("%d established connections, want 1", len(cs))
	}
	c := cs[0]
	c.mu.Lock()
	defer c.mu.Unlock()
	f("client side", c.cl.fd)
	f("backend side", c.be.fd)
}

// TestRaiseNoFile lowers the soft open-file limit a little, raises it
// with RaiseNoFile and restores what it found, so no other test sees a
// different limit.
func TestRaiseNoFile(t *testing.T) {
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
			t.Errorf("restore RLIMIT_NOFILE %+v: %v", orig, err)
		}
	})
	if orig.Max < 1024 {
		t.Skipf("hard open-file limit %d: too low to lower safely", orig.Max)
	}
	// Far above the descriptors this test binary holds, below the hard limit.
	low := unix.Rlimit{Cur: orig.Max - 16, Max: orig.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	got, err := RaiseNoFile()
	if err != nil {
		t.Fatal(err)
	}
	var now unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &now); err != nil {
		t.Fatal(err)
	}
	if got != orig.Max || now.Cur != orig.Max || now.Max != orig.Max {
		t.Errorf("RaiseNoFile = %d, limit now %d/%d; want the hard limit %d", got, now.Cur, now.Max, orig.Max)
	}
	// Already at the hard limit: nothing to do, same answer.
	if got, err := RaiseNoFile(); err != nil || got != orig.Max {
		t.Errorf("second RaiseNoFile = %d, %v; want %d", got, err, orig.Max)
	}
}

// blackhole returns a loopback address whose listener drops every SYN: its
// accept queue is full and nothing accepts, as with a backend whose SYNs a
// firewall eats. It checks that a dial there really times out.
func blackhole(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	// Backlog 0: the accept queue holds one connection; when it is full
	// Linux drops new SYNs (tcp_abort_on_overflow is 0), it does not reset.
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := addrPort(sa)
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp4", addr.String(), 300*time.Millisecond)
		if err != nil {
			if !isTimeout(err) {
				t.Fatalf("dial to the full listener: %v, want a timeout", err)
			}
			return addr
		}
		t.Cleanup(func() { c.Close() })
		if i == 8 {
			t.Fatalf("%d connections completed to a listener with backlog 0: SYNs are not dropped", i+1)
		}
	}
}

// TestBlackholedBackendRetried: the first backend chosen never answers
// SYNs. The attempt gets its share of the connect budget, the backend is
// marked suspect and the client is served by the other one, within
// ConnectTimeout; the next client is not held up by the dead one.
func TestBlackholedBackendRetried(t *testing.T) {
	dead := blackhole(t)
	live := startBackend(t, echo)
	const budget = 2 * time.Second
	// Round robin starts with the first backend.
	pool := NewPool([]netip.AddrPort{dead, live.addr}, &RoundRobin{})
	p := startProxy(t, pool, func(c *Config) { c.ConnectTimeout = budget })

	start := time.Now()
	c := dial(t, p.Addr())
	roundTrip(t, c, "through the other backend")
	took := time.Since(start)
	t.Logf("served after %v (connect budget %v, two healthy backends)", took.Round(time.Millisecond), budget)
	// The first attempt waited for its share (half the budget) before
	// giving up: the backend really swallowed the SYN, it did not refuse.
	if took < budget/2-100*time.Millisecond {
		t.Errorf("served after %v: the blackholed attempt did not wait for its share of the budget", took)
	}
	s := p.Stats()
	if s.Backends[0].ConnectFailures != 1 || !s.Backends[0].Suspect {
		t.Errorf("blackholed backend: failures %d suspect %v, want 1 true", s.Backends[0].ConnectFailures, s.Backends[0].Suspect)
	}
	if s.Retries != 1 || s.NoBackend != 0 {
		t.Errorf("retries %d noBackend %d, want 1 0", s.Retries, s.NoBackend)
	}

	// Suspect: the next clients go straight to the live backend.
	for i := range 3 {
		roundTrip(t, dial(t, p.Addr()), fmt.Sprint("next", i))
	}
	if s := p.Stats(); s.Backends[0].ConnectFailures != 1 || s.Backends[1].Active != 4 {
		t.Errorf("after the first: blackholed failures %d (want 1: skipped while suspect), live active %d (want 4)",
			s.Backends[0].ConnectFailures, s.Backends[1].Active)
	}
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
			client := dial(t, p.Addr())
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
