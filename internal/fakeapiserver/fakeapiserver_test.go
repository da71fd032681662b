package fakeapiserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// start serves a new Server on a loopback listener and returns it with
// its base URL and a client that verifies its certificate.
func start(t *testing.T, network, addr string) (*Server, string, *http.Client) {
	t.Helper()
	s, err := New("node-a")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("cannot listen on %s %s: %v", network, addr, err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve after Close: %v", err)
		}
	})
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CAPEM()) {
		t.Fatal("CAPEM holds no certificate")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return s, "https://" + l.Addr().String(), &http.Client{Transport: tr}
}

func do(t *testing.T, c *http.Client, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestHealthEndpointsAndModes(t *testing.T) {
	s, base, c := start(t, "tcp", "127.0.0.1:0")
	for _, p := range []string{"/readyz", "/livez", "/healthz"} {
		if code, body := do(t, c, "GET", base+p); code != 200 || body != "ok" {
			t.Errorf("GET %s = %d %q, want 200 ok", p, code, body)
		}
	}

	s.SetMode(ModeFail)
	if code, body := do(t, c, "GET", base+"/readyz"); code != 500 || !strings.Contains(body, "[-]shutdown failed") {
		t.Errorf("GET /readyz in fail mode = %d %q, want 500 naming the failed check", code, body)
	}
	// Like kube-apiserver in its shutdown delay: alive, serving, not ready.
	if code, _ := do(t, c, "GET", base+"/livez"); code != 200 {
		t.Errorf("GET /livez in fail mode = %d, want 200", code)
	}

	// Switch back at run time over HTTP.
	if code, body := do(t, c, "POST", base+"/fake/mode?m=ok"); code != 200 || body != "ok" {
		t.Fatalf("POST /fake/mode?m=ok = %d %q", code, body)
	}
	if s.Mode() != ModeOK {
		t.Errorf("mode after POST = %q, want ok", s.Mode())
	}
	if code, _ := do(t, c, "GET", base+"/readyz"); code != 200 {
		t.Errorf("GET /readyz after switching back = %d, want 200", code)
	}
	if code, body := do(t, c, "POST", base+"/fake/mode?m=fail"); code != 200 || body != "fail" {
		t.Fatalf("POST /fake/mode?m=fail = %d %q", code, body)
	}
	if code, body := do(t, c, "GET", base+"/fake/mode"); code != 200 || body != "fail" {
		t.Errorf("GET /fake/mode = %d %q, want fail", code, body)
	}
	for _, bad := range []string{"?m=broken", "", "?m=slow&delay=forever", "?m=slow&delay=-1s"} {
		if code, _ := do(t, c, "POST", base+"/fake/mode"+bad); code != 400 {
			t.Errorf("POST /fake/mode%s = %d, want 400", bad, code)
		}
	}
	if s.Mode() != ModeFail {
		t.Errorf("rejected requests changed the mode to %q", s.Mode())
	}
	if code, _ := do(t, c, "GET", base+"/fake/mode?m=ok"); code != 200 || s.Mode() != ModeFail {
		t.Errorf("GET /fake/mode changed the mode")
	}
}

func TestSlowMode(t *testing.T) {
	s, base, c := start(t, "tcp", "127.0.0.1:0")
	if code, _ := do(t, c, "POST", base+"/fake/mode?m=slow&delay=1h"); code != 200 {
		t.Fatalf("switch to slow: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/readyz", nil)
	if resp, err := c.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			resp.Body.Close()
		}
		t.Fatalf("GET /readyz with an hour's delay: err %v, want the client's deadline", err)
	}
	// The control endpoints answer at once even in slow mode.
	if code, body := do(t, c, "GET", base+"/fake/whoami"); code != 200 || body != "node-a" {
		t.Errorf("GET /fake/whoami in slow mode = %d %q", code, body)
	}
	s.SetSlowDelay(time.Millisecond)
	if code, body := do(t, c, "GET", base+"/readyz"); code != 200 || body != "ok" {
		t.Errorf("GET /readyz slowed by 1ms = %d %q, want 200 ok", code, body)
	}
}

func TestWhoamiAndEcho(t *testing.T) {
	_, base, c := start(t, "tcp", "127.0.0.1:0")
	if code, body := do(t, c, "GET", base+"/fake/whoami"); code != 200 || body != "node-a" {
		t.Errorf("GET /fake/whoami = %d %q, want 200 node-a", code, body)
	}
	code, body := do(t, c, "GET", base+"/api/v1/namespaces/default/pods")
	var got apiInfo
	if err := json.Unmarshal([]byte(body), &got); err != nil || code != 200 {
		t.Fatalf("GET /api/... = %d %q (%v), want 200 JSON", code, body, err)
	}
	if got.Server != "node-a" || got.Path != "/api/v1/namespaces/default/pods" || got.Method != "GET" {
		t.Errorf("echo = %+v", got)
	}
}

func TestWatchStreamsUntilClientLeaves(t *testing.T) {
	s, base, c := start(t, "tcp", "127.0.0.1:0")
	s.SetWatchInterval(time.Millisecond)
	resp, err := c.Get(base + "/api/v1/pods?watch=1")
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("watch over HTTP/%d, want HTTP/2 like kubectl", resp.ProtoMajor)
	}
	sc := bufio.NewScanner(resp.Body)
	for want := 1; want <= 3; want++ {
		if !sc.Scan() {
			t.Fatalf("watch ended after %d lines: %v", want-1, sc.Err())
		}
		var ev struct {
			Type   string
			Object apiInfo
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("watch line %q: %v", sc.Text(), err)
		}
		if ev.Object.Server != "node-a" || ev.Object.Seq != want {
			t.Fatalf("watch line %d = %+v", want, ev)
		}
	}
	if n := s.ActiveWatches(); n != 1 {
		t.Errorf("ActiveWatches = %d during a watch, want 1", n)
	}
	resp.Body.Close()
	waitFor(t, "the watch to end after the client left", func() bool { return s.ActiveWatches() == 0 })
}

func TestCloseEndsWatches(t *testing.T) {
	s, base, c := start(t, "tcp", "127.0.0.1:0")
	s.SetWatchInterval(time.Hour)
	resp, err := c.Get(base + "/api/v1/pods?watch=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatalf("first watch line: %v", err)
	}
	s.Close()
	// This read returns only once the server has ended the stream (an
	// hour-long interval would block it otherwise); EOF or an error both
	// count.
	io.ReadAll(r)
	waitFor(t, "the watch handler to return", func() bool { return s.ActiveWatches() == 0 })
}

func TestCertificateNamesAndCA(t *testing.T) {
	s, base, _ := start(t, "tcp", "127.0.0.1:0")
	vip := netip.MustParseAddr("198.18.0.100")
	s.AddSAN(vip)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(base, "https://"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	var ips []netip.Addr
	for _, ip := range leaf.IPAddresses {
		a, _ := netip.AddrFromSlice(ip)
		ips = append(ips, a.Unmap())
	}
	for _, want := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), vip} {
		if !slices.Contains(ips, want) {
			t.Errorf("leaf IP SANs %v lack %v", ips, want)
		}
	}
	if !slices.Contains(leaf.DNSNames, "node-a") {
		t.Errorf("leaf DNS SANs %v lack the server name", leaf.DNSNames)
	}

	path := filepath.Join(t.TempDir(), "ca.crt")
	if err := s.WriteCA(path); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != string(s.CAPEM()) {
		t.Fatalf("WriteCA wrote %q (%v), want CAPEM", got, err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(got)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "198.18.0.100"}); err != nil {
		t.Errorf("leaf does not verify for the added SAN against the written CA: %v", err)
	}
	if err := s.WriteCA(filepath.Join(t.TempDir(), "missing", "ca.crt")); err == nil {
		t.Error("WriteCA into a missing directory succeeded")
	}
}

func TestIPv6Loopback(t *testing.T) {
	_, base, c := start(t, "tcp6", "[::1]:0")
	if code, body := do(t, c, "GET", base+"/readyz"); code != 200 || body != "ok" {
		t.Errorf("GET /readyz over ::1 with CA verification = %d %q", code, body)
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{ModeOK, ModeFail, ModeSlow} {
		if got, err := ParseMode(string(m)); err != nil || got != m {
			t.Errorf("ParseMode(%q) = %q, %v", m, got, err)
		}
	}
	if _, err := ParseMode("sleepy"); !errors.Is(err, ErrBadMode) {
		t.Errorf("ParseMode(sleepy) err = %v, want ErrBadMode", err)
	}
}

// waitFor polls cond; the deadline only guards against a hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	guard := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(guard) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
