// Package status serves hapod's local status endpoints: /healthz for
// kubelet's liveness probe, /readyz for "the VIP machinery is up", and,
// through a Monitor, /metrics (Prometheus), /status (JSON) and a page for
// people at /. Fetch and WriteTable are the client side (`hapod status`).
package status

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Check reports a problem, or nil when all is well.
type Check func() error

type namedCheck struct {
	name string
	fn   Check
}

// Server is the status HTTP server. Register checks and handlers before
// Serve.
type Server struct {
	addr     netip.AddrPort
	mux      *http.ServeMux
	mu       sync.Mutex
	live     []namedCheck
	ready    []namedCheck
	listener net.Listener
}

// New returns a server for addr.
func New(addr netip.AddrPort) *Server {
	s := &Server{addr: addr, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { s.report(w, r, s.checks(true)) })
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { s.report(w, r, s.checks(false)) })
	return s
}

// AddLiveness adds a check to /healthz: failing it means the process is
// stuck and kubelet should restart it.
func (s *Server) AddLiveness(name string, fn Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live = append(s.live, namedCheck{name, fn})
}

// AddReadiness adds a check to /readyz (liveness checks count too).
func (s *Server) AddReadiness(name string, fn Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready = append(s.ready, namedCheck{name, fn})
}

// Handle registers another handler, e.g. /metrics.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

func (s *Server) checks(liveOnly bool) []namedCheck {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.live)
	if !liveOnly {
		out = append(out, s.ready...)
	}
	return out
}

// report answers 200 "ok" when every check passes, 503 otherwise; with
// ?verbose it lists each check like kube-apiserver does.
func (s *Server) report(w http.ResponseWriter, r *http.Request, checks []namedCheck) {
	var b strings.Builder
	failed := false
	for _, c := range checks {
		if err := c.fn(); err != nil {
			failed = true
			fmt.Fprintf(&b, "[-]%s failed: %v\n", c.name, err)
		} else {
			fmt.Fprintf(&b, "[+]%s ok\n", c.name)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if failed {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, b.String())
		return
	}
	if _, verbose := r.URL.Query()["verbose"]; verbose {
		fmt.Fprint(w, b.String())
	}
	fmt.Fprintln(w, "ok")
}

// Listen binds the address now, so a bad or busy address fails at start.
func (s *Server) Listen() error {
	l, err := net.Listen("tcp", s.addr.String())
	if err != nil {
		return fmt.Errorf("status server: %w", err)
	}
	s.listener = l
	return nil
}

// Addr returns the bound address (useful with port 0 in tests).
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// Serve serves until ctx ends. Listen must have succeeded. Connections
// are bounded in number, idle time and request time (see maxConns and
// evictFirst): no client can run hapod out of fds or keep kubelet's
// probe out.
func (s *Server) Serve(ctx context.Context) error {
	lim := newConnLimiter(s.listener, maxConns)
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnState:         lim.track,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
	}()
	err := srv.Serve(lim)
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
