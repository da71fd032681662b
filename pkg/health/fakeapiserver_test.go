package health_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/fakeapiserver"
	"github.com/hapod/hapod/pkg/health"
)

func startFake(t *testing.T) (*fakeapiserver.Server, netip.AddrPort) {
	t.Helper()
	s, err := fakeapiserver.New("cp1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return s, netip.MustParseAddrPort(l.Addr().String())
}

// The checkers against a kube-apiserver imitation in its shutdown delay:
// /readyz fails while TLS and TCP still pass, which is why https is the
// default kind.
func TestCheckersAgainstFakeAPIServer(t *testing.T) {
	s, b := startFake(t)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := s.WriteCA(caFile); err != nil {
		t.Fatal(err)
	}
	conf, err := health.TLSConfig(caFile, "")
	if err != nil {
		t.Fatal(err)
	}
	checkers := map[string]health.Checker{}
	for _, k := range health.Kinds() {
		c, err := health.NewChecker(k, "", conf)
		if err != nil {
			t.Fatal(err)
		}
		checkers[string(k)] = c
	}
	run := func(kind string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return checkers[kind].Check(ctx, b)
	}
	for kind := range checkers {
		if err := run(kind); err != nil {
			t.Errorf("%s check of a ready server: %v", kind, err)
		}
	}
	s.SetMode(fakeapiserver.ModeFail)
	if err := run("https"); !errors.Is(err, health.ErrStatus) || !strings.Contains(err.Error(), "shutdown failed") {
		t.Errorf("https check in shutdown delay: %v, want ErrStatus naming the shutdown check", err)
	}
	for _, kind := range []string{"tls", "tcp"} {
		if err := run(kind); err != nil {
			t.Errorf("%s check in shutdown delay: %v, want pass", kind, err)
		}
	}
}

// A Prober on the real clock follows the fake server's mode. It waits
// for transitions (with a hang guard) and asserts only their order.
func TestProberFollowsFakeAPIServer(t *testing.T) {
	s, b := startFake(t)
	trs := make(chan health.Transition, 16)
	p := health.NewProber(health.Config{Interval: 10 * time.Millisecond, Timeout: 5 * time.Second, Rise: 2, Fall: 2},
		&health.HTTPSChecker{}, []netip.AddrPort{b}, func(tr health.Transition) { trs <- tr })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		p.Run(ctx)
		close(done)
	}()
	defer func() {
		cancel()
		<-done
	}()
	next := func() health.Transition {
		t.Helper()
		select {
		case tr := <-trs:
			return tr
		case <-time.After(10 * time.Second):
			t.Fatal("no transition")
			return health.Transition{}
		}
	}
	if tr := next(); !tr.Healthy || tr.Backend != b {
		t.Fatalf("first transition %+v, want %v up", tr, b)
	}
	s.SetMode(fakeapiserver.ModeFail)
	if tr := next(); tr.Healthy || !errors.Is(tr.Err, health.ErrStatus) {
		t.Fatalf("after fail: %+v, want down with ErrStatus", tr)
	}
	s.SetMode(fakeapiserver.ModeOK)
	if tr := next(); !tr.Healthy {
		t.Fatalf("after recovery: %+v, want up", tr)
	}
	if r := p.Results()[0]; !r.Healthy || r.Checks < 5 {
		t.Errorf("Results = %+v, want healthy after at least 5 checks (1 + fall 2 + rise 2)", r)
	}
}

// BenchmarkCheck reports the cost of one check of each kind against the
// fake apiserver on loopback (a fresh connection every time).
func BenchmarkCheck(b *testing.B) {
	s, err := fakeapiserver.New("cp1")
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(l)
	defer s.Close()
	backend := netip.MustParseAddrPort(l.Addr().String())
	for _, k := range health.Kinds() {
		c, err := health.NewChecker(k, "", nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(string(k), func(b *testing.B) {
			for b.Loop() {
				if err := c.Check(context.Background(), backend); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
