package dhcpvip

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	clocktesting "k8s.io/utils/clock/testing"
)

// serverMode is how the fake server answers.
type serverMode int

const (
	answer    serverMode = iota // offer and ACK what is asked (or its pool address)
	silent                      // nothing
	nak                         // NAK every Request
	otherAddr                   // offer and ACK another address
	otherXID                    // answer as if to another transaction
)

// fakeServer is a DHCP server on a loopback UDP socket: enough to drive a
// Keeper through every exchange without privileges.
type fakeServer struct {
	t    testing.TB
	conn net.PacketConn

	mu       sync.Mutex
	mode     serverMode
	pool     netip.Addr
	lease    time.Duration
	t1, t2   time.Duration
	received []*dhcpv4.DHCPv4
}

func newFakeServer(t testing.TB) *fakeServer {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, conn: conn, pool: vip, lease: 120 * time.Second}
	done := make(chan struct{})
	go s.serve(done)
	t.Cleanup(func() { conn.Close(); <-done })
	return s
}

func (s *fakeServer) addr() netip.AddrPort {
	return s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func (s *fakeServer) setTimes(t1, t2 time.Duration) {
	s.mu.Lock()
	s.t1, s.t2 = t1, t2
	s.mu.Unlock()
}

func (s *fakeServer) set(mode serverMode) {
	s.mu.Lock()
	s.mode = mode
	s.mu.Unlock()
}

func (s *fakeServer) messages() []*dhcpv4.DHCPv4 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*dhcpv4.DHCPv4(nil), s.received...)
}

func (s *fakeServer) serve(done chan<- struct{}) {
	defer close(done)
	b := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFrom(b)
		if err != nil {
			return
		}
		req, err := dhcpv4.FromBytes(b[:n])
		if err != nil {
			s.t.Errorf("fake server: undecodable packet: %v", err)
			continue
		}
		s.mu.Lock()
		s.received = append(s.received, req)
		mode, pool, lease, t1, t2 := s.mode, s.pool, s.lease, s.t1, s.t2
		s.mu.Unlock()
		if mode == silent {
			continue
		}
		addr := pool
		if mode == otherAddr {
			addr = other
		} else if r := req.RequestedIPAddress(); r != nil && req.MessageType() == dhcpv4.MessageTypeRequest {
			addr, _ = ipToAddr4(r)
		}
		mods := []dhcpv4.Modifier{
			dhcpv4.WithYourIP(net.IP(addr.AsSlice())),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(server.AsSlice()))),
			dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(lease)),
		}
		if t1 > 0 {
			mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(t1)), dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(t2)))
		}
		switch {
		case req.MessageType() == dhcpv4.MessageTypeDiscover:
			mods = append(mods, dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer))
		case mode == nak:
			mods = []dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
				dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(server.AsSlice()))),
				dhcpv4.WithOption(dhcpv4.OptMessage("address not available"))}
		default:
			mods = append(mods, dhcpv4.WithMessageType(dhcpv4.MessageTypeAck))
		}
		resp, err := dhcpv4.NewReplyFromRequest(req, mods...)
		if err != nil {
			s.t.Errorf("fake server: %v", err)
			continue
		}
		if mode == otherXID {
			for i := range resp.TransactionID {
				resp.TransactionID[i] ^= 0xff
			}
		}
		if _, err := s.conn.WriteTo(resp.ToBytes(), from); err != nil {
			return
		}
	}
}

// waitFor polls cond until it holds; the bound only keeps a broken test
// from hanging.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// notes records what a Keeper notified, safe for the test goroutine.
type notes struct {
	mu   sync.Mutex
	acts []Action
}

func (n *notes) add(a Action) {
	n.mu.Lock()
	n.acts = append(n.acts, a)
	n.mu.Unlock()
}

func (n *notes) has(sev Severity, target error) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range n.acts {
		if al, ok := a.(Alert); ok && al.Severity == sev && errors.Is(al.Err, target) {
			return true
		}
	}
	return false
}

// advance steps the fake clock once the keepers wait on a timer, so the
// step can't fall between their reading the clock and arming the timer.
func advance(t *testing.T, clk *clocktesting.FakeClock, d time.Duration) {
	t.Helper()
	waitFor(t, "a keeper's timer", clk.HasWaiters)
	clk.Step(d)
}

type testKeeper struct {
	*Keeper
	notes *notes
}

// startKeeper runs a Keeper with the test identity on a loopback socket
// talking to srv, on clk.
func startKeeper(t *testing.T, srv *fakeServer, clk *clocktesting.FakeClock, want netip.Addr) testKeeper {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &notes{}
	k, err := NewKeeper(conn, Config{Identity: testID, Want: want, Server: srv.addr(), Clock: clk, Notify: n.add})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := k.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return testKeeper{k, n}
}

func (k testKeeper) waitState(t *testing.T, s State) Status {
	t.Helper()
	waitFor(t, "state "+s.String(), func() bool { return k.Status().State == s })
	return k.Status()
}

// waitSent waits until the server has received n messages in all.
func waitSent(t *testing.T, srv *fakeServer, n int) {
	t.Helper()
	waitFor(t, "the server to receive a message", func() bool { return len(srv.messages()) >= n })
}

func TestAcquireConn(t *testing.T) {
	srv := newFakeServer(t)
	srv.setTimes(30*time.Second, 50*time.Second)
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	clk := clocktesting.NewFakeClock(t0)
	lease, err := AcquireConn(context.Background(), conn, Config{Identity: testID, Server: srv.addr(), Clock: clk, Hostname: "hapod-test"})
	if err != nil {
		t.Fatal(err)
	}
	want := Lease{Prefix: netip.MustParsePrefix("198.18.0.150/24"), Server: server, Duration: 120 * time.Second,
		T1: 30 * time.Second, T2: 50 * time.Second, Obtained: t0}
	if lease != want {
		t.Fatalf("lease %+v, want %+v", lease, want)
	}
	msgs := srv.messages()
	if len(msgs) != 2 || msgs[0].MessageType() != dhcpv4.MessageTypeDiscover || msgs[1].MessageType() != dhcpv4.MessageTypeRequest {
		t.Fatalf("server saw %d messages: %v", len(msgs), msgs)
	}
	for _, m := range msgs {
		if !m.IsBroadcast() || !bytes.Equal(m.Options.Get(dhcpv4.OptionClientIdentifier), testID.ClientID) ||
			!bytes.Equal(m.ClientHWAddr, testID.MAC) || m.HostName() != "hapod-test" {
			t.Fatalf("identity missing from %v", m)
		}
	}
	if got := msgs[1].ServerIdentifier(); !got.Equal(net.IP(server.AsSlice())) {
		t.Fatalf("Request to server %v", got)
	}
}

// acquireStepping runs AcquireConn on a fake clock stepped one second at a
// time until it returns.
func acquireStepping(t *testing.T, srv *fakeServer, cfg Config) (Lease, error) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	clk := clocktesting.NewFakeClock(t0)
	cfg.Identity, cfg.Server, cfg.Clock = testID, srv.addr(), clk
	type result struct {
		l   Lease
		err error
	}
	res := make(chan result, 1)
	go func() {
		l, err := AcquireConn(context.Background(), conn, cfg)
		res <- result{l, err}
	}()
	waitSent(t, srv, 1)
	for i := 0; i < 120; i++ {
		select {
		case r := <-res:
			return r.l, r.err
		default:
		}
		clk.Step(time.Second)
		time.Sleep(time.Millisecond)
	}
	r := <-res
	return r.l, r.err
}

func TestAcquireNoServer(t *testing.T) {
	srv := newFakeServer(t)
	srv.set(silent)
	_, err := acquireStepping(t, srv, Config{Interface: "eth7"})
	if !errors.Is(err, ErrNoServer) {
		t.Fatalf("err %v, want ErrNoServer", err)
	}
	if got, want := err.Error(), "no DHCP server answered on eth7 within 10s"; got != want {
		t.Fatalf("error %q, want %q", got, want)
	}
	// 10 s: Discover at 0, 4 and 12 s is past the end: two sent.
	if n := len(srv.messages()); n < 2 {
		t.Fatalf("%d Discovers in 10 s", n)
	}
}

func TestAcquireRefused(t *testing.T) {
	srv := newFakeServer(t)
	srv.set(nak)
	_, err := acquireStepping(t, srv, Config{Interface: "eth7", Timeout: 3 * time.Second})
	if !errors.Is(err, ErrNak) || !strings.Contains(err.Error(), "address not available") {
		t.Fatalf("err %v, want ErrNak with the server's reason", err)
	}
	srv.set(otherAddr)
	_, err = acquireStepping(t, srv, Config{Interface: "eth7", Want: vip, Timeout: 3 * time.Second})
	if !errors.Is(err, ErrDifferentAddress) {
		t.Fatalf("err %v, want ErrDifferentAddress", err)
	}
}

func TestKeeperRenewsAndFailsOver(t *testing.T) {
	srv := newFakeServer(t)
	clk := clocktesting.NewFakeClock(t0)
	a := startKeeper(t, srv, clk, vip)
	b := startKeeper(t, srv, clk, vip)

	// Inactive keepers are silent.
	clk.Step(time.Second)
	time.Sleep(20 * time.Millisecond)
	if n := len(srv.messages()); n != 0 {
		t.Fatalf("inactive keepers sent %d messages", n)
	}

	a.SetActive(true)
	st := a.waitState(t, StateBound)
	if st.Lease.Addr() != vip || !st.Active || st.Healthy() != nil {
		t.Fatalf("status %+v", st)
	}
	obtained := st.Lease.Obtained

	// T1 = 60 s: renewal to the server that granted the lease.
	advance(t, clk, 60*time.Second)
	waitFor(t, "the renewal", func() bool { return a.Status().Lease.Obtained.After(obtained) })
	msgs := srv.messages()
	last := msgs[len(msgs)-1]
	if last.MessageType() != dhcpv4.MessageTypeRequest || !last.ServerIdentifier().Equal(net.IP(server.AsSlice())) {
		t.Fatalf("renewal %v", last)
	}

	// Failover: a goes silent, b renews at once, same identity, same address.
	a.SetActive(false)
	waitFor(t, "a inactive", func() bool { return !a.Status().Active })
	sentByA := a.Status().Sent
	before := len(srv.messages())
	b.SetActive(true)
	stB := b.waitState(t, StateBound)
	if stB.Lease.Addr() != vip {
		t.Fatalf("b leased %v", stB.Lease.Addr())
	}
	for _, m := range srv.messages()[before:] {
		if !bytes.Equal(m.ClientHWAddr, testID.MAC) || !bytes.Equal(m.Options.Get(dhcpv4.OptionClientIdentifier), testID.ClientID) {
			t.Fatalf("b used another identity: %v", m)
		}
	}
	// Past a's T1 and T2: a stays silent, b keeps renewing.
	obtainedB := stB.Lease.Obtained
	advance(t, clk, 110*time.Second)
	waitFor(t, "b's renewal", func() bool { return b.Status().Lease.Obtained.After(obtainedB) })
	if got := a.Status().Sent; got != sentByA {
		t.Fatalf("backup a sent %d messages", got-sentByA)
	}
	if a.Status().Healthy() != nil {
		t.Fatal("a backup reported a problem")
	}
}

// TestKeeperTakesClusterAck: two nodes that take the VIP over at once
// both ask for the lease with the cluster's identity, and the server may
// answer the other's request only. Its ACK for the VIP is the cluster's
// lease: the holder takes it. An offer to another transaction is not.
func TestKeeperTakesClusterAck(t *testing.T) {
	srv := newFakeServer(t)
	srv.set(otherXID)
	clk := clocktesting.NewFakeClock(t0)
	k := startKeeper(t, srv, clk, vip)
	k.SetActive(true)
	st := k.waitState(t, StateBound)
	if st.Lease.Addr() != vip || st.Lease.Duration != 120*time.Second || st.Healthy() != nil {
		t.Fatalf("status %+v", st)
	}

	// Without a VIP to want, nothing to another transaction is taken.
	srv2 := newFakeServer(t)
	srv2.set(otherXID)
	k2 := startKeeper(t, srv2, clk, netip.Addr{})
	k2.SetActive(true)
	waitFor(t, "k2's discover answered", func() bool { return k2.Status().Received == 0 && len(srv2.messages()) > 0 })
	time.Sleep(50 * time.Millisecond)
	if st := k2.Status(); st.Received != 0 || st.State == StateBound {
		t.Fatalf("k2 took a reply to another transaction: %+v", st)
	}
}

func TestKeeperServerGone(t *testing.T) {
	srv := newFakeServer(t)
	clk := clocktesting.NewFakeClock(t0)
	k := startKeeper(t, srv, clk, vip)
	k.SetActive(true)
	k.waitState(t, StateBound)

	srv.set(silent)
	advance(t, clk, 60*time.Second) // T1
	k.waitState(t, StateRenewing)
	advance(t, clk, 45*time.Second) // T2
	st := k.waitState(t, StateRebinding)
	if st.Lease.Addr() != vip || st.Healthy() != nil {
		t.Fatalf("before expiry: %+v", st)
	}
	if !k.notes.has(Warning, ErrNoReply) {
		t.Fatal("no warning about the silent server")
	}
	advance(t, clk, 15*time.Second) // expiry
	st = k.waitState(t, StateExpired)
	if !errors.Is(st.Healthy(), ErrLeaseExpired) || !k.notes.has(Error, ErrLeaseExpired) {
		t.Fatalf("expiry not reported: %+v", st)
	}
	if st.Lease.Addr() != vip || st.Want != vip {
		t.Fatalf("address forgotten: %+v", st)
	}

	// The server comes back: the next retransmission gets the VIP back.
	srv.set(answer)
	for i := 0; i < 10 && k.Status().State != StateBound; i++ {
		advance(t, clk, DefaultRetryMax)
		time.Sleep(5 * time.Millisecond)
	}
	st = k.waitState(t, StateBound)
	if st.Lease.Addr() != vip || st.Healthy() != nil {
		t.Fatalf("after the server's return: %+v", st)
	}
}

func TestKeeperLoudErrors(t *testing.T) {
	srv := newFakeServer(t)
	clk := clocktesting.NewFakeClock(t0)
	k := startKeeper(t, srv, clk, vip)
	k.SetActive(true)
	k.waitState(t, StateBound)

	srv.set(nak)
	advance(t, clk, 60*time.Second)
	waitFor(t, "the NAK", func() bool { return errors.Is(k.Status().Healthy(), ErrNak) })
	if st := k.Status(); st.Lease.Addr() != vip || st.State != StateRenewing || !k.notes.has(Error, ErrNak) {
		t.Fatalf("after a NAK: %+v", st)
	}

	srv.set(otherAddr)
	advance(t, clk, DefaultRetryMin)
	waitFor(t, "the different address", func() bool { return errors.Is(k.Status().Healthy(), ErrDifferentAddress) })
	if st := k.Status(); st.Lease.Addr() != vip || !k.notes.has(Error, ErrDifferentAddress) {
		t.Fatalf("after another address: %+v", st)
	}

	srv.set(answer)
	advance(t, clk, 2*DefaultRetryMin)
	st := k.waitState(t, StateBound)
	if st.Healthy() != nil || st.Lease.Addr() != vip {
		t.Fatalf("not recovered: %+v", st)
	}
}

func TestKeeperRunTwiceAndRestart(t *testing.T) {
	srv := newFakeServer(t)
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKeeper(conn, Config{Identity: testID, Want: vip, Server: srv.addr(), Clock: clocktesting.NewFakeClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	waitFor(t, "Run to start", func() bool { return k.running.Load() })
	if err := k.Run(ctx); err == nil {
		t.Fatal("a second concurrent Run was accepted")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Run again on the same connection: the read deadline used to stop
	// the first reader must not stop the second.
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- k.Run(ctx) }()
	k.SetActive(true)
	waitFor(t, "a lease after restarting Run", func() bool { return k.Status().State == StateBound })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	// Close never releases: nothing but Requests reached the server.
	for _, m := range srv.messages() {
		if m.MessageType() == dhcpv4.MessageTypeRelease {
			t.Fatal("the lease was released")
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no identity":   {},
		"long link":     {Identity: testID, LinkName: "a-very-long-link-name"},
		"IPv6 VIP":      {Identity: testID, Want: netip.MustParseAddr("2001:db8::1")},
		"multicast MAC": {Identity: Identity{MAC: net.HardwareAddr{1, 2, 3, 4, 5, 6}, ClientID: []byte{1, 1}}},
	} {
		if _, err := cfg.withDefaults(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
