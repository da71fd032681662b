package proxy

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

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
			held := dial(t, p.Addrs()[0])
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
		c := dial(t, p.Addrs()[0])
		roundTrip(t, c, "echo")
		c.Close()
	}
	return fmt.Sprintf("%d connections in %v", n, 3*time.Duration(waitWindow))
}

// bulkBurst streams to a discarding backend through p for three windows.
func bulkBurst(t *testing.T, p *Proxy) string {
	c := dial(t, p.Addrs()[0])
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
