package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	clocktesting "k8s.io/utils/clock/testing"
)

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
// SYNs. With another backend left, the attempt gets raceDelay, not half
// the budget; the backend is marked suspect and the client is served by
// the other one; the next client is not held up by the dead one.
func TestBlackholedBackendRetried(t *testing.T) {
	dead := blackhole(t)
	live := startBackend(t, echo)
	const budget = 2 * time.Second
	// Round robin starts with the first backend.
	pool := NewPool([]netip.AddrPort{dead, live.addr}, &RoundRobin{})
	p := startProxy(t, pool, func(c *Config) { c.ConnectTimeout = budget })

	start := time.Now()
	c := dial(t, p.Addrs()[0])
	roundTrip(t, c, "through the other backend")
	took := time.Since(start)
	t.Logf("served after %v (connect budget %v, two healthy backends)", took.Round(time.Millisecond), budget)
	// The first attempt waited raceDelay before moving on: the backend
	// really swallowed the SYN, it did not refuse.
	if took < raceDelay {
		t.Errorf("served after %v: the blackholed attempt did not wait raceDelay (%v)", took, raceDelay)
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
		roundTrip(t, dial(t, p.Addrs()[0]), fmt.Sprint("next", i))
	}
	if s := p.Stats(); s.Backends[0].ConnectFailures != 1 || s.Backends[1].Active != 4 {
		t.Errorf("after the first: blackholed failures %d (want 1: skipped while suspect), live active %d (want 4)",
			s.Backends[0].ConnectFailures, s.Backends[1].Active)
	}
}

// TestDialOnClock: a connect attempt's share of the budget, the budget
// itself and the pause between rounds of attempts run on Config.Clock.
// With a fake clock standing still, a dial waits however much real time
// passes; each step of the clock fires what became due.
func TestDialOnClock(t *testing.T) {
	t.Run("attempt share", func(t *testing.T) {
		dead, live := blackhole(t), startBackend(t, echo)
		fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
		const budget = 200 * time.Millisecond
		// Round robin starts with the first backend: the blackholed one.
		pool := NewPool([]netip.AddrPort{dead, live.addr}, &RoundRobin{})
		p := startProxy(t, pool, func(c *Config) { c.Clock = fc; c.ConnectTimeout = budget })
		c := dial(t, p.Addrs()[0])
		eventually(t, "a dial to the blackholed backend", func() bool { return activeOf(p)[dead] == 1 })

		// Three budgets of real time: on the wall clock the attempt
		// would have given up long ago.
		time.Sleep(3 * budget)
		settle(p)
		if s := p.Stats(); s.Retries != 0 || s.NoBackend != 0 {
			t.Fatalf("clock standing still: retries %d, no backend %d; want 0 0", s.Retries, s.NoBackend)
		}
		// Two healthy backends: the attempt gets half the budget.
		fc.Step(budget/2 - time.Millisecond)
		settle(p)
		if s := p.Stats(); s.Retries != 0 {
			t.Fatalf("attempt gave up %v before its share of the budget", time.Millisecond)
		}
		fc.Step(time.Millisecond)
		settle(p)
		roundTrip(t, c, "through the live backend")
		if s := p.Stats(); s.Retries != 1 || s.NoBackend != 0 || s.Backends[0].ConnectFailures != 1 {
			t.Errorf("retries %d, no backend %d, blackholed failures %d; want 1 0 1",
				s.Retries, s.NoBackend, s.Backends[0].ConnectFailures)
		}
	})

	t.Run("pause and budget", func(t *testing.T) {
		refusing := deadAddr(t)
		fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
		p := startProxy(t, NewPool([]netip.AddrPort{refusing}, nil), func(c *Config) {
			c.Clock = fc
			c.ConnectTimeout = time.Second
		})
		c := dial(t, p.Addrs()[0])
		eventually(t, "the first refusal", func() bool { return p.Stats().Retries == 1 })

		// Every candidate failed: the next round waits for its pause
		// (10ms) on the clock, however much real time passes.
		time.Sleep(100 * time.Millisecond)
		settle(p)
		if s := p.Stats(); s.Retries != 1 || s.NoBackend != 0 {
			t.Fatalf("clock standing still: retries %d, no backend %d; want 1 0", s.Retries, s.NoBackend)
		}
		fc.Step(10 * time.Millisecond)
		settle(p)
		eventually(t, "the second round", func() bool { return p.Stats().Retries == 2 })

		// Past the budget: the client is given up.
		fc.Step(time.Second)
		settle(p)
		if !closedByPeer(c) {
			t.Fatal("client still open after the connect budget")
		}
		if s := p.Stats(); s.NoBackend != 1 {
			t.Errorf("no backend %d, want 1", s.NoBackend)
		}
	})
}

// settle returns once every loop of p has finished a batch of events
// that started after settle was called, its expiry of due deadlines
// included: a command posted after the first one ran is taken in a
// later batch.
func settle(p *Proxy) {
	for range 2 {
		p.postWait(func(*loop) {})
	}
}
