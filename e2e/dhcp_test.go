package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/dhcpvip"
)

const dnsmasqBin = "/usr/sbin/dnsmasq"

// dnsmasqLease is one line of dnsmasq's lease file:
// "<expiry epoch> <MAC> <IP> <hostname|*> <client-id|*>".
type dnsmasqLease struct {
	Expiry   int64
	MAC      string
	Addr     netip.Addr
	ClientID string
}

func readLeases(t *testing.T, path string) []dnsmasqLease {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []dnsmasqLease
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "duid") {
			continue
		}
		if len(f) != 5 {
			t.Fatalf("lease file line %q", line)
		}
		exp, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			t.Fatalf("lease file line %q: %v", line, err)
		}
		a, err := netip.ParseAddr(f[2])
		if err != nil {
			t.Fatalf("lease file line %q: %v", line, err)
		}
		out = append(out, dnsmasqLease{Expiry: exp, MAC: f[1], Addr: a, ClientID: f[4]})
	}
	return out
}

// oneLease asserts that the lease file holds exactly one lease, for the
// virtual MAC and client ID and the expected address, and returns it.
func oneLease(t *testing.T, path string, id dhcpvip.Identity, addr netip.Addr) dnsmasqLease {
	t.Helper()
	ls := readLeases(t, path)
	if len(ls) != 1 {
		t.Fatalf("dnsmasq holds %d leases, want 1: %+v", len(ls), ls)
	}
	l := ls[0]
	wantCID := colonHex(id.ClientID)
	if l.MAC != id.MAC.String() || l.ClientID != wantCID || l.Addr != addr {
		t.Fatalf("dnsmasq lease %+v, want MAC %s client ID %s address %s", l, id.MAC, wantCID, addr)
	}
	return l
}

func colonHex(b []byte) string {
	s := make([]string, len(b))
	for i, c := range b {
		s[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(s, ":")
}

// waitExpiryAfter waits until dnsmasq's single lease expires later than
// prev: the server recorded a renewal. dnsmasq keeps whole seconds, so a
// renewal within the same second as the last one moves nothing; callers
// let a second pass first (nextSecond).
func waitExpiryAfter(t *testing.T, path string, id dhcpvip.Identity, addr netip.Addr, prev int64, what string, keepers ...*dhcpvip.Keeper) dnsmasqLease {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if ls := readLeases(t, path); len(ls) == 1 && ls[0].Expiry > prev {
			break
		}
		if time.Now().After(deadline) {
			for i, k := range keepers {
				t.Logf("keeper %d: %+v", i, k.Status())
			}
			t.Fatalf("gave up waiting for %s: dnsmasq's leases %+v, previous expiry %d, now %d", what, readLeases(t, path), prev, time.Now().Unix())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return oneLease(t, path, id, addr)
}

// startDnsmasq runs Debian's dnsmasq as the site's DHCP server on node,
// leasing .150-.190 of the lab prefix for 2 minutes (its minimum) with the
// given T1 and T2 in seconds, and waits until it serves.
func startDnsmasq(t *testing.T, l *lab.Lab, node *lab.Node, leaseFile string, t1, t2 int) *lab.Process {
	t.Helper()
	dir := filepath.Dir(leaseFile)
	if err := os.Chmod(dir, 0o755); err != nil { // dnsmasq drops root
		t.Fatal(err)
	}
	first, last := l.Prefix4.Addr().As4(), l.Prefix4.Addr().As4()
	first[3], last[3] = 150, 190
	p := node.Start(t, dnsmasqBin, "--no-daemon", "--port=0", "--no-ping", "--bind-interfaces",
		"--interface="+node.Iface,
		fmt.Sprintf("--dhcp-range=%s,%s,2m", netip.AddrFrom4(first), netip.AddrFrom4(last)),
		fmt.Sprintf("--dhcp-option=option:T1,%d", t1), fmt.Sprintf("--dhcp-option=option:T2,%d", t2),
		"--dhcp-leasefile="+leaseFile, "--pid-file="+filepath.Join(dir, "dnsmasq.pid"),
		"--log-dhcp", "--conf-file=/dev/null")
	lab.WaitFor(t, 10*time.Second, "dnsmasq's DHCP range", func() bool {
		return strings.Contains(p.Log(), "DHCP, IP range")
	})
	return p
}

// nextSecond sleeps until two wall-clock seconds after epoch have begun,
// so a renewal from now on moves dnsmasq's whole-second expiry. (One second
// is not always enough: a renewal 0.97 s and one second boundary after the
// previous one was measured to leave dnsmasq's expiry unchanged.)
func nextSecond(epoch int64) {
	for time.Now().Unix() <= epoch+1 {
		time.Sleep(50 * time.Millisecond)
	}
}

// testLogger collects a Keeper's log (debug level: every message sent) and
// prints it when the test fails.
func testLogger(t *testing.T, name string) *slog.Logger {
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("keeper %s log:\n%s", name, buf.String())
			mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// alerts collects a Keeper's alerts for the test.
type alerts struct {
	mu  sync.Mutex
	got []dhcpvip.Alert
}

func (a *alerts) notify(act dhcpvip.Action) {
	if al, ok := act.(dhcpvip.Alert); ok {
		a.mu.Lock()
		a.got = append(a.got, al)
		a.mu.Unlock()
	}
}

func (a *alerts) has(sev dhcpvip.Severity, target error) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, al := range a.got {
		if al.Severity == sev && errors.Is(al.Err, target) {
			return true
		}
	}
	return false
}

// startKeeper creates the macvlan and a Keeper in node's namespace and
// runs it until the test ends.
func startDHCPKeeper(t *testing.T, node *lab.Node, cfg dhcpvip.Config) *dhcpvip.Keeper {
	t.Helper()
	var k *dhcpvip.Keeper
	err := node.Do(func() error {
		var err error
		k, err = dhcpvip.DialKeeper(cfg)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", node.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: Keeper.Run: %v", node.Name, err)
		}
		if err := k.Close(); err != nil {
			t.Errorf("%s: Keeper.Close: %v", node.Name, err)
		}
	})
	return k
}

// TestDHCPVIP leases a VIP from dnsmasq for the cluster's virtual MAC and
// keeps it through renewals, a failover, a server outage past the lease's
// end and the server's return. dnsmasq runs on node0; nodes 1 and 2 are
// the hapod nodes A and B. A runs on the real clock (renewals at the
// server's T1 of 4 s); B on a fake one, so the 2-minute lease (dnsmasq's
// minimum) can run out without the test waiting for it.
func TestDHCPVIP(t *testing.T) {
	lab.Tool(t, dnsmasqBin, "dnsmasq-base")
	l := lab.New(t, 3)
	srvNode, nodeA, nodeB := l.Nodes[0], l.Nodes[1], l.Nodes[2]
	leaseFile := filepath.Join(t.TempDir(), "dnsmasq.leases")
	startServer := func() *lab.Process { return startDnsmasq(t, l, srvNode, leaseFile, 4, 7) }
	server := startServer()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dnsmasq's log:\n%s", server.Log())
		}
	})

	id := dhcpvip.NewIdentity(51, "e2e-"+l.ID)
	t.Logf("identity: MAC %s client ID %s", id.MAC, colonHex(id.ClientID))

	// hapod init: Acquire on node A gets a lease; dnsmasq records one
	// lease for the virtual MAC; the macvlan is gone afterwards.
	var lease dhcpvip.Lease
	start := time.Now()
	err := nodeA.Do(func() error {
		var err error
		lease, err = dhcpvip.Acquire(context.Background(), dhcpvip.Config{
			Interface: nodeA.Iface, Identity: id, Hostname: "hapod-e2e",
		})
		return err
	})
	if err != nil {
		t.Fatalf("Acquire: %v\ndnsmasq log:\n%s", err, server.Log())
	}
	t.Logf("Acquire: %s from %s for %s (T1 %s, T2 %s) in %v", lease.Prefix, lease.Server, lease.Duration, lease.T1, lease.T2, time.Since(start).Round(time.Millisecond))
	if !l.Prefix4.Contains(lease.Addr()) || lease.Prefix.Bits() != l.Prefix4.Bits() || lease.Server != srvNode.IPv4 {
		t.Fatalf("lease %+v: not from the lab's range and server", lease)
	}
	if lease.Duration != 2*time.Minute || lease.T1 != 4*time.Second || lease.T2 != 7*time.Second {
		t.Fatalf("lease times %v/%v/%v, want dnsmasq's 2m/4s/7s", lease.Duration, lease.T1, lease.T2)
	}
	vip := lease.Addr()
	dl := oneLease(t, leaseFile, id, vip)
	if out := nodeA.Run(t, "ip", "-o", "link", "show"); strings.Contains(out, dhcpvip.DefaultLinkName) {
		t.Fatalf("Acquire left its macvlan behind:\n%s", out)
	}

	// hapod run on A and B: both have the macvlan, only the active one talks.
	alertsA, alertsB := &alerts{}, &alerts{}
	keeperA := startDHCPKeeper(t, nodeA, dhcpvip.Config{Interface: nodeA.Iface, Identity: id, Want: vip, Notify: alertsA.notify,
		Logger: testLogger(t, "A")})
	clkB := clocktesting.NewFakeClock(time.Now())
	keeperB := startDHCPKeeper(t, nodeB, dhcpvip.Config{Interface: nodeB.Iface, Identity: id, Want: vip, Clock: clkB, Notify: alertsB.notify,
		Logger: testLogger(t, "B")})
	for _, n := range []*lab.Node{nodeA, nodeB} {
		out := n.Run(t, "ip", "-d", "link", "show", dhcpvip.DefaultLinkName)
		for _, want := range []string{id.MAC.String(), "NOARP", "state UP", "macvlan mode bridge"} {
			if !strings.Contains(out, want) {
				t.Fatalf("%s: macvlan lacks %q:\n%s", n.Name, want, out)
			}
		}
		if out := n.Run(t, "ip", "addr", "show", "dev", dhcpvip.DefaultLinkName); strings.Contains(out, "inet") {
			t.Fatalf("%s: the macvlan has an address (it would speak from the shared MAC):\n%s", n.Name, out)
		}
	}

	// hapod init re-run on a node where hapod runs: refused, clearly,
	// without touching the running Keeper's link.
	err = nodeA.Do(func() error {
		_, err := dhcpvip.Acquire(context.Background(), dhcpvip.Config{Interface: nodeA.Iface, Identity: id})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "running hapod") {
		t.Fatalf("Acquire beside a running Keeper: %v", err)
	}
	if out := nodeA.Run(t, "ip", "link", "show", dhcpvip.DefaultLinkName); !strings.Contains(out, "state UP") {
		t.Fatalf("the running Keeper's link after a refused Acquire:\n%s", out)
	}

	// A becomes active: renews at once, then at T1 on its own.
	nextSecond(dl.Expiry - 120)
	keeperA.SetActive(true)
	dl = waitExpiryAfter(t, leaseFile, id, vip, dl.Expiry, "A's renewal on activation")
	// dnsmasq writes its lease file before its ACK reaches A.
	lab.WaitFor(t, 5*time.Second, "A bound", func() bool { return keeperA.Status().State == dhcpvip.StateBound })
	st := keeperA.Status()
	if st.Lease.Addr() != vip || st.Healthy() != nil {
		t.Fatalf("A: %+v", st)
	}
	for i := 0; i < 2; i++ {
		nextSecond(dl.Expiry - 120)
		dl = waitExpiryAfter(t, leaseFile, id, vip, dl.Expiry, "A's renewal at T1")
	}
	if s := keeperB.Status(); s.Sent != 0 || s.Active {
		t.Fatalf("backup B sent %d messages", s.Sent)
	}

	// Failover: A steps down, B takes over with the same identity and
	// gets the same address at once; A stays silent past its T1 and T2.
	keeperA.SetActive(false)
	lab.WaitFor(t, 5*time.Second, "A silent", func() bool { return !keeperA.Status().Active })
	sentA := keeperA.Status().Sent
	nextSecond(dl.Expiry - 120)
	keeperB.SetActive(true)
	dl = waitExpiryAfter(t, leaseFile, id, vip, dl.Expiry, "B's renewal on takeover", keeperA, keeperB)
	lab.WaitFor(t, 5*time.Second, "B bound", func() bool { return keeperB.Status().State == dhcpvip.StateBound })
	if st := keeperB.Status(); st.Lease.Addr() != vip || st.Healthy() != nil {
		t.Fatalf("B: %+v", st)
	}
	nextSecond(dl.Expiry - 120)
	advance(t, clkB, 4*time.Second) // B's T1
	dl = waitExpiryAfter(t, leaseFile, id, vip, dl.Expiry, "B's renewal at T1", keeperA, keeperB)
	time.Sleep(8 * time.Second) // A's T1 and T2 pass in real time
	if got := keeperA.Status().Sent; got != sentA {
		t.Fatalf("backup A sent %d messages after stepping down", got-sentA)
	}

	// The server goes away: B keeps the address through Renewing and
	// Rebinding, without an error, until the lease ends; then it reports
	// the expiry loudly and still holds on to the address.
	if err := server.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := server.Wait(10 * time.Second); err != nil && !strings.Contains(err.Error(), "terminated") {
		t.Logf("dnsmasq exit: %v", err)
	}
	waitState := func(s dhcpvip.State) dhcpvip.Status {
		t.Helper()
		lab.WaitFor(t, 5*time.Second, "B in state "+s.String(), func() bool { return keeperB.Status().State == s })
		return keeperB.Status()
	}
	obtained := keeperB.Status().Lease.Obtained
	advance(t, clkB, obtained.Add(4*time.Second).Sub(clkB.Now()))
	if st := waitState(dhcpvip.StateRenewing); st.Healthy() != nil || st.Lease.Addr() != vip {
		t.Fatalf("renewing without a server: %+v", st)
	}
	advance(t, clkB, obtained.Add(7*time.Second).Sub(clkB.Now()))
	if st := waitState(dhcpvip.StateRebinding); st.Healthy() != nil || st.Lease.Addr() != vip {
		t.Fatalf("rebinding without a server: %+v", st)
	}
	if !alertsB.has(dhcpvip.Warning, dhcpvip.ErrNoReply) {
		t.Fatal("no warning that the server went silent")
	}
	advance(t, clkB, obtained.Add(2*time.Minute).Sub(clkB.Now()))
	st = waitState(dhcpvip.StateExpired)
	if !errors.Is(st.Healthy(), dhcpvip.ErrLeaseExpired) || !alertsB.has(dhcpvip.Error, dhcpvip.ErrLeaseExpired) || st.Want != vip {
		t.Fatalf("expiry not reported: %+v", st)
	}
	t.Logf("B after the lease's end: %s, %v", st.State, st.Healthy())

	// The server returns (its lease file still holds the lease, which in
	// real time has not run out): B's next retransmission gets the VIP back.
	prevExpiry := dl.Expiry
	nextSecond(prevExpiry - 120)
	server = startServer()
	for i := 0; i < 20 && keeperB.Status().State != dhcpvip.StateBound; i++ {
		advance(t, clkB, dhcpvip.DefaultRetryMax)
		time.Sleep(200 * time.Millisecond) // the reply's round trip
	}
	st = waitState(dhcpvip.StateBound)
	if st.Lease.Addr() != vip || st.Healthy() != nil {
		t.Fatalf("after the server's return: %+v", st)
	}
	waitExpiryAfter(t, leaseFile, id, vip, prevExpiry, "the renewal after the server's return")
	if n := strings.Count(server.Log(), "DHCPRELEASE"); n != 0 {
		t.Fatalf("dnsmasq saw %d releases", n)
	}
}

// advance steps a fake clock once the keeper waits on a timer, so the step
// can't fall between its reading the clock and arming the timer.
func advance(t *testing.T, clk *clocktesting.FakeClock, d time.Duration) {
	t.Helper()
	lab.WaitFor(t, 5*time.Second, "the keeper's timer", clk.HasWaiters)
	clk.Step(d)
}

// TestDHCPNoServer: Acquire on a segment without a DHCP server fails after
// its bounded wait with a clear error, and leaves no macvlan behind.
func TestDHCPNoServer(t *testing.T) {
	l := lab.New(t, 1)
	n := l.Nodes[0]
	err := n.Do(func() error {
		_, err := dhcpvip.Acquire(context.Background(), dhcpvip.Config{
			Interface: n.Iface, Identity: dhcpvip.NewIdentity(7, "e2e-"+l.ID), Timeout: 3 * time.Second,
		})
		return err
	})
	if !errors.Is(err, dhcpvip.ErrNoServer) || err.Error() != "no DHCP server answered on "+n.Iface+" within 3s" {
		t.Fatalf("err %v, want %q", err, "no DHCP server answered on "+n.Iface+" within 3s")
	}
	if out := n.Run(t, "ip", "-o", "link", "show"); strings.Contains(out, dhcpvip.DefaultLinkName) {
		t.Fatalf("macvlan left behind:\n%s", out)
	}
}
