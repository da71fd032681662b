package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/hapod/hapod/pkg/vrrp"
)

// GroupConfig configures a Group: the VIPs of one virtual router, all of
// one address family (RFC 9568: a virtual router is IPv4 or IPv6), on one
// interface.
type GroupConfig struct {
	// Interface is the name of the interface that carries the VIPs.
	// Required.
	Interface string
	// Prefixes are the VIPs with their prefix lengths, as Config.Prefix,
	// all IPv4 or all IPv6, no address twice. At least one is required.
	Prefixes []netip.Prefix
	// Source is the node's own address on the interface, the source of
	// the router's adverts (and of the IPv6 probes), of the VIPs' family.
	// Required.
	Source netip.Addr
	// OnRebind is called, with the new index, once per re-creation of the
	// interface for the whole group: open the VRRP socket again there. An
	// error is retried on the next kernel change or after a second.
	// Default none.
	OnRebind func(index int) error
	// Label is the optional IPv4 address label of every VIP, as
	// Config.Label. Ignored for IPv6. Default none.
	Label string
	// BurstCount and RepeatAfter shape each VIP's announcements, as in
	// Config. Defaults 3 and 2s.
	BurstCount  int
	RepeatAfter time.Duration
	// Clock schedules the second bursts, the probes and the retries.
	// Default the real clock.
	Clock clock.Clock
	// Logger receives the group's events. Default slog.Default().
	Logger *slog.Logger
}

// withDefaults returns cfg with zero fields defaulted and the Config of
// each VIP, in order, or an error naming the first invalid field.
func (cfg GroupConfig) withDefaults() (GroupConfig, []Config, error) {
	if len(cfg.Prefixes) == 0 {
		return cfg, nil, fmt.Errorf("%w: no VIP given", ErrInvalidConfig)
	}
	vips := make([]Config, len(cfg.Prefixes))
	for i, p := range cfg.Prefixes {
		if !p.IsValid() {
			return cfg, nil, fmt.Errorf("%w: VIP %d of %d is not set", ErrInvalidConfig, i+1, len(cfg.Prefixes))
		}
		c, err := Config{Interface: cfg.Interface, Prefix: p, Label: cfg.Label, BurstCount: cfg.BurstCount,
			RepeatAfter: cfg.RepeatAfter, Clock: cfg.Clock, Logger: cfg.Logger}.withDefaults()
		if err != nil {
			return cfg, nil, err
		}
		vips[i] = c
		first := cfg.Prefixes[0]
		if p.Addr().Is4() != first.Addr().Is4() {
			return cfg, nil, fmt.Errorf("%w: %s and %s are of different address families; a group (one VRRP router, RFC 9568) holds VIPs of one", ErrInvalidConfig, first, p)
		}
		for _, q := range cfg.Prefixes[:i] {
			if q.Addr() == p.Addr() {
				return cfg, nil, fmt.Errorf("%w: VIP %s is given twice (%s and %s)", ErrInvalidConfig, p.Addr(), q, p)
			}
		}
	}
	c := vips[0]
	cfg.BurstCount, cfg.RepeatAfter, cfg.Clock, cfg.Logger = c.BurstCount, c.RepeatAfter, c.Clock, c.Logger
	switch {
	case !cfg.Source.IsValid():
		return cfg, nil, fmt.Errorf("%w: source address is not set", ErrInvalidConfig)
	case cfg.Source.Is4() != c.Prefix.Addr().Is4():
		return cfg, nil, fmt.Errorf("%w: source address %s is not of the VIPs' family (%s)", ErrInvalidConfig, cfg.Source, c.Prefix)
	}
	return cfg, vips, nil
}

// Status is one VIP as the kernel has it, for status pages and metrics.
type Status struct {
	// Prefix is the VIP.
	Prefix netip.Prefix
	// Held: the VIP is on the interface, as the kernel said last (every
	// change is reported by netlink within milliseconds).
	Held bool
	// HeldSince is when Held took its present value (or the Group
	// started).
	HeldSince time.Time
	// Wanted: the VRRP speaker wants the VIP here (it is active).
	Wanted bool
	// LinkUp: the interface exists, is usable and carries Source.
	// LinkReason says why, or why not. The link is the group's: every
	// VIP of a group has the same.
	LinkUp     bool
	LinkReason string
	// LastError is the last failure to put the kernel in line for this
	// VIP or for the whole group (adding, removing, rebinding), empty
	// once one succeeds.
	LastError string
	// Conflicts counts the claims of the VIP by another host seen while
	// this node held it; LastConflict is the latest (zero when none).
	Conflicts    uint64
	LastConflict Conflict
}

// GroupStatus is a Group's link and each of its VIPs.
type GroupStatus struct {
	// LinkUp and LinkReason are the link's state, as reported to the
	// speaker (see Status).
	LinkUp     bool
	LinkReason string
	// VIPs are the VIPs in the configured order.
	VIPs []Status
}

// claimWatcher asks the link who has the group's VIPs and returns the
// answers that come from other hosts.
type claimWatcher interface {
	// probe sends one question about vip.
	probe(vip netip.Addr) error
	// next blocks until another host claims one of the VIPs; it returns
	// an error once closed.
	next() (netip.Addr, hwAddr, error)
	close() error
}

// binding is what is opened on one index of the interface: a Manager per
// VIP, in the configured order, sharing the sockets the binding closes.
type binding struct {
	index  int
	ms     []*Manager
	claims claimWatcher // nil when the link has no Ethernet address
	shared []interface{ close() error }
}

func (b *binding) close() {
	if b == nil {
		return
	}
	for _, m := range b.ms {
		_ = m.Close()
	}
	for _, s := range b.shared {
		_ = s.close()
	}
	if b.claims != nil {
		_ = b.claims.close()
	}
}

// lentTable lends a binding's address table to its Managers: the binding
// closes it once, after all of them.
type lentTable struct{ addrTable }

func (lentTable) close() error { return nil }

// lentSender lends a binding's announcement socket to its Managers.
type lentSender struct{ frameSender }

func (lentSender) close() error { return nil }

// vipState is what a Group knows about one of its VIPs.
type vipState struct {
	held         bool
	heldSince    time.Time
	lastErr      string
	conflicts    uint64
	lastConflict Conflict
	defend       defense
	warnedAt     time.Time // last conflict warning
}

// Group keeps several VIPs of one family on one interface exactly while
// the VRRP speaker wants them there, as one vrrp.VIP: they are acquired
// and released together, whatever else changes the kernel's addresses and
// links. It follows the kernel through one netlink subscription, performs
// what Reconcile decides, reports the link's state to the speaker once
// per change, and watches, with one packet socket, for other hosts
// claiming any of the VIPs. One mutex orders the speaker's calls with the
// kernel's changes.
type Group struct {
	cfg   GroupConfig
	vips  []Config     // per VIP, in order
	addrs []netip.Addr // the VIPs' addresses, in order
	log   *slog.Logger
	clock clock.Clock

	kernel seams

	claimed chan claim // from the bindings' claim readers

	mu       sync.Mutex
	b        *binding
	want     bool
	obs      Kernel
	observed bool // obs was read at least once
	link     SetLink
	onLink   func(up bool)
	linkTold bool // onLink heard the state once
	st       []vipState
}

// seams are a Group's ways to the kernel (netlink and packet sockets on
// Linux).
type seams struct {
	// read reads the interface's state.
	read func() (Kernel, error)
	// bind opens the VIPs' sockets on the interface's present index.
	bind func() (*binding, error)
	// watch notifies of link and address changes until ctx ends.
	watch func(ctx context.Context) (<-chan struct{}, error)
	// close releases what read holds; nil when nothing.
	close func()
}

// claim is a conflict seen on one binding.
type claim struct {
	b   *binding
	vip netip.Addr
	mac hwAddr
}

// newGroup wires a Group from its seams and opens the first binding. cfg
// and vips come from GroupConfig.withDefaults. The caller releases k on
// an error.
func newGroup(cfg GroupConfig, vips []Config, k seams) (*Group, error) {
	g := &Group{
		cfg:     cfg,
		vips:    vips,
		log:     cfg.Logger.With("interface", cfg.Interface),
		clock:   cfg.Clock,
		kernel:  k,
		claimed: make(chan claim, 8),
		st:      make([]vipState, len(vips)),
	}
	for _, c := range vips {
		g.addrs = append(g.addrs, c.Prefix.Addr())
	}
	b, err := k.bind()
	if err != nil {
		return nil, err
	}
	g.setBinding(b)
	now := g.clock.Now()
	for i := range g.st {
		g.st[i].heldSince = now
	}
	return g, nil
}

// setBinding replaces the binding and starts reading its claims.
func (g *Group) setBinding(b *binding) {
	g.b.close()
	g.b = b
	if b.claims == nil {
		return
	}
	go func() {
		for {
			vip, mac, err := b.claims.next()
			if err != nil {
				return
			}
			select {
			case g.claimed <- claim{b: b, vip: vip, mac: mac}:
			default: // the Group is busy with earlier claims: they recur
			}
		}
	}()
}

var _ vrrp.VIP = (*Group)(nil)

// Acquire puts every VIP on the interface and announces it; the speaker
// calls it on becoming active. A failure on one VIP does not stop the
// others; the error joins the failures, each naming its VIP. From then on
// the Group adds a VIP again whenever it disappears.
func (g *Group) Acquire() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.want = true
	if g.observed && g.obs.Index != g.b.index {
		return fmt.Errorf("vip: interface %s is gone or was created again; waiting to bind to it", g.cfg.Interface)
	}
	var errs []error
	for i, m := range g.b.ms {
		err := m.Acquire()
		g.recordErr(i, err)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Release takes every VIP off the interface; the speaker calls it on
// leaving the active state. A failure on one VIP does not stop the
// others. From then on the Group removes a VIP whenever it appears. An
// interface that is gone took the addresses with it.
func (g *Group) Release() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.want = false
	if g.observed && g.obs.Index != g.b.index {
		return nil
	}
	var errs []error
	for i, m := range g.b.ms {
		err := m.Release()
		g.recordErr(i, err)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RemoveStale removes the VIPs left on the interface by a SIGKILLed
// predecessor (see Manager.RemoveStale) and returns those it found, in
// order. Call it before the speaker runs.
func (g *Group) RemoveStale() ([]netip.Prefix, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var (
		removed []netip.Prefix
		errs    []error
	)
	for i, m := range g.b.ms {
		ok, err := m.RemoveStale()
		if ok {
			removed = append(removed, g.vips[i].Prefix)
		}
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

// Status returns what the kernel says about the link and each VIP, and
// what the Group did about them.
func (g *Group) Status() GroupStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	gs := GroupStatus{LinkUp: g.link.Up, LinkReason: g.link.Reason, VIPs: make([]Status, len(g.st))}
	for i, s := range g.st {
		gs.VIPs[i] = Status{
			Prefix:       g.vips[i].Prefix,
			Held:         s.held,
			HeldSince:    s.heldSince,
			Wanted:       g.want,
			LinkUp:       g.link.Up,
			LinkReason:   g.link.Reason,
			LastError:    s.lastErr,
			Conflicts:    s.conflicts,
			LastConflict: s.lastConflict,
		}
	}
	return gs
}

// Close closes the sockets; the addresses stay as they are. Call it once,
// after Run returned.
func (g *Group) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.b.close()
	if g.kernel.close != nil {
		g.kernel.close()
	}
	return nil
}

// resyncAfter is when a failed reconciliation is tried again without a
// kernel change to prompt it.
const resyncAfter = time.Second

// ErrWatchLost is returned by Run when the netlink subscription fails for
// good: without it, changes would go unnoticed.
var ErrWatchLost = errors.New("vip: lost track of the kernel's links and addresses (netlink subscription failed)")

// Run follows the kernel until ctx ends: it reconciles at start and on
// every link or address change, tells onLink (the speaker's SetLink)
// whether the link can carry VRRP, once per change, probes for other
// holders of each VIP every ProbeInterval while it is held, and defends
// it against them.
func (g *Group) Run(ctx context.Context, onLink func(up bool)) error {
	g.mu.Lock()
	g.onLink = onLink
	g.mu.Unlock()
	changes, err := g.kernel.watch(ctx)
	if err != nil {
		return err
	}
	probe := g.clock.NewTimer(ProbeInterval)
	defer probe.Stop()
	var retry <-chan time.Time
	if !g.sync() {
		retry = g.clock.After(resyncAfter)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-changes:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return ErrWatchLost
			}
			retry = nil
			if !g.sync() {
				retry = g.clock.After(resyncAfter)
			}
		case <-retry:
			retry = nil
			if !g.sync() {
				retry = g.clock.After(resyncAfter)
			}
		case <-probe.C():
			g.probe()
			probe.Reset(ProbeInterval)
		case c := <-g.claimed:
			g.conflict(c)
		}
	}
}

// sync reads the kernel and performs what Reconcile decides. It reports
// false when something failed and should be tried again.
func (g *Group) sync() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	obs, err := g.kernel.read()
	if err != nil {
		g.log.Warn("reading the interface's state failed", "err", err)
		return false
	}
	now := g.clock.Now()
	for i, a := range g.addrs {
		if on := slices.Contains(obs.VIPs, a); on != g.st[i].held {
			g.st[i].held, g.st[i].heldSince = on, now
		}
	}
	g.obs, g.observed = obs, true
	ok := true
	for _, a := range Reconcile(Desired{Held: g.want, Bound: g.b.index}, obs, g.cfg.Interface, g.addrs, g.cfg.Source) {
		switch a := a.(type) {
		case Rebind:
			if err := g.rebind(a); err != nil {
				g.setLink(SetLink{Up: false, Reason: fmt.Sprintf("interface %s: %s", g.cfg.Interface, err)})
				return false
			}
		case SetLink:
			g.setLink(a)
		case AddVIP:
			i := slices.Index(g.addrs, a.VIP)
			g.log.Warn("VIP missing while active: adding it again", "vip", a.VIP, "reason", a.Reason)
			if err := g.b.ms[i].Acquire(); err != nil {
				g.recordErr(i, fmt.Errorf("add the VIP again: %w", err))
				g.log.Warn("adding the VIP again failed", "vip", a.VIP, "err", err)
				ok = false
			}
		case RemoveVIP:
			i := slices.Index(g.addrs, a.VIP)
			g.log.Warn("VIP present while not active: removing it", "vip", a.VIP, "reason", a.Reason)
			if err := g.b.ms[i].Release(); err != nil {
				g.recordErr(i, fmt.Errorf("remove the VIP: %w", err))
				g.log.Warn("removing the VIP failed", "vip", a.VIP, "err", err)
				ok = false
			}
		}
	}
	return ok
}

// rebind opens the sockets on the interface's new index and calls
// OnRebind once for the group. A failure is every VIP's.
func (g *Group) rebind(a Rebind) error {
	err := g.rebindOnce(a)
	for i := range g.st {
		g.recordErr(i, err)
	}
	if err != nil {
		g.log.Warn("binding to the interface again failed", "reason", a.Reason, "err", err)
		return err
	}
	g.log.Info("bound to the interface again", "reason", a.Reason, "index", g.b.index)
	return nil
}

func (g *Group) rebindOnce(a Rebind) error {
	b, err := g.kernel.bind()
	if err != nil {
		return fmt.Errorf("bind to the interface again: %w", err)
	}
	if b.index != a.Index {
		// Created yet again between the read and the bind: the next
		// change notification brings the newest index.
		b.close()
		return fmt.Errorf("interface %s changed again while binding", g.cfg.Interface)
	}
	if g.cfg.OnRebind != nil {
		if err := g.cfg.OnRebind(b.index); err != nil {
			b.close()
			return fmt.Errorf("open the VRRP socket again: %w", err)
		}
	}
	g.setBinding(b)
	return nil
}

// setLink records the link's state, logs a new reason (not a usable link
// at start: that is the normal case) and tells the speaker about a new
// state.
func (g *Group) setLink(a SetLink) {
	if a.Reason != g.link.Reason && (g.link.Reason != "" || !a.Up) {
		if a.Up {
			g.log.Info("link usable for VRRP", "reason", a.Reason)
		} else {
			g.log.Warn("link not usable for VRRP", "reason", a.Reason)
		}
	}
	changed := a.Up != g.link.Up || !g.linkTold
	g.link = a
	if changed && g.onLink != nil {
		g.onLink(a.Up)
		g.linkTold = true
	}
}

func (g *Group) recordErr(i int, err error) {
	if err == nil {
		g.st[i].lastErr = ""
		return
	}
	g.st[i].lastErr = err.Error()
}

// probe asks who has each VIP while this node holds it. Not in the first
// ProbeInterval of holding it: a router handing over gracefully keeps the
// VIPs until it hears this node's first advert (at most 0.8 s, see
// vrrp.MachineConfig.HandoverTimeout), and would answer as a conflict.
func (g *Group) probe() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.want || g.b.claims == nil {
		return
	}
	for i, s := range g.st {
		if !s.held || g.clock.Since(s.heldSince) < ProbeInterval {
			continue
		}
		if err := g.b.claims.probe(g.addrs[i]); err != nil {
			g.log.Debug("VIP probe failed", "vip", g.addrs[i], "err", err)
		}
	}
}

// conflictWarnEvery bounds the warnings about one claimant: a stale
// holder answers every probe.
const conflictWarnEvery = time.Minute

// conflict handles another host's claim of one VIP: while this node holds
// it, it is counted, reported and answered with a fresh announcement of
// that VIP (rate limited). A backup sees the active node's claims; those
// are no conflict. Nor are claims in the first ProbeInterval of holding
// (see probe).
func (g *Group) conflict(c claim) {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := slices.Index(g.addrs, c.vip)
	if i < 0 || c.b != g.b || !g.want {
		return
	}
	s := &g.st[i]
	now := g.clock.Now()
	if !s.held || now.Sub(s.heldSince) < ProbeInterval {
		return
	}
	mac := net.HardwareAddr(c.mac[:])
	newMAC := s.lastConflict.MAC.String() != mac.String()
	s.conflicts++
	s.lastConflict = Conflict{MAC: mac, At: now}
	if newMAC || now.Sub(s.warnedAt) >= conflictWarnEvery {
		s.warnedAt = now
		g.log.Warn("another host answers for the VIP: announcing it again", "vip", c.vip, "mac", mac.String(), "conflicts", s.conflicts)
	}
	if s.defend.allow(now) {
		if err := g.b.ms[i].Acquire(); err != nil {
			g.log.Warn("re-announcing the VIP failed", "vip", c.vip, "err", err)
		}
	}
}
