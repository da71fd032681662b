package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

func TestPolicyByName(t *testing.T) {
	for _, name := range []PolicyName{"", PolicyLeastConn} {
		p, err := PolicyByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := p.(LeastConn); !ok {
			t.Errorf("PolicyByName(%q) = %T, want LeastConn", name, p)
		}
	}
	p, err := PolicyByName("round-robin")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(*RoundRobin); !ok {
		t.Errorf("PolicyByName(round-robin) = %T", p)
	}
	_, err = PolicyByName("random")
	if !errors.Is(err, ErrUnknownPolicy) || !strings.Contains(err.Error(), "least-conn, round-robin") {
		t.Errorf("PolicyByName(random) error = %v, want ErrUnknownPolicy listing valid names", err)
	}
}

func TestPolicySelect(t *testing.T) {
	bs := []*Backend{{index: 0}, {index: 1}, {index: 2}}
	bs[0].active.Store(5)
	bs[1].active.Store(2)
	bs[2].active.Store(7)
	if got := (LeastConn{}).Select(bs, netip.AddrPortFrom(netip.IPv4Unspecified(), 40000)); got != bs[1] {
		t.Errorf("LeastConn picked %d, want 1", got.index)
	}
	// Ties: TestLeastConnTiesSpreadOverSourcePorts.
	rr := &RoundRobin{}
	var order []int
	for range 6 {
		order = append(order, rr.Select(bs, netip.AddrPort{}).index)
	}
	if fmt.Sprint(order) != "[0 1 2 0 1 2]" {
		t.Errorf("RoundRobin order %v", order)
	}
}

func TestConfigErrors(t *testing.T) {
	pool := NewPool(nil, nil)
	for name, cfg := range map[string]Config{
		"no listen":        {},
		"negative timeout": {Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")}, ConnectTimeout: -1},
		"negative max":     {Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")}, MaxConns: -1},
	} {
		if _, err := New(cfg, pool); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New error = %v, want ErrInvalidConfig", name, err)
		}
	}
	if _, err := New(DefaultConfig(netip.MustParseAddrPort("127.0.0.1:0")), pool); err != nil {
		t.Fatal(err)
	}
	if _, err := New(DefaultConfig(netip.MustParseAddrPort("127.0.0.1:0")), pool); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("second proxy on one pool: error = %v, want ErrInvalidConfig", err)
	}
}

func TestAcceptBackoff(t *testing.T) {
	var got []time.Duration
	d := time.Duration(0)
	for range 10 {
		d = acceptBackoff(d)
		got = append(got, d)
	}
	want := "[5ms 10ms 20ms 40ms 80ms 160ms 320ms 640ms 1s 1s]"
	if fmt.Sprint(got) != want {
		t.Errorf("backoff %v, want %s", got, want)
	}
}

func TestRebalanceVictim(t *testing.T) {
	for _, tc := range []struct {
		active []int64
		want   int
	}{
		{nil, -1},
		{[]int64{9}, -1},
		{[]int64{3, 3, 3}, -1},
		{[]int64{4, 3, 3}, -1},
		{[]int64{6, 0}, 0},
		{[]int64{2, 5, 3}, 1},
		{[]int64{5, 5, 0}, 0},
	} {
		if got := rebalanceVictim(tc.active); got != tc.want {
			t.Errorf("rebalanceVictim(%v) = %d, want %d", tc.active, got, tc.want)
		}
	}
}

func testSpread(t *testing.T, policy Policy) {
	b1, b2, b3 := startBackend(t, echo), startBackend(t, echo), startBackend(t, echo)
	pool := NewPool([]netip.AddrPort{b1.addr, b2.addr, b3.addr}, policy)
	p := startProxy(t, pool, nil)
	for i := range 9 {
		roundTrip(t, dial(t, p.Addrs()[0]), fmt.Sprintf("hello %d", i))
	}
	for addr, n := range activeOf(p) {
		if n != 3 {
			t.Errorf("backend %v has %d connections, want 3 (%v)", addr, n, activeOf(p))
		}
	}
	s := p.Stats()
	if s.Active != 9 || s.Accepted != 9 {
		t.Errorf("stats active %d accepted %d, want 9 9", s.Active, s.Accepted)
	}
	// Counters are added after each write returns, so they may trail the
	// client's view for a moment.
	eventually(t, "bytes in == bytes out on every backend", func() bool {
		for _, b := range p.Stats().Backends {
			if b.BytesIn != b.BytesOut || b.BytesIn == 0 {
				return false
			}
		}
		return true
	})
}

func TestSpreadLeastConn(t *testing.T)  { testSpread(t, LeastConn{}) }
func TestSpreadRoundRobin(t *testing.T) { testSpread(t, &RoundRobin{}) }

func TestSetHealthyDownClosesConnections(t *testing.T) {
	b1, b2 := startBackend(t, echo), startBackend(t, echo)
	pool := NewPool([]netip.AddrPort{b1.addr, b2.addr}, &RoundRobin{})
	var mu sync.Mutex
	var counts []int
	p := startProxy(t, pool, func(c *Config) {
		c.OnHealthy = func(n int) { mu.Lock(); counts = append(counts, n); mu.Unlock() }
	})
	var conns []*net.TCPConn
	for i := range 4 {
		c := dial(t, p.Addrs()[0])
		roundTrip(t, c, fmt.Sprint("x", i))
		conns = append(conns, c)
	}
	pool.SetHealthy(b1.addr, false)
	pool.SetHealthy(b1.addr, false) // not a transition: no second callback
	// Round robin put connections 0 and 2 on b1.
	for i, c := range conns {
		if i%2 == 0 {
			if !closedByPeer(c) {
				t.Errorf("conn %d to the down backend still open", i)
			}
		} else {
			roundTrip(t, c, "still here")
		}
	}
	// Counted under their own reason, once (the repeated verdict is no
	// transition and closes nothing).
	if s := p.Stats(); s.DownClosed != 2 || s.IdleClosed != 0 || s.Rebalanced != 0 || s.DrainClosed != 0 {
		t.Errorf("closed: backend down %d, idle %d, rebalance %d, drain %d; want 2 0 0 0",
			s.DownClosed, s.IdleClosed, s.Rebalanced, s.DrainClosed)
	}
	for i := range 4 {
		roundTrip(t, dial(t, p.Addrs()[0]), fmt.Sprint("new", i))
	}
	eventually(t, "b1 to have no connections", func() bool { return activeOf(p)[b1.addr] == 0 })
	if got := activeOf(p)[b2.addr]; got != 6 {
		t.Errorf("b2 has %d connections, want 6", got)
	}
	if pool.Healthy() != 1 {
		t.Errorf("Healthy() = %d, want 1", pool.Healthy())
	}
	pool.SetHealthy(b1.addr, true)
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(counts) != "[1 2]" {
		t.Errorf("OnHealthy calls %v, want [1 2]", counts)
	}
}

func TestCloseOnDownOff(t *testing.T) {
	b1 := startBackend(t, echo)
	pool := NewPool([]netip.AddrPort{b1.addr}, nil)
	p := startProxy(t, pool, func(c *Config) { c.CloseOnDown = false })
	c := dial(t, p.Addrs()[0])
	roundTrip(t, c, "a")
	pool.SetHealthy(b1.addr, false)
	roundTrip(t, c, "still relayed")
	if n := p.Stats().DownClosed; n != 0 {
		t.Errorf("DownClosed = %d with CloseOnDown off, want 0", n)
	}
	// No healthy backend: a new client is closed at once.
	if !closedByPeer(dial(t, p.Addrs()[0])) {
		t.Error("client not closed with no healthy backend")
	}
	eventually(t, "NoBackend count", func() bool { return p.Stats().NoBackend == 1 })
}

func TestDeadBackendRetried(t *testing.T) {
	dead := deadAddr(t)
	live := startBackend(t, echo)
	// Round robin starts with the dead one, so the first dial fails.
	pool := NewPool([]netip.AddrPort{dead, live.addr}, &RoundRobin{})
	p := startProxy(t, pool, nil)
	for i := range 6 {
		// Two round trips: the failed attempt's reset must leave nothing
		// behind on the connection that carries on (a FIN taken as seen
		// once ended it after its first answer).
		c := dial(t, p.Addrs()[0])
		roundTrip(t, c, fmt.Sprint("retry", i))
		roundTrip(t, c, fmt.Sprint("again", i))
	}
	s := p.Stats()
	if s.Backends[0].ConnectFailures != 1 || !s.Backends[0].Suspect {
		t.Errorf("dead backend: failures %d suspect %v, want 1 true (suspect skips it after the first failure)",
			s.Backends[0].ConnectFailures, s.Backends[0].Suspect)
	}
	if s.Retries != 1 || s.NoBackend != 0 {
		t.Errorf("retries %d noBackend %d, want 1 0", s.Retries, s.NoBackend)
	}
	if s.Backends[1].Active != 6 {
		t.Errorf("live backend active %d, want 6", s.Backends[1].Active)
	}
	// The health checker vouching for it clears the suspect mark.
	pool.SetHealthy(dead, true)
	if p.Stats().Backends[0].Suspect {
		t.Error("still suspect after SetHealthy(true)")
	}
}

func TestAllBackendsDead(t *testing.T) {
	pool := NewPool([]netip.AddrPort{deadAddr(t), deadAddr(t)}, nil)
	p := startProxy(t, pool, func(c *Config) { c.ConnectTimeout = 300 * time.Millisecond })
	if !closedByPeer(dial(t, p.Addrs()[0])) {
		t.Fatal("client not closed when every backend refuses")
	}
	eventually(t, "NoBackend count", func() bool { return p.Stats().NoBackend == 1 })
}

func TestHalfClose(t *testing.T) {
	// The backend reads to EOF, then answers: the answer must still reach
	// the client after the client's FIN went through.
	b := startBackend(t, func(c *net.TCPConn) {
		data, _ := io.ReadAll(c)
		fmt.Fprintf(c, "got %d bytes", len(data))
	})
	p := startProxy(t, NewPool([]netip.AddrPort{b.addr}, nil), nil)
	c := dial(t, p.Addrs()[0])
	payload := strings.Repeat("z", 100000)
	if _, err := io.WriteString(c, payload); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	reply, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(reply) != "got 100000 bytes" {
		t.Errorf("reply %q", reply)
	}
	eventually(t, "connection torn down", func() bool { return p.Stats().Active == 0 })
}

func TestMaxConns(t *testing.T) {
	b := startBackend(t, echo)
	p := startProxy(t, NewPool([]netip.AddrPort{b.addr}, nil), func(c *Config) { c.MaxConns = 2 })
	c1, c2 := dial(t, p.Addrs()[0]), dial(t, p.Addrs()[0])
	roundTrip(t, c1, "one")
	roundTrip(t, c2, "two")
	if !closedByPeer(dial(t, p.Addrs()[0])) {
		t.Fatal("third connection not refused")
	}
	if s := p.Stats(); s.Refused != 1 {
		t.Errorf("refused %d, want 1", s.Refused)
	}
	c1.Close()
	eventually(t, "a free slot", func() bool { return p.Stats().Active == 1 })
	roundTrip(t, dial(t, p.Addrs()[0]), "three")
	roundTrip(t, c2, "two again")
}

func TestShutdownDrains(t *testing.T) {
	b := startBackend(t, echo)
	pool := NewPool([]netip.AddrPort{b.addr}, nil)
	p, err := New(DefaultConfig(netip.MustParseAddrPort("127.0.0.1:0")), pool)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Listen(); err != nil {
		t.Fatal(err)
	}
	go p.Serve(context.Background())
	c := dial(t, p.Addrs()[0])
	roundTrip(t, c, "before")
	addr := p.Addrs()[0]
	done := make(chan error, 1)
	go func() { done <- p.Shutdown(context.Background()) }()
	// New connections are refused once the listener is closed ...
	eventually(t, "listener closed", func() bool {
		nc, err := net.Dial("tcp", addr.String())
		if err == nil {
			nc.Close()
		}
		return err != nil
	})
	// ... while the in-flight one keeps working until its client ends it.
	roundTrip(t, c, "during drain")
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a connection open", err)
	default:
	}
	c.Close()
	if err := <-done; err != nil {
		t.Errorf("Shutdown = %v, want nil after the drain", err)
	}
	if n := p.Stats().DrainClosed; n != 0 {
		t.Errorf("DrainClosed = %d after a complete drain, want 0", n)
	}
}

func TestShutdownDrainTimeout(t *testing.T) {
	b := startBackend(t, echo)
	fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
	pool := NewPool([]netip.AddrPort{b.addr}, nil)
	cfg := DefaultConfig(netip.MustParseAddrPort("127.0.0.1:0"))
	cfg.Clock = fc
	p, err := New(cfg, pool)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	if err := p.Listen(); err != nil {
		t.Fatal(err)
	}
	go func() { served <- p.Serve(context.Background()) }()
	c := dial(t, p.Addrs()[0])
	roundTrip(t, c, "held open")
	done := make(chan error, 1)
	go func() { done <- p.Shutdown(context.Background()) }()
	// The drain timer is the only fake timer left once maintenance stops.
	<-p.maintDone
	eventually(t, "the drain timer", func() bool { return fc.Waiters() == 1 })
	fc.Step(DefaultDrainTimeout)
	if err := <-done; !errors.Is(err, ErrDrainTimeout) {
		t.Errorf("Shutdown = %v, want ErrDrainTimeout", err)
	}
	if !closedByPeer(c) {
		t.Error("connection still open after the drain timed out")
	}
	if s := p.Stats(); s.DrainClosed != 1 || s.DownClosed != 0 || s.IdleClosed != 0 {
		t.Errorf("closed: drain %d, backend down %d, idle %d; want 1 0 0", s.DrainClosed, s.DownClosed, s.IdleClosed)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
}

func TestShutdownByContext(t *testing.T) {
	b := startBackend(t, echo)
	p, err := New(DefaultConfig(netip.MustParseAddrPort("127.0.0.1:0")), NewPool([]netip.AddrPort{b.addr}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx) }()
	c := dial(t, p.Addrs()[0])
	roundTrip(t, c, "x")
	cancel()
	// Serve drains: it returns once the client is gone.
	roundTrip(t, c, "draining")
	c.Close()
	if err := <-served; err != nil {
		t.Errorf("Serve after cancel = %v", err)
	}
}
