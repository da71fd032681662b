package proxy

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// connState is where a connection is in its life.
type connState uint8

const (
	stateDialing     connState = iota // a connect to a backend is in flight
	statePaused                       // every candidate failed; retrying soon
	stateEstablished                  // relaying
	stateDone                         // sockets closed
)

// side is one socket of a relayed connection as its event loop sees it.
// Only the owning loop touches it.
type side struct {
	c    *conn
	peer *side
	fd   int
	gen  int32 // tags epoll events, so a stale event never hits a reused fd

	readable bool // edge-triggered readiness as last reported
	writable bool
	hup      bool // peer closed or reset: read on to EOF or an error
	fin      bool // the peer's FIN arrived (EPOLLRDHUP, no error): a short read took the last data
	eof      bool // everything up to the peer's FIN has been read
	shut     bool // FIN sent (shutdown SHUT_WR) on this socket

	pending []byte // read from the peer, not yet written to this socket
	pbuf    []byte // the buffer pending slices, back to the loop when drained
	// Spliced data from the peer waits in a pipe; pipeN bytes are in it.
	pipeR, pipeW, pipeN int
	bulk                int // bytes read in bulk reads; spliced from spliceAfter (Config.Splice)

	count *atomic.Int64 // bytes written to this socket
}

// conn is one client connection and its backend connection.
type conn struct {
	p      *Proxy
	l      *loop
	b      *Backend  // reserved or connected backend; nil between attempts
	ln     *listener // accepted from
	cl, be side
	state  connState

	client       netip.AddrPort
	tried        []*Backend
	dialDeadline int64 // Clock instant (unix ns): end of the whole connect budget
	pause        time.Duration
	when         int64 // Clock instant (unix ns) of the pending deadline, while in the loop's timer heap
	tidx         int   // index in the loop's timer heap; -1: none

	prev, next *conn // in b's list once established, guarded by b.mu

	in, out atomic.Int64 // bytes client->backend, backend->client
	aborted atomic.Bool

	// mu guards the file descriptors against abort from other goroutines
	// racing their close by the loop (a closed fd number is reused).
	mu     sync.Mutex
	closed bool

	// Idle sweeping state, touched only by the sweeper under b.mu.
	seen      int64
	idleSince time.Time
}
