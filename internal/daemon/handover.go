package daemon

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/hapod/hapod/pkg/vrrp"
)

// handoverRecord remembers the speaker's state when the stop began, so
// that whoever asked for a handover through the instance lock (`hapod
// reset`) can be told how it ended, even when the stop came first from
// SIGTERM (kubelet stopping the pod as its manifest went). Its methods are
// safe for concurrent use.
type handoverRecord struct {
	clock clock.Clock

	mu      sync.Mutex
	speaker *vrrp.Speaker // nil until it exists; no request is served before
	stop    *handoverRequest
}

// handoverRequest is the speaker's state when the stop began.
type handoverRequest struct {
	At        time.Time
	WasActive bool
}

// setSpeaker gives the record the speaker whose state it reports.
func (h *handoverRecord) setSpeaker(s *vrrp.Speaker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.speaker = s
}

// stopping records the speaker's state as the stop begins, before the
// speaker sees it; the first call counts.
func (h *handoverRecord) stopping() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stop == nil && h.speaker != nil {
		h.stop = &handoverRequest{At: h.clock.Now(), WasActive: h.speaker.Status().State == vrrp.StateActive}
	}
}

// request returns the instance's state in a word, for a requester: as it
// was when the stop began, if it has.
func (h *handoverRecord) request() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stop != nil {
		if h.stop.WasActive {
			return "active, stopping"
		}
		return "backup, stopping"
	}
	return strings.ToLower(h.speaker.Status().State.String())
}

// outcome says how the run ended, for the requesters of a handover.
func (h *handoverRecord) outcome(runErr error) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stop == nil || h.speaker == nil {
		return handoverOutcome(handoverRequest{}, vrrp.Status{}, 0, runErr)
	}
	return handoverOutcome(*h.stop, h.speaker.Status(), h.clock.Since(h.stop.At), runErr)
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
