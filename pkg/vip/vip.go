// Package vip puts the virtual IP on an interface, takes it off again, and
// announces it to the link: gratuitous ARP for IPv4, unsolicited Neighbor
// Advertisements for IPv6. The VRRP speaker drives it through the VIP
// interface when it becomes master or backup.
//
// A Manager does that for one VIP on one interface index. A Group holds
// the VIPs of one VRRP virtual router (one address family, RFC 9568) as
// one: it makes a Manager per VIP follow the kernel through one netlink
// subscription, decides with the pure Reconcile what to do when links and
// addresses differ from what the speaker wants (add a VIP back, remove
// it, rebind to an interface created again, report the link unusable),
// and asks the link, on one packet socket, who else holds each VIP
// (conflict.go).
//
// The pure parts (frame encoders, the link-usable rule, config defaults,
// the announce schedule, Reconcile, claim parsing and filtering) live in
// files without a build tag; netlink and AF_PACKET live in the _linux.go
// files behind small interfaces, so the Manager's and the Group's logic is
// tested with fakes and a fake clock.
package vip

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/hapod/hapod/pkg/vrrp"
)

// The VRRP speaker, the consumer, owns the interface a VIP implements.
var _ vrrp.VIP = (*Manager)(nil)

// Errors returned by this package; match them with errors.Is.
var (
	// ErrInvalidConfig wraps every Config validation failure.
	ErrInvalidConfig = errors.New("invalid VIP config")
	// ErrClosed is returned by a Manager's methods after Close.
	ErrClosed = errors.New("vip manager closed")
	// ErrUnimplemented is returned on operating systems other than Linux.
	ErrUnimplemented = errors.New("vip: not implemented on this operating system")
)

// Defaults for the zero values of Config fields.
const (
	DefaultBurstCount  = 3
	DefaultRepeatAfter = 2 * time.Second
	// maxBurstCount bounds a burst so a typo cannot flood the segment.
	maxBurstCount = 100
	maxIfNameLen  = 15 // IFNAMSIZ - 1
)

// Config describes one VIP on one interface.
type Config struct {
	// Interface is the name of the interface that carries the VIP.
	// Required.
	Interface string
	// Prefix is the VIP with its prefix length, e.g. 198.18.0.10/24 or
	// 2001:db8::10/64. The length decides the connected route the kernel
	// adds with the address (and the IPv4 broadcast address). Required.
	Prefix netip.Prefix
	// Label is the optional IPv4 address label ("eth0:vip"), as keepalived
	// sets it; it must start with Interface. Ignored for IPv6. Default none.
	Label string
	// BurstCount is how many announcement rounds go out at once on Acquire
	// (each IPv4 round is an ARP request and an ARP reply, each IPv6 round
	// one NA). Default 3.
	BurstCount int
	// RepeatAfter is the delay of a second burst after Acquire, because a
	// switch or neighbour may miss the first one right after a link event.
	// Default 2s; negative disables the second burst.
	RepeatAfter time.Duration
	// Clock schedules the second burst. Default the real clock.
	Clock clock.Clock
	// Logger receives acquire/release events and announce failures.
	// Default slog.Default().
	Logger *slog.Logger
}

// withDefaults returns cfg with zero fields defaulted, or an error naming
// the first invalid field.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.BurstCount == 0 {
		cfg.BurstCount = DefaultBurstCount
	}
	if cfg.RepeatAfter == 0 {
		cfg.RepeatAfter = DefaultRepeatAfter
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.Interface == "":
		return cfg, fmt.Errorf("%w: interface is empty", ErrInvalidConfig)
	case len(cfg.Interface) > maxIfNameLen:
		return cfg, fmt.Errorf("%w: interface name %q is longer than %d bytes", ErrInvalidConfig, cfg.Interface, maxIfNameLen)
	case !cfg.Prefix.IsValid():
		return cfg, fmt.Errorf("%w: prefix is not set", ErrInvalidConfig)
	case cfg.BurstCount < 0 || cfg.BurstCount > maxBurstCount:
		return cfg, fmt.Errorf("%w: burst count %d is not in 1..%d", ErrInvalidConfig, cfg.BurstCount, maxBurstCount)
	}
	a := cfg.Prefix.Addr()
	switch {
	case a.Is4In6():
		return cfg, fmt.Errorf("%w: prefix %s is IPv4-mapped IPv6; write the IPv4 address", ErrInvalidConfig, cfg.Prefix)
	case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback():
		return cfg, fmt.Errorf("%w: %s is not a unicast address", ErrInvalidConfig, a)
	case a.Is4() && a == broadcast(cfg.Prefix):
		return cfg, fmt.Errorf("%w: %s is the broadcast address of %s", ErrInvalidConfig, a, cfg.Prefix.Masked())
	}
	if cfg.Label != "" {
		if len(cfg.Label) > maxIfNameLen || len(cfg.Label) < len(cfg.Interface) || cfg.Label[:len(cfg.Interface)] != cfg.Interface {
			return cfg, fmt.Errorf("%w: label %q must start with the interface name %q and be at most %d bytes", ErrInvalidConfig, cfg.Label, cfg.Interface, maxIfNameLen)
		}
	}
	return cfg, nil
}

// addrTable is the kernel's address list of one interface.
type addrTable interface {
	// add puts p on the interface; an address already there is success.
	add(p netip.Prefix) error
	// remove takes a off the interface whatever its prefix length, and
	// reports whether it was there; an absent address is success.
	remove(a netip.Addr) (bool, error)
	close() error
}

// frameSender sends complete Ethernet frames out of one interface.
type frameSender interface {
	send(frame []byte) error
	close() error
}

// Manager owns one VIP on one interface. Its methods are safe for
// concurrent use; one mutex orders them with the delayed second burst, so
// nothing is announced after Release returns.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	addrs  addrTable
	sender frameSender // nil when the link has no Ethernet address: no announcements
	frames [][]byte    // one announcement round, built once

	mu     sync.Mutex
	held   bool
	gen    uint64      // bumped on every Acquire/Release so a stale timer callback does nothing
	repeat clock.Timer // the pending second burst, or nil
	closed bool
}

// newManager wires a Manager from validated parts. frames may be nil when
// sender is nil.
func newManager(cfg Config, addrs addrTable, sender frameSender, frames [][]byte) *Manager {
	return &Manager{
		cfg:    cfg,
		log:    cfg.Logger.With("interface", cfg.Interface, "vip", cfg.Prefix.String()),
		addrs:  addrs,
		sender: sender,
		frames: frames,
	}
}

// Acquire puts the VIP on the interface (an address already there is
// fine), then announces it: BurstCount rounds at once and again after
// RepeatAfter. Calling it while held adds nothing and announces again.
// Announce failures (the link may be down) are logged, not returned: the
// address is held either way and the second burst retries.
func (m *Manager) Acquire() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if err := m.addrs.add(m.cfg.Prefix); err != nil {
		return fmt.Errorf("vip: add %s to %s: %w", m.cfg.Prefix, m.cfg.Interface, err)
	}
	if !m.held {
		m.log.Info("VIP acquired")
	}
	m.held = true
	m.cancelRepeatLocked()
	m.announceLocked("takeover")
	if m.sender != nil && m.cfg.RepeatAfter > 0 {
		gen := m.gen
		m.repeat = afterFunc(m.cfg.Clock, m.cfg.RepeatAfter, func() { m.repeatAnnounce(gen) })
	}
	return nil
}

// Release takes the VIP off the interface and cancels a pending second
// burst. An absent address is fine.
func (m *Manager) Release() error {
	_, err := m.remove("VIP released")
	return err
}

// RemoveStale removes the VIP if it is on the interface with any prefix
// length, as a SIGKILLed predecessor may have left it, and reports whether
// it was there. Call it at start, before the first Acquire.
func (m *Manager) RemoveStale() (bool, error) {
	return m.remove("stale VIP removed")
}

func (m *Manager) remove(what string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, ErrClosed
	}
	// Stop announcing first: even if the delete fails we are no longer
	// the owner, and the speaker will retry.
	m.cancelRepeatLocked()
	m.held = false
	removed, err := m.addrs.remove(m.cfg.Prefix.Addr())
	if err != nil {
		return removed, fmt.Errorf("vip: remove %s from %s: %w", m.cfg.Prefix.Addr(), m.cfg.Interface, err)
	}
	if removed {
		m.log.Info(what)
	}
	return removed, nil
}

// Close cancels a pending burst and closes the sockets. It leaves the
// address as it is: call Release first to give it up. Later calls of the
// other methods return ErrClosed; Close itself is idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.cancelRepeatLocked()
	var errs []error
	if m.sender != nil {
		errs = append(errs, m.sender.close())
	}
	errs = append(errs, m.addrs.close())
	return errors.Join(errs...)
}

func (m *Manager) repeatAnnounce(gen uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || !m.held || gen != m.gen {
		return
	}
	m.repeat = nil
	m.announceLocked("repeat")
}

func (m *Manager) cancelRepeatLocked() {
	m.gen++
	if m.repeat != nil {
		m.repeat.Stop()
		m.repeat = nil
	}
}

// announceLocked sends BurstCount announcement rounds and logs the
// outcome once for the whole burst.
func (m *Manager) announceLocked(why string) {
	if m.sender == nil {
		return
	}
	var (
		sent, failed int
		first        error
	)
	for range m.cfg.BurstCount {
		for _, f := range m.frames {
			if err := m.sender.send(f); err != nil {
				failed++
				if first == nil {
					first = err
				}
				continue
			}
			sent++
		}
	}
	if failed > 0 {
		m.log.Warn("VIP announcement failed", "burst", why, "sent", sent, "failed", failed, "err", first)
		return
	}
	m.log.Debug("VIP announced", "burst", why, "frames", sent)
}

// afterFunc runs f after d on c. The clocks of k8s.io/utils (real and
// fake) have AfterFunc; any other clock.Clock gets a timer and a goroutine.
func afterFunc(c clock.Clock, d time.Duration, f func()) clock.Timer {
	if dc, ok := c.(clock.WithDelayedExecution); ok {
		return dc.AfterFunc(d, f)
	}
	t := &stoppableTimer{Timer: c.NewTimer(d), stop: make(chan struct{})}
	go func() {
		select {
		case <-t.C():
			f()
		case <-t.stop:
		}
	}()
	return t
}

// stoppableTimer ends afterFunc's goroutine when stopped.
type stoppableTimer struct {
	clock.Timer
	once sync.Once
	stop chan struct{}
}

func (t *stoppableTimer) Stop() bool {
	t.once.Do(func() { close(t.stop) })
	return t.Timer.Stop()
}
