package dhcpvip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"k8s.io/utils/clock"
)

// Defaults for the zero values of Config.
const (
	// DefaultLinkName is the macvlan's name: short enough for IFNAMSIZ,
	// and saying whose it is in `ip link`.
	DefaultLinkName = "hapod-dhcp"
	// DefaultAcquireLinkName is Acquire's macvlan. A different name than
	// a Keeper's: `hapod init` re-run on a node where hapod runs must not
	// replace the running Keeper's link as a stale one. (Linux refuses to
	// bring it up with the same MAC, and Acquire says so.)
	DefaultAcquireLinkName = "hapod-dhcp-init"
	// DefaultTimeout bounds Acquire: long enough for the 4 s and 8 s
	// retransmissions of a lost Discover.
	DefaultTimeout = 10 * time.Second
)

// DefaultServer is where messages go: the limited broadcast address, as a
// client without an address must send (RFC 2131 section 4.1).
var DefaultServer = netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), dhcpv4.ServerPort)

// maxIfNameLen is IFNAMSIZ - 1.
const maxIfNameLen = 15

// Config configures a Keeper and Acquire.
type Config struct {
	// Interface is the VIP's interface, the parent of the macvlan.
	// Required by DialKeeper and Acquire; used in messages otherwise.
	Interface string
	// LinkName is the macvlan's name (default DefaultLinkName for a
	// Keeper, DefaultAcquireLinkName for Acquire).
	LinkName string
	// Identity is the cluster's client identity, NewIdentity(vrid,
	// cluster). Required.
	Identity Identity
	// Want is the address the lease must be for: the VIP from the manifest
	// (required by a Keeper in `hapod run`). Zero lets Acquire take the
	// first address offered.
	Want netip.Addr
	// Hostname is sent as option 12 when set, so the server's lease list
	// says what the address is for (e.g. "hapod-<cluster>").
	Hostname string
	// MinLease, RetryMin, RetryMax: see MachineConfig.
	MinLease, RetryMin, RetryMax time.Duration
	// Timeout bounds Acquire (default DefaultTimeout).
	Timeout time.Duration
	// Server is where messages are sent (default DefaultServer). Tests
	// point it at a loopback server.
	Server netip.AddrPort
	// Clock drives every timer (default the real clock).
	Clock clock.Clock
	// Logger receives state changes, leases and alerts (default: discard).
	Logger *slog.Logger
	// Notify, when set, receives every Transition, Leased and Alert action,
	// on the Keeper's goroutine, after it is logged: the hook for metrics
	// and status. It must not block.
	Notify func(Action)
}

func (c Config) withDefaults() (Config, error) {
	if err := c.Identity.validate(); err != nil {
		return c, err
	}
	if len(c.LinkName) > maxIfNameLen {
		return c, fmt.Errorf("%w: link name %q longer than %d bytes", ErrInvalidConfig, c.LinkName, maxIfNameLen)
	}
	if c.Want.IsValid() && !c.Want.Is4() {
		return c, fmt.Errorf("%w: DHCP leases IPv4 addresses, not %s", ErrInvalidConfig, c.Want)
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if !c.Server.IsValid() {
		c.Server = DefaultServer
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c, nil
}

func (c Config) linkName(def string) string {
	if c.LinkName == "" {
		return def
	}
	return c.LinkName
}

func (c Config) machine() MachineConfig {
	return MachineConfig{Want: c.Want, MinLease: c.MinLease, RetryMin: c.RetryMin, RetryMax: c.RetryMax}
}

// Status is a snapshot of a Keeper.
type Status struct {
	// State is the lease state; Active whether this node talks for the lease.
	State  State
	Active bool
	// Want is the address insisted on; Lease the last one granted.
	Want  netip.Addr
	Lease Lease
	// Problem is the last error (NAK, different address, expiry) until a
	// good ACK; nil when all is well.
	Problem error
	// Sent and Received count messages sent and replies to this client
	// received; SendErrors counts failed sends.
	Sent, Received, SendErrors uint64
	// LastReply is when the last reply to this client arrived.
	LastReply time.Time
}

// Healthy is nil unless this node talks for the lease and has a problem:
// a backup's stale record says nothing about the VIP.
func (s Status) Healthy() error {
	if !s.Active {
		return nil
	}
	return s.Problem
}

// Keeper keeps the VIP's lease: while active it renews at T1, rebinds at
// T2 and reports problems; while inactive it is silent. Run drives it;
// SetActive switches it from any goroutine.
type Keeper struct {
	cfg    Config
	conn   net.PacketConn
	closer func() error
	dest   *net.UDPAddr

	m       *Machine // owned by Run's goroutine
	xids    [2]dhcpv4.TransactionID
	running atomic.Bool

	wantActive atomic.Bool
	kick       chan struct{}

	mu     sync.Mutex
	status Status

	closeOnce sync.Once
	closeErr  error
}

// NewKeeper returns a Keeper that sends and receives DHCP messages on conn
// (a Link's conn, or a UDP socket in tests) and closes it on Close. It
// starts inactive.
func NewKeeper(conn net.PacketConn, cfg Config) (*Keeper, error) {
	return newKeeper(conn, conn.Close, cfg)
}

func newKeeper(conn net.PacketConn, closer func() error, cfg Config) (*Keeper, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	k := &Keeper{
		cfg:    cfg,
		conn:   conn,
		closer: closer,
		dest:   net.UDPAddrFromAddrPort(cfg.Server),
		m:      NewMachine(cfg.machine()),
		kick:   make(chan struct{}, 1),
	}
	k.publish()
	return k, nil
}

// SetActive tells the Keeper whether this node holds the VIP. Becoming
// active renews at once; becoming inactive silences it at once. Only the
// latest call counts if several come before Run sees them.
func (k *Keeper) SetActive(active bool) {
	k.wantActive.Store(active)
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// Status returns a snapshot.
func (k *Keeper) Status() Status {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.status
}

// Lease returns the last lease granted and whether there is one.
func (k *Keeper) Lease() (Lease, bool) {
	s := k.Status()
	return s.Lease, s.Lease.Valid()
}

// Close closes the connection (and removes the macvlan of DialKeeper).
// Call it after Run has returned. It never releases the lease.
func (k *Keeper) Close() error {
	k.closeOnce.Do(func() { k.closeErr = k.closer() })
	return k.closeErr
}

// received is one packet from the reader goroutine.
type received struct {
	b   []byte
	err error
}

// Run drives the Keeper until ctx ends, then returns nil without releasing
// the lease. It returns an error only when the connection fails. Run may be
// called again after it returned, not twice at once.
func (k *Keeper) Run(ctx context.Context) error {
	if !k.running.CompareAndSwap(false, true) {
		return errors.New("dhcpvip: Keeper.Run called twice")
	}
	defer k.running.Store(false)
	if err := k.conn.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("dhcpvip: %w", err)
	}
	packets := make(chan received, 16)
	stopRead := make(chan struct{})
	readDone := make(chan struct{})
	go k.read(packets, stopRead, readDone)
	defer func() {
		// Unblock the reader through the deadline, not by closing: the
		// connection outlives Run.
		close(stopRead)
		_ = k.conn.SetReadDeadline(time.Unix(1, 0))
		<-readDone
	}()

	clk := k.cfg.Clock
	k.syncActive(clk.Now())
	for {
		k.publish()
		var timerC <-chan time.Time
		var timer clock.Timer
		if d := k.m.NextDeadline(); !d.IsZero() {
			wait := d.Sub(clk.Now())
			if wait <= 0 {
				k.apply(k.m.Step(clk.Now(), Tick{}))
				continue
			}
			timer = clk.NewTimer(wait)
			timerC = timer.C()
			if !clk.Now().Before(d) {
				// The clock passed the deadline while the timer was made
				// (a fake clock stepped): a timer relative to the old now
				// would fire late.
				timer.Stop()
				k.apply(k.m.Step(clk.Now(), Tick{}))
				continue
			}
		}
		select {
		case <-ctx.Done():
			stopTimer(timer)
			return nil
		case <-timerC:
			k.apply(k.m.Step(clk.Now(), Tick{}))
		case <-k.kick:
			stopTimer(timer)
			k.syncActive(clk.Now())
		case p := <-packets:
			stopTimer(timer)
			if p.err != nil {
				return fmt.Errorf("dhcpvip: receive on %s: %w", k.where(), p.err)
			}
			k.handle(clk.Now(), p.b)
		}
	}
}

func stopTimer(t clock.Timer) {
	if t != nil {
		t.Stop()
	}
}

func (k *Keeper) syncActive(now time.Time) {
	if k.wantActive.Load() == k.m.Active() {
		return
	}
	if k.wantActive.Load() {
		k.cfg.Logger.Info("DHCP VIP lease: active, renewing", "vip", k.m.Want(), "mac", k.cfg.Identity.MAC)
		k.apply(k.m.Step(now, Activate{}))
		return
	}
	k.cfg.Logger.Info("DHCP VIP lease: backup, silent", "vip", k.m.Want())
	k.apply(k.m.Step(now, Deactivate{}))
}

func (k *Keeper) read(out chan<- received, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		b := make([]byte, dhcpv4.MaxMessageSize)
		n, _, err := k.conn.ReadFrom(b)
		if err != nil {
			select {
			case <-stop:
				return
			default:
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue // a deadline left over from a previous Run
			}
			select {
			case out <- received{err: err}:
			case <-stop:
			}
			return
		}
		select {
		case out <- received{b: b[:n]}:
		case <-stop:
			return
		}
	}
}

func (k *Keeper) handle(now time.Time, b []byte) {
	p, err := dhcpv4.FromBytes(b)
	if err != nil {
		return // not DHCP, or not for anyone: the segment is shared
	}
	in, ok, err := decodeReply(k.cfg.Identity, k.xids[:], k.m.Want(), p)
	if !ok {
		return
	}
	k.mu.Lock()
	k.status.Received++
	k.status.LastReply = now
	k.mu.Unlock()
	if err != nil {
		k.apply([]Action{Alert{Severity: Warning, Err: err}})
		return
	}
	k.apply(k.m.Step(now, in))
}

func (k *Keeper) apply(acts []Action) {
	log := k.cfg.Logger
	for _, a := range acts {
		switch a := a.(type) {
		case Send:
			k.send(a.Message)
			continue
		case Transition:
			log.Info("DHCP VIP lease state", "from", a.From, "to", a.To, "reason", a.Reason)
		case Leased:
			l := a.Lease
			log.Info("DHCP VIP lease granted", "addr", l.Prefix, "server", l.Server, "lease", leaseString(l.Duration),
				"t1", l.T1, "t2", l.T2, "expires", l.ExpiresAt().Format(time.RFC3339))
		case Alert:
			if a.Severity == Error {
				log.Error("DHCP VIP lease problem", "err", a.Err)
			} else {
				log.Warn("DHCP VIP lease warning", "err", a.Err)
			}
		}
		if k.cfg.Notify != nil {
			k.cfg.Notify(a)
		}
	}
}

func (k *Keeper) send(msg Message) {
	xid := dhcpv4.TransactionID{}
	for xid == (dhcpv4.TransactionID{}) {
		v := rand.Uint32()
		xid = dhcpv4.TransactionID{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
	}
	// A late reply to the previous transmission is as good as one to this.
	k.xids[1], k.xids[0] = k.xids[0], xid
	p, err := buildMessage(k.cfg.Identity, msg, xid, k.cfg.Hostname)
	if err == nil {
		_, err = k.conn.WriteTo(p.ToBytes(), k.dest)
	}
	k.mu.Lock()
	if err != nil {
		k.status.SendErrors++
	} else {
		k.status.Sent++
	}
	k.mu.Unlock()
	if err != nil {
		// The machine retransmits on its schedule; say why nothing arrives.
		k.apply([]Action{Alert{Severity: Warning, Err: fmt.Errorf("send %s on %s: %w", msg, k.where(), err)}})
		return
	}
	k.cfg.Logger.Debug("DHCP sent", "msg", msg.String(), "xid", xid.String())
}

func (k *Keeper) where() string {
	if k.cfg.Interface != "" {
		return k.cfg.Interface
	}
	return k.conn.LocalAddr().String()
}

// publish copies the machine's view into the snapshot.
func (k *Keeper) publish() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.status.State = k.m.State()
	k.status.Active = k.m.Active()
	k.status.Want = k.m.Want()
	k.status.Lease = k.m.Lease()
	k.status.Problem = k.m.Problem()
}

// AcquireConn obtains a lease on conn, for `hapod init`: Discover, Offer,
// Request, ACK (or a Request for cfg.Want first, when set). It waits at
// most cfg.Timeout and never releases the lease. conn stays open.
func AcquireConn(ctx context.Context, conn net.PacketConn, cfg Config) (Lease, error) {
	var (
		mu      sync.Mutex
		lease   Lease
		lastErr error
	)
	got := make(chan struct{})
	notify := cfg.Notify
	cfg.Notify = func(a Action) {
		mu.Lock()
		switch a := a.(type) {
		case Leased:
			if !lease.Valid() {
				lease = a.Lease
				close(got)
			}
		case Alert:
			if a.Severity == Error || errors.Is(a.Err, ErrMalformedReply) {
				lastErr = a.Err
			}
		}
		mu.Unlock()
		if notify != nil {
			notify(a)
		}
	}
	k, err := newKeeper(conn, func() error { return nil }, cfg)
	if err != nil {
		return Lease{}, err
	}
	cfg = k.cfg
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- k.Run(runCtx) }()
	k.SetActive(true)
	timer := cfg.Clock.NewTimer(cfg.Timeout)
	defer timer.Stop()
	stop := func() error { cancel(); return <-runErr }

	select {
	case <-got:
		_ = stop()
		mu.Lock()
		defer mu.Unlock()
		return lease, nil
	case err := <-runErr:
		return Lease{}, err
	case <-ctx.Done():
		_ = stop()
		return Lease{}, ctx.Err()
	case <-timer.C():
		if err := stop(); err != nil {
			return Lease{}, err
		}
		mu.Lock()
		defer mu.Unlock()
		if lease.Valid() {
			return lease, nil // granted while stopping
		}
		if lastErr != nil {
			return Lease{}, fmt.Errorf("no lease on %s within %s: %w", k.where(), cfg.Timeout, lastErr)
		}
		if k.Status().Received > 0 {
			return Lease{}, fmt.Errorf("%w on %s within %s with a lease for %s", ErrNoServer, k.where(), cfg.Timeout, cfg.Identity.MAC)
		}
		return Lease{}, fmt.Errorf("%w on %s within %s", ErrNoServer, k.where(), cfg.Timeout)
	}
}
