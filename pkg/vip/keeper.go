package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/hapod/hapod/pkg/vrrp"
)

// KeeperConfig configures a Keeper.
type KeeperConfig struct {
	// Config is the VIP and its interface, as for New.
	Config
	// Source is the node's own address on the interface, the source of
	// its VRRP adverts (and of its IPv6 probes). Required.
	Source netip.Addr
	// OnRebind is called, with the new index, when the interface was
	// created again: open the VRRP socket again there. An error is
	// retried on the next kernel change or after a second.
	OnRebind func(index int) error
}

// Status is the VIP as the kernel has it, for status pages and metrics.
type Status struct {
	// Held: the VIP is on the interface, as the kernel said last (every
	// change is reported by netlink within milliseconds).
	Held bool
	// HeldSince is when Held took its present value (or the Keeper
	// started).
	HeldSince time.Time
	// Wanted: the VRRP speaker wants the VIP here (it is active).
	Wanted bool
	// LinkUp: the interface exists, is usable and carries Source.
	// LinkReason says why, or why not.
	LinkUp     bool
	LinkReason string
	// LastError is the last failure to put the kernel in line (adding,
	// removing, rebinding), empty once one succeeds.
	LastError string
	// Conflicts counts the claims of the VIP by another host seen while
	// this node held it; LastConflict is the latest (zero when none).
	Conflicts    uint64
	LastConflict Conflict
}

// claimWatcher asks the link who has the VIP and returns the answers
// that come from other hosts.
type claimWatcher interface {
	// probe sends one question.
	probe() error
	// next blocks until another host claims the VIP; it returns an error
	// once closed.
	next() (hwAddr, error)
	close() error
}

// binding is what is opened on one index of the interface.
type binding struct {
	index  int
	m      *Manager
	claims claimWatcher // nil when the link has no Ethernet address
}

func (b *binding) close() {
	if b == nil {
		return
	}
	_ = b.m.Close()
	if b.claims != nil {
		_ = b.claims.close()
	}
}

// Keeper keeps the VIP on the interface exactly while the VRRP speaker
// wants it there, whatever else changes the kernel's addresses and links:
// it implements the speaker's VIP, follows the kernel through netlink,
// and performs what Reconcile decides. It also reports the link's state
// to the speaker and watches for other hosts claiming the VIP. One mutex
// orders the speaker's calls with the kernel's changes.
type Keeper struct {
	cfg   KeeperConfig
	log   *slog.Logger
	clock clock.Clock

	// Seams to the kernel (netlink and packet sockets on Linux).
	read  func() (Kernel, error)
	bind  func() (*binding, error)
	watch func(ctx context.Context) (<-chan struct{}, error)

	claimed chan claim // from the bindings' claim readers

	mu       sync.Mutex
	b        *binding
	want     bool
	obs      Kernel
	observed bool // obs was read at least once
	st       Status
	onLink   func(up bool)
	linkTold bool // onLink heard the state once
	defend   defense
	warnedAt time.Time // last conflict warning
}

// claim is a conflict seen on one binding.
type claim struct {
	b   *binding
	mac hwAddr
}

// newKeeper wires a Keeper from its seams and opens the first binding.
func newKeeper(cfg KeeperConfig, read func() (Kernel, error), bind func() (*binding, error), watch func(context.Context) (<-chan struct{}, error)) (*Keeper, error) {
	k := &Keeper{
		cfg:     cfg,
		log:     cfg.Logger.With("interface", cfg.Interface, "vip", cfg.Prefix.String()),
		clock:   cfg.Clock,
		read:    read,
		bind:    bind,
		watch:   watch,
		claimed: make(chan claim, 8),
	}
	b, err := bind()
	if err != nil {
		return nil, err
	}
	k.setBinding(b)
	k.st.HeldSince = k.clock.Now()
	return k, nil
}

// setBinding replaces the binding and starts reading its claims.
func (k *Keeper) setBinding(b *binding) {
	k.b.close()
	k.b = b
	if b.claims == nil {
		return
	}
	go func() {
		for {
			mac, err := b.claims.next()
			if err != nil {
				return
			}
			select {
			case k.claimed <- claim{b: b, mac: mac}:
			default: // the Keeper is busy with earlier claims: one is enough
			}
		}
	}()
}

var _ vrrp.VIP = (*Keeper)(nil)

// Acquire puts the VIP on the interface and announces it; the speaker
// calls it on becoming active. From then on the Keeper adds it again
// whenever it disappears.
func (k *Keeper) Acquire() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.want = true
	if k.observed && k.obs.Index != k.b.index {
		return fmt.Errorf("vip: interface %s is gone or was created again; waiting to bind to it", k.cfg.Interface)
	}
	err := k.b.m.Acquire()
	k.recordErr(err)
	return err
}

// Release takes the VIP off the interface; the speaker calls it on
// leaving the active state. From then on the Keeper removes it whenever
// it appears. An interface that is gone took the address with it.
func (k *Keeper) Release() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.want = false
	if k.observed && k.obs.Index != k.b.index {
		return nil
	}
	err := k.b.m.Release()
	k.recordErr(err)
	return err
}

// RemoveStale removes a VIP left on the interface by a SIGKILLed
// predecessor (see Manager.RemoveStale). Call it before the speaker runs.
func (k *Keeper) RemoveStale() (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.b.m.RemoveStale()
}

// Status returns what the kernel says about the VIP and what the Keeper
// did about it.
func (k *Keeper) Status() Status {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.st
	st.Wanted = k.want
	return st
}

// Close closes the sockets; the address stays as it is.
func (k *Keeper) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.b.close()
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
// whether the link can carry VRRP, probes for other holders of the VIP
// every ProbeInterval while it is held, and defends it against them.
func (k *Keeper) Run(ctx context.Context, onLink func(up bool)) error {
	k.mu.Lock()
	k.onLink = onLink
	k.mu.Unlock()
	changes, err := k.watch(ctx)
	if err != nil {
		return err
	}
	probe := k.clock.NewTimer(ProbeInterval)
	defer probe.Stop()
	var retry <-chan time.Time
	if !k.sync() {
		retry = k.clock.After(resyncAfter)
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
			if !k.sync() {
				retry = k.clock.After(resyncAfter)
			}
		case <-retry:
			retry = nil
			if !k.sync() {
				retry = k.clock.After(resyncAfter)
			}
		case <-probe.C():
			k.probe()
			probe.Reset(ProbeInterval)
		case c := <-k.claimed:
			k.conflict(c)
		}
	}
}

// sync reads the kernel and performs what Reconcile decides. It reports
// false when something failed and should be tried again.
func (k *Keeper) sync() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	obs, err := k.read()
	if err != nil {
		k.log.Warn("reading the interface's state failed", "err", err)
		return false
	}
	if obs.VIP != k.st.Held {
		k.st.Held, k.st.HeldSince = obs.VIP, k.clock.Now()
	}
	k.obs, k.observed = obs, true
	acts := Reconcile(Desired{Held: k.want, Bound: k.b.index}, obs, k.cfg.Interface, k.cfg.Prefix.Addr(), k.cfg.Source)
	for _, a := range acts {
		switch a := a.(type) {
		case Rebind:
			if !k.rebind(a) {
				k.setLink(SetLink{Up: false, Reason: fmt.Sprintf("interface %s: %s", k.cfg.Interface, k.st.LastError)})
				return false
			}
		case SetLink:
			k.setLink(a)
		case AddVIP:
			k.log.Warn("VIP missing while active: adding it again", "reason", a.Reason)
			if err := k.b.m.Acquire(); err != nil {
				k.recordErr(fmt.Errorf("add the VIP again: %w", err))
				k.log.Warn("adding the VIP again failed", "err", err)
				return false
			}
		case RemoveVIP:
			k.log.Warn("VIP present while not active: removing it", "reason", a.Reason)
			if err := k.b.m.Release(); err != nil {
				k.recordErr(fmt.Errorf("remove the VIP: %w", err))
				k.log.Warn("removing the VIP failed", "err", err)
				return false
			}
		}
	}
	return true
}

func (k *Keeper) rebind(a Rebind) bool {
	b, err := k.bind()
	if err != nil {
		k.recordErr(fmt.Errorf("bind to the interface again: %w", err))
		k.log.Warn("binding to the interface again failed", "reason", a.Reason, "err", err)
		return false
	}
	if b.index != a.Index {
		// Created yet again between the read and the bind: the next
		// change notification brings the newest index.
		b.close()
		k.recordErr(fmt.Errorf("interface %s changed again while binding", k.cfg.Interface))
		return false
	}
	if k.cfg.OnRebind != nil {
		if err := k.cfg.OnRebind(b.index); err != nil {
			b.close()
			k.recordErr(fmt.Errorf("open the VRRP socket again: %w", err))
			k.log.Warn("opening the VRRP socket on the new interface failed", "reason", a.Reason, "err", err)
			return false
		}
	}
	k.setBinding(b)
	k.recordErr(nil)
	k.log.Info("bound to the interface again", "reason", a.Reason, "index", b.index)
	return true
}

// setLink records the link's state, logs a new reason (not a usable link
// at start: that is the normal case) and tells the speaker about a new
// state.
func (k *Keeper) setLink(a SetLink) {
	if a.Reason != k.st.LinkReason && (k.st.LinkReason != "" || !a.Up) {
		if a.Up {
			k.log.Info("link usable for VRRP", "reason", a.Reason)
		} else {
			k.log.Warn("link not usable for VRRP", "reason", a.Reason)
		}
	}
	changed := a.Up != k.st.LinkUp || !k.linkTold
	k.st.LinkUp, k.st.LinkReason = a.Up, a.Reason
	if changed && k.onLink != nil {
		k.onLink(a.Up)
		k.linkTold = true
	}
}

func (k *Keeper) recordErr(err error) {
	if err == nil {
		k.st.LastError = ""
		return
	}
	k.st.LastError = err.Error()
}

// probe asks who has the VIP while this node holds it. Not in the first
// ProbeInterval of holding it: a router handing over gracefully keeps the
// VIP until it hears this node's first advert (at most 0.8 s, see
// vrrp.MachineConfig.HandoverTimeout), and would answer as a conflict.
func (k *Keeper) probe() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.want || !k.st.Held || k.b.claims == nil || k.clock.Since(k.st.HeldSince) < ProbeInterval {
		return
	}
	if err := k.b.claims.probe(); err != nil {
		k.log.Debug("VIP probe failed", "err", err)
	}
}

// conflictWarnEvery bounds the warnings about one claimant: a stale
// holder answers every probe.
const conflictWarnEvery = time.Minute

// conflict handles another host's claim: while this node holds the VIP it
// is counted, reported and answered with a fresh announcement (rate
// limited). A backup sees the active node's claims; those are no conflict.
// Nor are claims in the first ProbeInterval of holding (see probe).
func (k *Keeper) conflict(c claim) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.clock.Now()
	if c.b != k.b || !k.want || !k.st.Held || now.Sub(k.st.HeldSince) < ProbeInterval {
		return
	}
	mac := net.HardwareAddr(c.mac[:])
	newMAC := k.st.LastConflict.MAC.String() != mac.String()
	k.st.Conflicts++
	k.st.LastConflict = Conflict{MAC: mac, At: now}
	if newMAC || now.Sub(k.warnedAt) >= conflictWarnEvery {
		k.warnedAt = now
		k.log.Warn("another host answers for the VIP: announcing it again", "mac", mac.String(), "conflicts", k.st.Conflicts)
	}
	if k.defend.allow(now) {
		if err := k.b.m.Acquire(); err != nil {
			k.log.Warn("re-announcing the VIP failed", "err", err)
		}
	}
}
