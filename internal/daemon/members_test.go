package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/membership"
)

// addrSet records Add and Remove calls, like the pool and the prober.
type addrSet struct {
	mu    sync.Mutex
	addrs []netip.AddrPort
	calls []string
}

func (s *addrSet) Add(a netip.AddrPort) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "add "+a.String())
	if slices.Contains(s.addrs, a) {
		return false
	}
	s.addrs = append(s.addrs, a)
	return true
}

func (s *addrSet) Remove(a netip.AddrPort) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "remove "+a.String())
	i := slices.Index(s.addrs, a)
	if i < 0 {
		return false
	}
	s.addrs = slices.Delete(s.addrs, i, i+1)
	return true
}

var (
	m1 = netip.MustParseAddrPort("198.18.0.11:6443")
	m2 = netip.MustParseAddrPort("198.18.0.12:6443")
	m3 = netip.MustParseAddrPort("198.18.0.13:6443")
)

// The members a run starts with are the static and the persisted ones;
// every change reaches the prober, the pool and (in unicast mode) the
// peers, which keep the static --peer first and leave this node out.
func TestMembersApplyChanges(t *testing.T) {
	cfg := config.Default()
	cfg.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.18.0.10/24")}
	cfg.Proxy.Backends = []netip.AddrPort{m1}
	cfg.VRRP.Peers = []netip.Addr{netip.MustParseAddr("198.18.0.99")}
	cfg.Membership.StateDir = t.TempDir()
	cfg.Membership.Grace = time.Minute
	path := filepath.Join(cfg.Membership.StateDir, membership.FileName(cfg.VIP.Primary().Addr()))
	if err := membership.Save(path, []netip.AddrPort{m2}); err != nil {
		t.Fatal(err)
	}
	m := loadMembers(cfg, slog.New(slog.DiscardHandler))
	if !slices.Equal(m.initial, []netip.AddrPort{m1, m2}) {
		t.Fatalf("initial members %v, want static then persisted", m.initial)
	}
	pool, prober := &addrSet{addrs: slices.Clone(m.initial)}, &addrSet{addrs: slices.Clone(m.initial)}
	// A dual-stack node: each family's router gets the members of its
	// family as peers, itself left out.
	self6 := netip.MustParseAddr("2001:db8::1")
	m.cfg.VRRP.Peers = append(m.cfg.VRRP.Peers, netip.MustParseAddr("2001:db8::99"))
	var peers, peers6 [][]netip.Addr
	sink := memberSink{pool: pool, prober: prober, routers: []peerSink{
		{self: m1.Addr(), setPeers: func(p []netip.Addr) error { peers = append(peers, p); return nil }},
		{self: self6, setPeers: func(p []netip.Addr) error { peers6 = append(peers6, p); return nil }},
	}}
	m.cfg.Membership.Discover = false // no API source and no Run: the test feeds the Tracker
	tr := m.start(context.Background(), sink, clocktesting.NewFakeClock(time.Now()), "test")
	m6 := netip.AddrPortFrom(netip.MustParseAddr("2001:db8::3"), 6443)
	tr.Observe([]netip.AddrPort{m1, m3, netip.AddrPortFrom(self6, 6443), m6})

	if want := []netip.AddrPort{m1, m2, m3, netip.AddrPortFrom(self6, 6443), m6}; !slices.Equal(pool.addrs, want) || !slices.Equal(prober.addrs, want) {
		t.Fatalf("pool %v prober %v after m3 and the IPv6 members were listed", pool.addrs, prober.addrs)
	}
	want := []netip.Addr{netip.MustParseAddr("198.18.0.99"), m2.Addr(), m3.Addr()}
	if len(peers) == 0 || !slices.Equal(peers[len(peers)-1], want) {
		t.Fatalf("IPv4 peers %v, last want %v", peers, want)
	}
	want6 := []netip.Addr{netip.MustParseAddr("2001:db8::99"), m6.Addr()}
	if len(peers6) == 0 || !slices.Equal(peers6[len(peers6)-1], want6) {
		t.Fatalf("IPv6 peers %v, last want %v", peers6, want6)
	}
	// Without --peer (multicast) the peers are never set.
	cfg.VRRP.Peers = nil
	if p := loadMembers(cfg, slog.New(slog.DiscardHandler)).peers([]netip.AddrPort{m1, m2}, m1.Addr()); p != nil {
		t.Fatalf("multicast mode got peers %v", p)
	}
}

// A corrupt state file is ignored: the static backends start alone.
func TestLoadMembersIgnoresABadFile(t *testing.T) {
	cfg := config.Default()
	cfg.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.18.0.10/24")}
	cfg.Proxy.Backends = []netip.AddrPort{m1}
	cfg.Membership.StateDir = t.TempDir()
	path := filepath.Join(cfg.Membership.StateDir, membership.FileName(cfg.VIP.Primary().Addr()))
	writeBad(t, path)
	if m := loadMembers(cfg, slog.New(slog.DiscardHandler)); !slices.Equal(m.initial, []netip.AddrPort{m1}) {
		t.Fatalf("initial %v with a corrupt state file", m.initial)
	}
}

func writeBad(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("not a member file"), 0o644); err != nil {
		t.Fatal(err)
	}
}
