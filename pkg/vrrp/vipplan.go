package vrrp

import (
	"time"

	"golang.org/x/time/rate"
)

// vipState is what the Speaker knows about the addresses on this node.
type vipState int

const (
	vipReleased vipState = iota
	vipHeld
	vipUnknown // the last Acquire or Release failed
)

// vipOp is a call the Speaker makes on its VIP.
type vipOp int

const (
	vipNone vipOp = iota
	vipAcquire
	vipRelease
)

// vipPlan decides when the Speaker calls VIP.Acquire and VIP.Release. The
// machine's TakeVIP and ReleaseVIP set what is wanted; a failed call
// leaves the outcome unknown and is retried one retry period later (the
// Speaker also retries an acquire with every advert it sends); the held
// VIP is announced again from a small budget. It never reads the clock or
// touches the VIP: the Speaker asks, performs and reports the outcome.
type vipPlan struct {
	retry    time.Duration // wait after a failed call
	want     bool          // the machine wants the VIP held
	have     vipState      // what is on the node as far as we know
	retryAt  time.Time     // zero: no retry pending
	failing  bool          // in a streak of failed calls
	announce *rate.Limiter // re-announcements (AnnounceVIP)
	// contestAt is when another active router's advert last asked for a
	// re-announcement while the VIP was held; zero once answered by
	// settled.
	contestAt time.Time
}

// Whoever announces last draws the clients, so the router left holding
// the VIP after a contest announces it once more when the contest is
// over (settled), whatever the budget says: the other router may have
// announced after our last re-announcement, before it let go (seen in
// dual-stack takeovers, where the loser briefly outranked the winner on
// the follower router and its burst came last: 2.3 s to the next
// scheduled announcement).
//
// Re-announcements are rate limited: a misbehaving peer that keeps
// advertising must not make us flood the LAN. A split brain heals with two
// of them: one when the other active router's advert arrives, one when its
// priority-0 advert says it let go. The second is the one that counts, as
// it is the only one sure to come after the other router's last
// announcement: when two equal-priority backups take over at the same
// instant (both armed Skew_Time on a priority-0 advert), the loser's
// burst may land after our first answer and draw the clients to a node
// that is about to let go. So the bucket holds two, refilled one per
// second. A takeover's own announcement does not count.
const (
	reannounceEvery = time.Second
	reannounceBurst = 2
)

func newVIPPlan(retry time.Duration) *vipPlan {
	return &vipPlan{retry: retry, announce: rate.NewLimiter(rate.Every(reannounceEvery), reannounceBurst)}
}

// set records what the machine wants. A pending retry is dropped: the
// call for the new wish is due at once.
func (p *vipPlan) set(want bool) {
	p.want = want
	p.retryAt = time.Time{}
	if !want {
		p.contestAt = time.Time{}
	}
}

// next is the call due at now, vipNone when the VIP is as wanted or a
// retry is not due yet.
func (p *vipPlan) next(now time.Time) vipOp {
	if !p.retryAt.IsZero() && now.Before(p.retryAt) {
		return vipNone
	}
	switch {
	case p.want && p.have != vipHeld:
		return vipAcquire
	case !p.want && p.have != vipReleased:
		return vipRelease
	default:
		return vipNone
	}
}

// acquiring reports that the VIP is wanted but not known to be held.
func (p *vipPlan) acquiring() bool { return p.want && p.have != vipHeld }

// held reports that the last call was a successful Acquire.
func (p *vipPlan) held() bool { return p.have == vipHeld }

// deadline is when a failed call is retried; zero when none is pending.
func (p *vipPlan) deadline() time.Time { return p.retryAt }

// vipOutcome says how loudly to report a call's result.
type vipOutcome int

const (
	vipOK         vipOutcome = iota // success, as the last time
	vipRecovered                    // success after a streak of failures
	vipFirstError                   // the first failure of a streak
	vipError                        // a failure within a streak
)

// done records the result of op, made at now.
func (p *vipPlan) done(now time.Time, op vipOp, err error) vipOutcome {
	if err != nil {
		p.have = vipUnknown
		p.retryAt = now.Add(p.retry)
		if p.failing {
			return vipError
		}
		p.failing = true
		return vipFirstError
	}
	p.have = vipHeld
	if op == vipRelease {
		p.have = vipReleased
	}
	p.retryAt = time.Time{}
	if p.failing {
		p.failing = false
		return vipRecovered
	}
	return vipOK
}

// reannounce reports whether to announce the held VIP again at now (the
// machine asked with AnnounceVIP), spending from the budget if so.
func (p *vipPlan) reannounce(now time.Time) bool {
	if p.have != vipHeld {
		return false
	}
	p.contestAt = now
	return p.announce.AllowN(now, 1)
}

// settled reports whether to announce the held VIP once more at now: a
// contest (reannounce) was going on and no other active router has been
// heard for quiet. Once per contest, outside the budget. quiet must span
// more than one advert interval, so that a contest that goes on (an
// advert every interval) never counts as over.
func (p *vipPlan) settled(now time.Time, quiet time.Duration) bool {
	if p.contestAt.IsZero() || p.have != vipHeld || now.Sub(p.contestAt) < quiet {
		return false
	}
	p.contestAt = time.Time{}
	return true
}
