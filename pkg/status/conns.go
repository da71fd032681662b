package status

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Bounds of the status server's connections. Its clients are kubelet's
// liveness probe (a fresh connection every 10 s), `hapod status`, a
// Prometheus scrape and the odd browser: a handful at a time. Without
// bounds a client that keeps connections open (5,000 idle keep-alive
// connections cost 5,000 fds and goroutines in hapod) or sends headers a
// byte at a time could hold the proxy's own process hostage.
const (
	// maxConns caps the open connections. At the cap, a new connection
	// evicts an old one (see evictFirst) instead of waiting or being
	// refused, so the liveness probe always gets in.
	maxConns = 64
	// readHeaderTimeout bounds a request's headers (slowloris); local
	// clients send them in one write.
	readHeaderTimeout = 5 * time.Second
	// readTimeout bounds a whole request; these are GETs without a body.
	readTimeout = 10 * time.Second
	// writeTimeout bounds an answer to a client that stops reading.
	writeTimeout = 10 * time.Second
	// idleTimeout closes a keep-alive connection this long unused: a
	// Prometheus scrape every 15 s still reuses its connection, one
	// every minute reconnects, which costs nothing on loopback.
	idleTimeout = 30 * time.Second
	// maxHeaderBytes bounds a request's headers (Go's default is 1 MiB).
	maxHeaderBytes = 64 << 10
)

// connInfo is what the limiter knows of one connection: its HTTP state and
// when it entered it, as a sequence number (only the order matters).
type connInfo struct {
	state http.ConnState
	since uint64
}

// evictFirst reports whether a is to be closed before b to admit a new
// connection. Connections with no request in progress go first (new ones
// that have not sent a whole request yet, which includes slowloris
// clients, and idle keep-alive ones), the longest waiting first; a
// connection serving a request goes only when every one is, the longest
// running first. The newest connection, such as kubelet's probe, is
// therefore the last to go: it loses its place only if maxConns newer
// connections arrive while it is served, which takes a flood, not idle or
// slow clients.
//
// The alternatives are worse for a liveness endpoint: waiting for a free
// slot (golang.org/x/net/netutil.LimitListener) lets idle clients hold
// the probe out until they time out, refusing the new connection fails
// the probe, and a reserved slot can be taken by any local client, since
// kubelet cannot be told apart from them.
func evictFirst(a, b connInfo) bool {
	aBusy, bBusy := a.state == http.StateActive, b.state == http.StateActive
	if aBusy != bBusy {
		return !aBusy
	}
	return a.since < b.since
}

// connLimiter is a listener that keeps at most max connections open,
// evicting old ones (evictFirst) to admit new ones. Its track method is
// the http.Server's ConnState hook.
type connLimiter struct {
	net.Listener
	max int

	mu    sync.Mutex
	seq   uint64
	conns map[net.Conn]*connInfo
}

func newConnLimiter(l net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: l, max: max, conns: make(map[net.Conn]*connInfo)}
}

// Accept accepts a connection and, at the cap, closes the one evictFirst
// picks.
func (l *connLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	var victim net.Conn
	if len(l.conns) >= l.max {
		var vi *connInfo
		for vc, ci := range l.conns {
			if vi == nil || evictFirst(*ci, *vi) {
				victim, vi = vc, ci
			}
		}
		delete(l.conns, victim)
	}
	l.seq++
	l.conns[c] = &connInfo{state: http.StateNew, since: l.seq}
	l.mu.Unlock()
	if victim != nil {
		// Its server goroutine sees the error and ends.
		_ = victim.Close()
	}
	return c, nil
}

// track follows the connections' states; a connection already evicted
// stays forgotten.
func (l *connLimiter) track(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ci, ok := l.conns[c]
	if !ok {
		return
	}
	switch s {
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
	default:
		if s != ci.state {
			l.seq++
			ci.state, ci.since = s, l.seq
		}
	}
}
