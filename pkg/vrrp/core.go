package vrrp

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"
)

// effects are the calls a core asks of the world: the Speaker makes them on
// its Conn and VIP, the simulations in sim_test.go on a simulated LAN.
type effects interface {
	send(p *Packet) error
	acquire() error
	release() error
}

// wakeup is one turn of the Speaker's loop: what woke it, if anything
// (a timer or a SetLink/AdjustPriority poke wake it with neither), and
// the link state and effective priority SetLink and AdjustPriority last
// asked for.
type wakeup struct {
	stop bool      // the context was cancelled
	rcv  *Received // an advert arrived
	link bool
	prio uint8
}

// core is everything a Speaker decides for one virtual router: it feeds
// the Machine, keeps the vipPlan (when to call the VIP, retries,
// re-announcements), the peer table and the status, and logs. It never
// reads the clock and never blocks: the driver passes the time with every
// call and performs the I/O through effects. It is not safe for
// concurrent use.
type core struct {
	cfg MachineConfig
	m   *Machine
	vip *vipPlan
	fx  effects
	log *slog.Logger

	appliedLink bool
	sendFailing bool
	stopping    bool // Shutdown given: a ReleaseVIP waits for exit
	status      Status
	peers       peerTable
	// onTransition, when set, hears every Transition before its effects
	// (SpeakerConfig.OnTransition).
	onTransition func(Transition)
}

// newCore returns a core in Init. cfg is normalised as NewMachine does,
// and a missing HandoverTimeout becomes 3 intervals, at most maxHandover.
func newCore(now time.Time, cfg MachineConfig, fx effects, log *slog.Logger) *core {
	m := NewMachine(cfg)
	if m.cfg.HandoverTimeout <= 0 {
		m.cfg.HandoverTimeout = min(3*m.cfg.Interval, maxHandover)
	}
	return &core{
		cfg:         m.cfg,
		m:           m,
		vip:         newVIPPlan(m.cfg.Interval),
		fx:          fx,
		log:         log,
		appliedLink: true,
		peers:       make(peerTable),
		status: Status{
			State:             StateInit,
			Since:             now,
			BasePriority:      m.Priority(),
			EffectivePriority: m.Priority(),
		},
	}
}

// snapshot returns a copy of the status with its peers.
func (c *core) snapshot() Status {
	st := c.status
	st.Peers = c.peers.list()
	st.TransitionsBy = maps.Clone(c.status.TransitionsBy)
	return st
}

// start runs the protocol with the controls as they are at now.
func (c *core) start(now time.Time, link bool, prio uint8) {
	c.controls(now, link, prio)
	c.do(now, c.m.Step(now, Startup{}))
}

// wake handles one turn of the loop at now: the stop, the advert, the
// controls, then the timers that are due. It reports that the loop is
// done: stopped, and no handover keeps it; exit follows.
func (c *core) wake(now time.Time, w wakeup) (done bool) {
	if w.stop {
		c.stopping = true
		c.do(now, c.m.Step(now, Shutdown{}))
	}
	if w.rcv != nil {
		c.packet(now, *w.rcv)
	}
	if !c.stopping {
		c.controls(now, w.link, w.prio)
	}
	c.timers(now)
	return c.stopping && !c.m.HandingOver()
}

// wakeAt is when the loop must run without outside input: the machine's
// next timer or a pending VIP retry, whichever is first; zero for never.
func (c *core) wakeAt() time.Time {
	t := c.m.NextDeadline()
	if r := c.vip.deadline(); !r.IsZero() && !c.stopping && (t.IsZero() || r.Before(t)) {
		t = r
	}
	return t
}

func (c *core) timers(now time.Time) {
	if dl := c.m.NextDeadline(); !dl.IsZero() && !now.Before(dl) {
		c.do(now, c.m.Step(now, Tick{}))
	}
	if r := c.vip.deadline(); !r.IsZero() && !c.stopping && !now.Before(r) {
		c.syncVIP(now)
	}
}

// controls feeds the machine the link state and priority it was not
// given yet.
func (c *core) controls(now time.Time, link bool, prio uint8) {
	c.status.EffectivePriority = prio
	if link != c.appliedLink {
		c.appliedLink = link
		in := Input(LinkDown{})
		if link {
			in = LinkUp{}
		}
		c.do(now, c.m.Step(now, in))
	}
	if prio != c.m.Priority() {
		c.log.Info("vrrp priority changed", "from", c.m.Priority(), "to", prio)
		c.do(now, c.m.Step(now, SetPriority{Priority: prio}))
	}
}

func (c *core) packet(now time.Time, r Received) {
	p := r.Packet
	// The Conn filters these already; a mismatch here would be a wiring
	// mistake, and feeding it to the machine could move the VIP.
	if p == nil || p.VRID != c.cfg.VRID || p.Version != c.cfg.Version {
		return
	}
	c.status.AdvertsReceived++
	// Our own advert looped back is not a peer.
	if r.Src != c.cfg.Primary {
		c.peers.heard(now, r.Src, p.Priority, p.Interval)
	}
	c.log.Debug("vrrp advert received", "from", r.Src, "priority", p.Priority, "interval", p.Interval)
	c.do(now, c.m.Step(now, Advert{From: r.Src, Priority: p.Priority, Interval: p.Interval}))
}

// do performs the machine's actions in order. While stopping, a ReleaseVIP
// only records the wish: exit releases on the way out.
func (c *core) do(now time.Time, acts []Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case Transition:
			c.log.Info("vrrp state change", "from", a.From.String(), "to", a.To.String(), "reason", a.Text())
			c.status.State = a.To
			c.status.Since = now
			c.status.LastReason = a.Text()
			c.status.Transitions++
			if c.status.TransitionsBy == nil {
				c.status.TransitionsBy = make(map[TransitionKey]uint64)
			}
			c.status.TransitionsBy[TransitionKey{To: a.To, Reason: a.Reason}]++
			if c.onTransition != nil {
				c.onTransition(a)
			}
		case TakeVIP:
			c.vip.set(true)
			c.syncVIP(now)
		case ReleaseVIP:
			c.vip.set(false)
			if !c.stopping {
				c.syncVIP(now)
			}
		case HandoverDone:
			if a.To.IsValid() {
				c.log.Info("vrrp handover done", "to", a.To, "priority", a.Priority, "after", a.After.String())
			} else {
				c.log.Warn("vrrp handover timed out, releasing the VIP anyway", "timeout", c.cfg.HandoverTimeout.String())
			}
		case AnnounceVIP:
			if c.vip.reannounce(now) {
				c.reannounce()
			}
		case SendAdvert:
			c.send(a.Priority)
			// Two intervals without another active router: the contest
			// is over, and ours must be the last announcement.
			if c.vip.settled(now, 2*c.cfg.Interval) {
				if err := c.fx.acquire(); err != nil {
					c.log.Warn("vrrp VIP re-announce failed", "err", err)
				} else {
					c.log.Info("VIP announced again: the other active router has gone quiet")
				}
			}
			// Failed VIP operations are retried with the advert rhythm.
			if c.vip.acquiring() {
				c.syncVIP(now)
			}
		}
	}
	c.status.ActiveRouter = c.m.ActiveRouter()
}

func (c *core) send(prio uint8) {
	err := c.fx.send(&Packet{
		Version:  c.cfg.Version,
		VRID:     c.cfg.VRID,
		Priority: prio,
		Interval: c.cfg.Interval,
	})
	switch {
	case err != nil && !c.sendFailing:
		// Once per failure streak: at 10 adverts a second, more is noise.
		c.sendFailing = true
		c.log.Warn("vrrp advert send failed", "priority", prio, "err", err)
	case err != nil:
		c.log.Debug("vrrp advert send failed", "priority", prio, "err", err)
	default:
		if c.sendFailing {
			c.sendFailing = false
			c.log.Info("vrrp advert send recovered")
		}
		c.log.Debug("vrrp advert sent", "priority", prio)
		c.status.AdvertsSent++
	}
}

// reannounce announces the held VIP again (Acquire is idempotent: the
// address stays, the gratuitous ARP or NA burst goes out).
func (c *core) reannounce() {
	if err := c.fx.acquire(); err != nil {
		c.log.Warn("vrrp VIP re-announce failed", "err", err)
		return
	}
	c.log.Info("VIP re-announced: another router was active too")
}

// syncVIP makes the VIP call the plan says is due, if any, and logs its
// outcome (at Warn once per failure streak).
func (c *core) syncVIP(now time.Time) {
	op := c.vip.next(now)
	if op == vipNone {
		return
	}
	name, f := "acquire", c.fx.acquire
	if op == vipRelease {
		name, f = "release", c.fx.release
	}
	err := f()
	switch c.vip.done(now, op, err) {
	case vipFirstError:
		c.log.Warn("vrrp VIP "+name+" failed, will retry", "err", err)
	case vipError:
		c.log.Debug("vrrp VIP "+name+" failed", "err", err)
	case vipRecovered:
		c.log.Info("vrrp VIP " + name + " succeeded after failures")
	}
	c.status.VIPHeld = c.vip.held()
}

// exit releases the VIP once more if it may still be held, as the loop
// ends after wake reported done.
func (c *core) exit(now time.Time) error {
	c.vip.set(false)
	if c.vip.next(now) == vipNone {
		return nil
	}
	err := c.fx.release()
	c.vip.done(now, vipRelease, err)
	if err != nil {
		return fmt.Errorf("vrrp: release VIP on exit: %w", err)
	}
	c.status.VIPHeld = false
	return nil
}

// fail ends the loop after the Conn broke: nobody can hear us, so the VIP
// goes now, without a handover. Broken during a handover, the Conn ends
// it: nobody can hear the successor either; that stop is still clean.
func (c *core) fail(now time.Time, err error) error {
	if c.stopping {
		return c.exit(now)
	}
	c.stopping = true
	c.do(now, c.m.Step(now, Shutdown{}))
	err = fmt.Errorf("vrrp: receive: %w", err)
	if rerr := c.exit(now); rerr != nil {
		return errors.Join(err, rerr)
	}
	return err
}
