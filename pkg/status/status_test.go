package status

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthAndReadiness(t *testing.T) {
	s := New(netip.MustParseAddrPort("127.0.0.1:0"))
	var vrrpReady, stuck atomic.Bool
	s.AddLiveness("loops", func() error {
		if stuck.Load() {
			return errors.New("speaker loop stopped")
		}
		return nil
	})
	s.AddReadiness("vrrp", func() error {
		if !vrrpReady.Load() {
			return errors.New("initializing")
		}
		return nil
	})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx) }()
	base := "http://" + s.Addr().String()

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "[-]vrrp failed: initializing") {
		t.Errorf("/readyz before ready = %d %q", code, body)
	}
	vrrpReady.Store(true)
	if code, body := get(t, base+"/readyz?verbose"); code != 200 || body != "[+]loops ok\n[+]vrrp ok\nok\n" {
		t.Errorf("/readyz verbose = %d %q", code, body)
	}
	stuck.Store(true)
	if code, _ := get(t, base+"/healthz"); code != 503 {
		t.Errorf("/healthz with a stuck loop = %d", code)
	}
	if code, _ := get(t, base+"/readyz"); code != 503 {
		t.Errorf("/readyz with a stuck loop = %d", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestListenBusyAddress(t *testing.T) {
	a := New(netip.MustParseAddrPort("127.0.0.1:0"))
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	defer a.listener.Close()
	b := New(netip.MustParseAddrPort(a.Addr().String()))
	if err := b.Listen(); err == nil || !strings.Contains(err.Error(), "status server") {
		t.Errorf("second Listen on a busy port: %v", err)
	}
}
