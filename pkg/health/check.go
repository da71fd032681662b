package health

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// DefaultPath is the HTTPS check's default path.
const DefaultPath = "/readyz"

// maxBody bounds how much of an answer a check reads: /readyz answers
// "ok", or a list of named checks when failing; anything longer is not a
// health endpoint and must not make the check buffer without limit.
const maxBody = 8 << 10

var (
	_ Checker = (*TCPChecker)(nil)
	_ Checker = (*TLSChecker)(nil)
	_ Checker = (*HTTPSChecker)(nil)
)

// TCPChecker passes when a TCP connection to the backend is established.
type TCPChecker struct {
	// Dialer opens the connection; nil means a zero net.Dialer.
	Dialer *net.Dialer
}

// Check connects to backend and closes the connection at once.
func (c *TCPChecker) Check(ctx context.Context, backend netip.AddrPort) error {
	d := c.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	conn, err := d.DialContext(ctx, "tcp", backend.String())
	if err != nil {
		return err
	}
	return conn.Close()
}

// TLSChecker passes when a TLS handshake with the backend completes. It
// suits apiservers with anonymous auth off: no request is sent.
type TLSChecker struct {
	// Config is the client configuration; nil means no certificate
	// verification (see TLSConfig).
	Config *tls.Config
}

// Check connects to backend, completes a handshake and closes.
func (c *TLSChecker) Check(ctx context.Context, backend netip.AddrPort) error {
	conf := c.Config
	if conf == nil {
		conf = insecureTLS()
	}
	d := &tls.Dialer{Config: conf}
	conn, err := d.DialContext(ctx, "tcp", backend.String())
	if err != nil {
		return err
	}
	return conn.Close()
}

// HTTPSChecker passes when an HTTPS GET of Path answers 200, like
// haproxy's `option httpchk` with `check ssl`. It speaks HTTP/1.1, which
// every apiserver accepts.
//
// Every check uses a fresh connection and closes it (Connection: close,
// no keep-alive pool), as haproxy's checks do: a check then also proves
// that the backend still accepts connections and completes handshakes (a
// dead listener behind a live kept-alive connection would otherwise pass),
// and nothing of a check outlives it. The connection is the check's own,
// not an http.Transport's: a Transport finishes an abandoned dial in the
// background for its pool, so against a backend that accepts TCP but
// never completes the handshake every check left a socket and goroutines
// behind, waiting forever.
type HTTPSChecker struct {
	// Path is requested on the backend (default DefaultPath, "/readyz").
	Path string
	// Config is the client configuration; nil means no certificate
	// verification (see TLSConfig).
	Config *tls.Config

	once sync.Once
	conf *tls.Config
}

func (c *HTTPSChecker) init() {
	conf := c.Config
	if conf == nil {
		conf = insecureTLS()
	}
	c.conf = conf.Clone()
	if len(c.conf.NextProtos) == 0 {
		c.conf.NextProtos = []string{"http/1.1"}
	}
}

// Check sends GET Path to backend and expects status 200. A failing
// answer's error carries kube-apiserver's failed check lines ("[-]...")
// so a log says why the backend is not ready. Dial, handshake, request
// and reading the answer all end with ctx, and the connection is closed
// before Check returns.
func (c *HTTPSChecker) Check(ctx context.Context, backend netip.AddrPort) error {
	c.once.Do(c.init)
	path := c.Path
	if path == "" {
		path = DefaultPath
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+backend.String()+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "hapod-health-check")
	req.Close = true

	d := &tls.Dialer{Config: c.conf}
	conn, err := d.DialContext(ctx, "tcp", backend.String())
	if err != nil {
		return err
	}
	defer conn.Close()
	// Past the handshake the connection's reads and writes know nothing
	// of ctx: expire them when it ends (deadline or cancellation).
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if err := req.Write(conn); err != nil {
		return ctxErr(ctx, "sending request", err)
	}
	// The limit bounds header and body together: an endless header must
	// not make the check buffer without limit either.
	resp, err := http.ReadResponse(bufio.NewReader(io.LimitReader(conn, 2*maxBody)), req)
	if err != nil {
		return ctxErr(ctx, "reading answer", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w %s%s", ErrStatus, resp.Status, failureDetail(body))
	}
	if err != nil {
		return ctxErr(ctx, "reading answer", err)
	}
	return nil
}

// ctxErr names what a check was doing when err stopped it, and says it
// was the check's timeout (or shutdown) when ctx has ended: the expired
// connection deadline's "i/o timeout" would hide that.
func ctxErr(ctx context.Context, doing string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s: %w", doing, cerr)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// failureDetail summarises a failing /readyz body: its "[-]" lines when
// there are any, else its first line, shortened.
func failureDetail(body []byte) string {
	var failed []string
	first := ""
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if first == "" {
			first = line
		}
		if strings.HasPrefix(line, "[-]") {
			failed = append(failed, line)
		}
	}
	detail := first
	if len(failed) > 0 {
		detail = strings.Join(failed, "; ")
	}
	const max = 200
	if len(detail) > max {
		detail = detail[:max] + "..."
	}
	if detail == "" {
		return ""
	}
	return ": " + detail
}
