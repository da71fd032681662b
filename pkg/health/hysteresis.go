package health

// Hysteresis turns a stream of check results into a healthy/unhealthy
// state with haproxy's rise/fall rule, so one lost probe does not take a
// backend out and one lucky probe does not put a flapping one back.
// It is pure: no clock, no I/O. The zero value is usable (Rise and Fall
// below 1 count as 1). Not safe for concurrent use.
type Hysteresis struct {
	// Rise is how many successes in a row bring an unhealthy backend up.
	Rise int
	// Fall is how many failures in a row take a healthy backend down.
	Fall int

	known   bool
	healthy bool
	streak  int // consecutive results contrary to the current state
}

// Record adds one result and reports whether the state changed and the
// state after it.
//
// The first result sets the state directly (and reports a change): a
// node that just started should use a backend that answers at once
// rather than after Rise intervals, and should not wait Fall intervals
// to learn that a backend is absent. After that, Rise consecutive
// successes are needed to go up and Fall consecutive failures to go down;
// a result agreeing with the current state resets the count.
func (h *Hysteresis) Record(ok bool) (changed, healthy bool) {
	if !h.known {
		h.known, h.healthy, h.streak = true, ok, 0
		return true, ok
	}
	if ok == h.healthy {
		h.streak = 0
		return false, h.healthy
	}
	h.streak++
	need := h.Fall
	if ok {
		need = h.Rise
	}
	if h.streak < max(need, 1) {
		return false, h.healthy
	}
	h.healthy, h.streak = ok, 0
	return true, ok
}

// Healthy reports the current state; known is false before the first
// result.
func (h *Hysteresis) Healthy() (healthy, known bool) { return h.healthy, h.known }
