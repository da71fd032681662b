// Package proxy is hapod's L4 TCP proxy: it accepts clients on VIP:port,
// one or more of them (every VIP, IPv4 and IPv6), and relays each
// connection, bytes only, to one healthy kube-apiserver. It replaces
// haproxy's `mode tcp` of the usual HA guides.
//
// A Pool holds the backends, their health (driven by the health checker
// through SetHealthy) and the selection Policy. A Proxy owns the
// listeners and the connections: every listener feeds the same loops,
// pool and limits. Per connection the proxy dials a backend (retrying
// others within ConnectTimeout when a dial fails), then relays both ways,
// passing half-closes through. The data path is one epoll event loop per
// core (loop_linux.go says which file holds which part): no goroutine,
// timer or buffer per connection; bytes go through each loop's buffer (a
// pipe with Config.Splice).
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"
)

// Defaults of Config's fields, applied by New to zero values.
const (
	DefaultConnectTimeout = 3 * time.Second
	// DefaultIdleTimeout is long because watches can be silent for many
	// minutes (the apiserver sends bookmarks only when the watcher asked
	// and timeouts are minutes long); TCP keep-alive, not this timeout,
	// detects dead peers.
	DefaultIdleTimeout   = time.Hour
	DefaultMaxConns      = 20000
	DefaultDrainTimeout  = 5 * time.Second
	DefaultRebalanceRate = 5
	// DefaultRecvBuffer is what DefaultConfig asks for each socket's
	// receive buffer (see Config.RecvBuffer).
	DefaultRecvBuffer = 1 << 20
	// DefaultCloseOnDown is DefaultConfig's CloseOnDown.
	DefaultCloseOnDown = true
	// KeepAliveIdle is the TCP keep-alive idle time on both sides; probes
	// then go every KeepAliveInterval, KeepAliveCount times, so a dead
	// peer is noticed within about a minute and a half.
	KeepAliveIdle     = 30 * time.Second
	KeepAliveInterval = 15 * time.Second
	KeepAliveCount    = 4
)

// Config configures a Proxy. Zero durations and counts take the defaults
// listed on each field; booleans are taken as given, so start from
// DefaultConfig to get CloseOnDown.
type Config struct {
	// Listen holds the addresses clients connect to, VIP:port each: at
	// least one, no two alike (IPv4-mapped IPv6 addresses count as their
	// IPv4 address). Every socket is bound with IP_FREEBIND (or
	// IPV6_FREEBIND), so every node listens before it holds a VIP and the
	// proxy is ready the moment VRRP moves the address here; an IPv6
	// socket is IPV6_V6ONLY, so an IPv4 and an IPv6 address share a port.
	// A wildcard address (0.0.0.0, ::) cannot share its port with another
	// address of its family: Linux refuses to bind both.
	Listen []netip.AddrPort
	// ConnectTimeout is the total budget for dialing a backend, retries
	// on other backends included (default 3s). While another backend is
	// left to try, one attempt waits at most 250 ms for an answer (see
	// raceDelay) before the next backend is tried.
	ConnectTimeout time.Duration
	// IdleTimeout closes a connection with no data either way for this
	// long (default 1h, see DefaultIdleTimeout). It is checked coarsely by
	// a sweeper, not with per-read deadlines that cost a timer update per
	// read; the effective timeout is up to a tenth longer.
	IdleTimeout time.Duration
	// MaxConns caps concurrent client connections (default 20000).
	// Excess clients are accepted and closed at once, and counted. Each
	// connection costs two file descriptors.
	MaxConns int
	// RecvBuffer is the receive buffer asked for every client and backend
	// socket, in bytes (DefaultConfig: DefaultRecvBuffer, 1 MiB); 0
	// leaves it to the kernel's autotuning. It is set with SO_RCVBUFFORCE
	// where the process may (CAP_NET_ADMIN, which hapod's pod has), else
	// with SO_RCVBUF, which net.core.rmem_max caps. Linux doubles the
	// value for its bookkeeping.
	//
	// Autotuning grew the buffers of sockets the proxy drained fast up to
	// net.ipv4.tcp_rmem's maximum: senders ran far ahead and their data
	// went cold in the cache (docs/proxy-tuning.md#receive-buffers). A
	// fixed buffer also bounds the kernel memory a busy connection holds.
	// The cost is the window of a distant client: about 100 Mbit/s per
	// connection at 100 ms round trip. Set 0 where that matters.
	RecvBuffer int
	// Splice moves a direction's data with splice(2) through a pipe once
	// it has read 16 MiB in large reads, instead of copying it through
	// the loop's 1 MiB buffer (default false). The proxy then copies
	// nothing, which made one fast stream faster with less proxy CPU; but
	// a spliced page stays the sender's until the receiver has read it,
	// and several streams, or a Go server's large responses, ran slower
	// spliced (docs/proxy-tuning.md#read-buffer).
	// Each spliced direction holds a pipe: two more file descriptors.
	Splice bool
	// CloseOnDown closes a backend's connections when the health checker
	// reports it down (DefaultConfig: true), so clients reconnect at once
	// instead of hanging on a dead peer for minutes.
	CloseOnDown bool
	// Rebalance, when a backend comes back up, closes the oldest
	// connections on the most loaded backends, at most RebalanceRate per
	// second, until the spread is even (default false). Clients reconnect
	// and least-conn places them on the emptier backends.
	Rebalance bool
	// RebalanceRate bounds rebalancing closes per second (default 5):
	// gentle enough that clients' reconnects and re-lists do not surge.
	RebalanceRate int
	// DrainTimeout is how long Shutdown lets in-flight connections finish
	// before closing them (default 5s).
	DrainTimeout time.Duration
	// Clock drives every timer of the proxy (default the real clock):
	// the connect budget, its share per attempt and the pause between
	// rounds, the accept back-off, suspect hold-downs, idle sweeping,
	// rebalancing and the drain.
	Clock clock.Clock
	// Logger receives transitions and errors, never a line per
	// connection at Info (default: discard).
	Logger *slog.Logger
	// OnHealthy is called with the number of healthy backends whenever it
	// changes (VRRP coupling: 0 lowers this node's priority). It must not
	// call Pool.SetHealthy.
	OnHealthy func(n int)
}

// DefaultConfig returns a Config with every default set, listening on
// listen.
func DefaultConfig(listen ...netip.AddrPort) Config {
	c := Config{Listen: listen, CloseOnDown: DefaultCloseOnDown, RecvBuffer: DefaultRecvBuffer}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.RebalanceRate == 0 {
		c.RebalanceRate = DefaultRebalanceRate
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// ErrInvalidConfig wraps every configuration error from New.
var ErrInvalidConfig = errors.New("invalid proxy config")

func (c *Config) validate() error {
	if err := validateListen(c.Listen); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	switch {
	case c.ConnectTimeout < 0:
		return fmt.Errorf("%w: negative connect timeout %v", ErrInvalidConfig, c.ConnectTimeout)
	case c.IdleTimeout < 0:
		return fmt.Errorf("%w: negative idle timeout %v", ErrInvalidConfig, c.IdleTimeout)
	case c.DrainTimeout < 0:
		return fmt.Errorf("%w: negative drain timeout %v", ErrInvalidConfig, c.DrainTimeout)
	case c.RecvBuffer < 0:
		return fmt.Errorf("%w: negative receive buffer %d", ErrInvalidConfig, c.RecvBuffer)
	case c.MaxConns < 0:
		return fmt.Errorf("%w: negative max conns %d", ErrInvalidConfig, c.MaxConns)
	case c.RebalanceRate < 0:
		return fmt.Errorf("%w: negative rebalance rate %d", ErrInvalidConfig, c.RebalanceRate)
	}
	return nil
}

// validateListen checks Config.Listen: addresses to bind, none twice,
// and no wildcard sharing a port with another address of its family
// (the second bind would fail with EADDRINUSE).
func validateListen(addrs []netip.AddrPort) error {
	if len(addrs) == 0 {
		return errors.New("no listen address")
	}
	for i, a := range addrs {
		if !a.IsValid() {
			return fmt.Errorf("listen address %v", a)
		}
		a = unmapped(a)
		for _, b := range addrs[:i] {
			b = unmapped(b)
			switch {
			case a == b:
				return fmt.Errorf("listen address %v given twice", a)
			case a.Port() != 0 && a.Port() == b.Port() && a.Addr().Is4() == b.Addr().Is4() &&
				(a.Addr().IsUnspecified() || b.Addr().IsUnspecified()):
				return fmt.Errorf("listen addresses %v and %v: a wildcard cannot share its port with another address of its family", b, a)
			}
		}
	}
	return nil
}

// unmapped returns a with an IPv4-mapped IPv6 address as IPv4: what the
// listener binds.
func unmapped(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// listener is one listening socket.
type listener struct {
	fd   int
	addr netip.AddrPort // as bound: the port the kernel chose where 0 was asked
	// accepted counts the connections taken from it (not those refused
	// at MaxConns), and Stats sums them: one atomic add per connection,
	// as a proxy-wide counter would take.
	accepted atomic.Uint64
}

// Proxy accepts clients on Config.Listen and relays them to the pool.
type Proxy struct {
	cfg  Config
	pool *Pool
	log  *slog.Logger

	mu        sync.Mutex
	lns       []*listener // in Config.Listen's order; nil before Listen, closed by beginStop
	recvOpt   int         // SO_RCVBUFFORCE or SO_RCVBUF for backend sockets; 0: none
	loops     []*loop
	serving   bool
	stopping  chan struct{} // closed when Shutdown starts
	stopOnce  sync.Once
	loopsDone chan struct{} // closed when the event loops have exited
	maintDone chan struct{} // closed when the maintenance goroutine returned

	drained   chan struct{} // closed when stopping and no connection is left
	drainOnce sync.Once

	// hard is set when connections are closed forcibly: at the end of
	// the drain. Checked under Backend.mu when a connection is added.
	hard atomic.Bool

	kick chan struct{} // wakes the maintenance loop (rebalance start)

	active       atomic.Int64 // client connections now
	refused      atomic.Uint64
	noBackend    atomic.Uint64
	acceptErrors atomic.Uint64
	retries      atomic.Uint64
	idleClosed   atomic.Uint64
	rebalanced   atomic.Uint64
	downClosed   atomic.Uint64 // CloseOnDown, counted by the pool
	drainClosed  atomic.Uint64
	vipClosed    atomic.Uint64 // CloseAll, CloseLocal

	rebalancing atomic.Bool

	// Rates that move a loop's wait into epoll_wait and back to the
	// netpoller (see pickWait); zero: the defaults. Tests set -1 to keep
	// every loop in epoll_wait.
	rawAbove, rawBelow waitRates
}

// waitRates are an event loop's rates of work, per second (see
// Proxy.rawAbove).
type waitRates struct {
	accepts float64 // connections accepted
	bulk    float64 // bytes read in large reads (see bulkRead)
}

// New returns a proxy for pool. It does not bind yet; see Listen. A pool
// serves one proxy.
func New(cfg Config, pool *Pool) (*Proxy, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: nil pool", ErrInvalidConfig)
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Listen = slices.Clone(cfg.Listen) // the caller's slice stays theirs
	p := &Proxy{
		cfg:       cfg,
		pool:      pool,
		log:       cfg.Logger,
		stopping:  make(chan struct{}),
		loopsDone: make(chan struct{}),
		maintDone: make(chan struct{}),
		drained:   make(chan struct{}),
		kick:      make(chan struct{}, 1),
	}
	if err := pool.attach(&p.cfg, p.startRebalance, &p.downClosed); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return p, nil
}

// Listen binds every address of Config.Listen now, so a bad address
// fails at start-up; when one fails none stays bound, and the error names
// it. Serve calls it when it has not been called.
func (p *Proxy) Listen() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.stopping:
		return ErrClosed
	default:
	}
	if p.lns != nil {
		return nil
	}
	lns := make([]*listener, 0, len(p.cfg.Listen))
	for _, a := range p.cfg.Listen {
		fd, bound, recvOpt, err := listenFD(a, p.cfg.RecvBuffer)
		if err != nil {
			for _, ln := range lns {
				closeFD(ln.fd)
			}
			return fmt.Errorf("listen on %v: %w", a, err)
		}
		lns = append(lns, &listener{fd: fd, addr: bound})
		p.recvOpt = recvOpt // the same for every socket: it depends on privileges
	}
	p.lns = lns
	if lim, err := noFileLimit(); err == nil && lim < uint64(2*p.cfg.MaxConns+64) {
		p.log.Warn("open-file limit below what max-conns needs (two descriptors per connection)",
			"nofile", lim, "max_conns", p.cfg.MaxConns)
	}
	return nil
}

// ErrClosed is returned by Listen and Serve after Shutdown.
var ErrClosed = errors.New("proxy closed")

// Addrs returns the bound addresses in Config.Listen's order (useful
// with port 0), or nil before Listen.
func (p *Proxy) Addrs() []netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	var addrs []netip.AddrPort
	for _, ln := range p.lns {
		addrs = append(addrs, ln.addr)
	}
	return addrs
}

// Serve relays connections until ctx is cancelled or Shutdown is called.
// On cancellation it drains like Shutdown (DrainTimeout) before
// returning. It returns nil after a shutdown.
func (p *Proxy) Serve(ctx context.Context) error {
	if err := p.Listen(); err != nil {
		return err
	}
	p.mu.Lock()
	select {
	case <-p.stopping:
		p.mu.Unlock()
		return ErrClosed
	default:
	}
	if p.serving {
		p.mu.Unlock()
		return errServing
	}
	p.serving = true
	err := p.startLoops()
	p.mu.Unlock()
	if err != nil {
		close(p.loopsDone)
		return err
	}
	go func() {
		for _, l := range p.loops {
			<-l.done
		}
		close(p.loopsDone)
	}()

	go func() {
		defer close(p.maintDone)
		p.maintain()
	}()
	select {
	case <-ctx.Done():
		err = p.Shutdown(context.Background())
	case <-p.stopping:
	case <-p.loopsDone: // an event loop failed
		err = p.loopErr()
		p.Shutdown(context.Background())
	}
	<-p.loopsDone
	<-p.maintDone
	if err == nil {
		err = p.loopErr()
	}
	return err
}

func (p *Proxy) loopErr() error {
	for _, l := range p.loops {
		select {
		case <-l.done:
			if l.err != nil {
				return l.err
			}
		default:
		}
	}
	return nil
}

var errServing = errors.New("proxy already serving")

// acceptBackoff returns the pause after an accept error, given the last
// one: 5ms, doubling to 1s. Running out of file descriptors must not turn
// into a hot loop.
func acceptBackoff(last time.Duration) time.Duration {
	const lo, hi = 5 * time.Millisecond, time.Second
	switch {
	case last < lo:
		return lo
	case last*2 > hi:
		return hi
	}
	return last * 2
}

// connDone is called by the loops when a client connection is gone.
func (p *Proxy) connDone() {
	if p.active.Add(-1) == 0 {
		select {
		case <-p.stopping:
			p.drainOnce.Do(func() { close(p.drained) })
		default:
		}
	}
}

// beginStop stops accepting, once: every loop drops the listeners, then
// they are closed.
func (p *Proxy) beginStop() {
	p.stopOnce.Do(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		close(p.stopping)
		if p.serving {
			p.postWait(func(l *loop) { l.unlisten() })
		}
		for _, ln := range p.lns {
			closeFD(ln.fd)
		}
		if p.active.Load() == 0 {
			p.drainOnce.Do(func() { close(p.drained) })
		}
	})
}

// ErrDrainTimeout is returned by Shutdown when connections were still
// open at the end of the drain and had to be closed.
var ErrDrainTimeout = errors.New("drain timed out, connections closed")

// Shutdown stops accepting and lets in-flight connections finish until
// ctx is done or DrainTimeout passes, then closes the rest and stops the
// event loops. It returns nil when everything drained in time, else
// ErrDrainTimeout (or ctx's error).
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.beginStop()
	p.mu.Lock()
	serving := p.serving
	p.mu.Unlock()
	if !serving {
		return nil
	}
	t := p.cfg.Clock.NewTimer(p.cfg.DrainTimeout)
	var err error
	select {
	case <-p.drained:
	case <-p.loopsDone:
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C():
		err = ErrDrainTimeout
	}
	t.Stop()
	if err != nil {
		n := p.closeAll()
		p.drainClosed.Add(uint64(n))
		p.log.Info("drain ended, closed remaining connections", "closed", n)
	}
	for _, l := range p.loops {
		l.post(func(*loop) bool { return true })
	}
	<-p.loopsDone
	return err
}

// closeAll closes every connection, dials in progress included, and
// returns how many were open.
func (p *Proxy) closeAll() int {
	p.hard.Store(true)
	n := int(p.active.Load())
	p.postWait(func(l *loop) { l.closeAll() })
	return n
}

// Stats is a snapshot of the proxy's counters.
type Stats struct {
	// Listeners in Config.Listen's order; none before Listen.
	Listeners []ListenerStats
	Backends  []BackendStats
	// Active client connections now; Accepted ever (the sum over
	// Listeners).
	Active   int64
	Accepted uint64
	// Refused: closed at once because MaxConns were open.
	Refused uint64
	// NoBackend: closed because no backend could be dialled.
	NoBackend uint64
	// AcceptErrors: failed accepts (out of file descriptors, mostly).
	AcceptErrors uint64
	// Retries: dials repeated on another backend after a failure.
	Retries uint64
	// IdleClosed: closed by IdleTimeout; Rebalanced: closed to even out
	// the spread.
	IdleClosed, Rebalanced uint64
	// DownClosed: closed because the health checker reported their
	// backend down (CloseOnDown). DrainClosed: still open when the drain
	// of Shutdown ended, and closed then (dials in progress included).
	DownClosed, DrainClosed uint64
	// VIPReleased: closed by CloseAll or CloseLocal, when this node gave
	// VIPs up.
	VIPReleased uint64
	// Healthy backends.
	Healthy int
}

// ListenerStats is one listening socket in Stats.
type ListenerStats struct {
	// Addr is the address bound (with the port the kernel chose where
	// Config.Listen asked for 0).
	Addr netip.AddrPort
	// Accepted: connections taken from this listener since Listen,
	// those refused at MaxConns excluded.
	Accepted uint64
}

// Stats returns a snapshot for the status page and metrics.
func (p *Proxy) Stats() Stats {
	now := p.cfg.Clock.Now().UnixNano()
	p.mu.Lock()
	lns := p.lns
	p.mu.Unlock()
	s := Stats{
		Active:       p.active.Load(),
		Refused:      p.refused.Load(),
		NoBackend:    p.noBackend.Load(),
		AcceptErrors: p.acceptErrors.Load(),
		Retries:      p.retries.Load(),
		IdleClosed:   p.idleClosed.Load(),
		Rebalanced:   p.rebalanced.Load(),
		DownClosed:   p.downClosed.Load(),
		DrainClosed:  p.drainClosed.Load(),
		VIPReleased:  p.vipClosed.Load(),
		Healthy:      p.pool.Healthy(),
	}
	for _, ln := range lns {
		n := ln.accepted.Load()
		s.Listeners = append(s.Listeners, ListenerStats{Addr: ln.addr, Accepted: n})
		s.Accepted += n
	}
	for _, b := range p.pool.list() {
		s.Backends = append(s.Backends, b.stats(now))
	}
	return s
}
