package proxy

import "time"

// raceDelay is how long a connect attempt may wait for the backend's
// answer while another backend is left to try. A backend on the same
// network answers a SYN in well under a millisecond, and a busy
// kube-apiserver in tens; a host that has crashed never answers. After
// raceDelay the proxy moves on, as happy eyeballs (RFC 8305) does with
// its 250 ms: a client then waits 250 ms more instead of its share of
// ConnectTimeout (1 s of the default 3 s over three backends, as long as
// many clients' own timeouts). The abandoned backend is suspect until a
// health check passes, so a live but slow one is back within one check
// interval.
const raceDelay = 250 * time.Millisecond

// attemptShare is how long one connect attempt may take, given the
// connect budget left and the number of candidates left (this one
// included): an equal share of the budget, so one unresponsive backend
// cannot eat it all, and no more than raceDelay unless this is the last
// candidate.
func attemptShare(left time.Duration, candidates int) time.Duration {
	share := left / time.Duration(max(1, candidates))
	if candidates > 1 {
		share = min(share, raceDelay)
	}
	return share
}
