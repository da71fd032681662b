package daemon

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/hapod/hapod/pkg/vrrp"
)

// handoverRecord remembers a handover request that came through the
// instance lock (`hapod reset`), so that the requester can be told how it
// ended. Its methods are safe for concurrent use.
type handoverRecord struct {
	clock clock.Clock

	mu      sync.Mutex
	speaker *vrrp.Speaker // nil until it exists; no request is served before
	req     *handoverRequest
}

// handoverRequest is the instance's state when the first request came.
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

// request records a handover request (the first one counts) and returns
// the instance's state in a word, for the requester.
func (h *handoverRecord) request() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.speaker.Status()
	if h.req == nil {
		h.req = &handoverRequest{At: h.clock.Now(), WasActive: st.State == vrrp.StateActive}
	}
	return strings.ToLower(st.State.String())
}

// outcome says how the run ended, for the requesters of a handover.
func (h *handoverRecord) outcome(runErr error) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.req == nil || h.speaker == nil {
		return handoverOutcome(handoverRequest{}, vrrp.Status{}, 0, runErr)
	}
	return handoverOutcome(*h.req, h.speaker.Status(), h.clock.Since(h.req.At), runErr)
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
