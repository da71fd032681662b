package daemon

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/hapod/hapod/pkg/vrrp"
)

// handoverRecord remembers the routers' states when the stop began, so
// that whoever asked for a handover through the instance lock (`hapod
// reset`) can be told how it ended, even when the stop came first from
// SIGTERM (kubelet stopping the pod as its manifest went). Its methods are
// safe for concurrent use.
type handoverRecord struct {
	clock clock.Clock

	mu      sync.Mutex
	routers []*router // nil until they exist; no request is served before
	at      time.Time // when the stop began; zero before
	// wasActive is each router's state then.
	wasActive []bool
}

// handoverRequest is one router's state when the stop began.
type handoverRequest struct {
	At        time.Time
	WasActive bool
}

// setRouters gives the record the routers whose states it reports.
func (h *handoverRecord) setRouters(rs []*router) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.routers = rs
}

// stopping records the routers' states as the stop begins, before the
// speakers see it; the first call counts.
func (h *handoverRecord) stopping() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.at.IsZero() || h.routers == nil {
		return
	}
	h.at = h.clock.Now()
	for _, r := range h.routers {
		h.wasActive = append(h.wasActive, r.speaker.Status().State == vrrp.StateActive)
	}
}

// request returns the instance's state in a few words, for a requester:
// as it was when the stop began, if it has. With routers of both
// families each is named.
func (h *handoverRecord) request() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.at.IsZero() {
		if slices.Contains(h.wasActive, true) {
			return "active, stopping"
		}
		return "backup, stopping"
	}
	var states []string
	for _, r := range h.routers {
		st := strings.ToLower(r.speaker.Status().State.String())
		if len(h.routers) > 1 {
			st = string(r.spec.Family) + " " + st
		}
		states = append(states, st)
	}
	return strings.Join(states, ", ")
}

// outcome says how the run ended, for the requesters of a handover: per
// router when there are several.
func (h *handoverRecord) outcome(runErr error) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.at.IsZero() || h.routers == nil {
		return handoverOutcome(handoverRequest{}, vrrp.Status{}, 0, runErr)
	}
	if runErr != nil || len(h.routers) == 1 {
		return handoverOutcome(handoverRequest{At: h.at, WasActive: h.wasActive[0]}, h.routers[0].speaker.Status(), h.clock.Since(h.at), runErr)
	}
	var out []string
	for i, r := range h.routers {
		o := handoverOutcome(handoverRequest{At: h.at, WasActive: h.wasActive[i]}, r.speaker.Status(), h.clock.Since(h.at), nil)
		out = append(out, fmt.Sprintf("%s: %s", r.spec.Family, o))
	}
	return strings.Join(out, "; ")
}

// handoverOutcome describes the end of a run that a handover request
// stopped at req, given the speaker's final status.
func handoverOutcome(req handoverRequest, st vrrp.Status, took time.Duration, runErr error) string {
	took = took.Round(time.Millisecond)
	switch {
	case runErr != nil:
		return fmt.Sprintf("stopped with an error: %v", runErr)
	case req.At.IsZero():
		return "stopped"
	case !req.WasActive:
		return "was a backup and stopped (the VIP stays with the active node)"
	}
	// The successor: the last router heard since the request with a
	// priority above 0 (0 is a router leaving, as this one did).
	var successor *vrrp.Peer
	for i, p := range st.Peers {
		if p.Priority > 0 && !p.LastHeard.Before(req.At) && (successor == nil || p.LastHeard.After(successor.LastHeard)) {
			successor = &st.Peers[i]
		}
	}
	if successor == nil {
		return fmt.Sprintf("released the VIP after %v without hearing a successor (no other node runs hapod?)", took)
	}
	return fmt.Sprintf("handed the VIP over to %s in %v", successor.Addr, took)
}
