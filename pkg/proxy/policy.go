package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
)

// Policy chooses the backend for a new client connection. backends holds
// only the candidates (healthy, not suspect, not yet tried for this
// client) and is never empty. Select must be safe for concurrent use and
// must not keep the slice.
type Policy interface {
	Select(backends []*Backend, client netip.AddrPort) *Backend
}

// LeastConn picks the backend with the fewest active connections. It is
// the default because Kubernetes API clients hold long-lived watches:
// counting connections, not requests, is what spreads that load. Ties are
// broken by a hash of the client's source port, so a burst of new clients
// against equally loaded backends spreads instead of piling onto the
// first one. Hashed, not taken modulo the backend count: Linux hands out
// connect() ports in steps of two, and an even number of backends would
// see only half of them.
type LeastConn struct{}

// Select implements Policy.
func (LeastConn) Select(backends []*Backend, client netip.AddrPort) *Backend {
	n := len(backends)
	// Fibonacci hashing: the high bits of port times 2^32/phi.
	start := int((uint32(client.Port())*0x9E3779B9)>>16) % n
	best := backends[start]
	bestActive := best.active.Load()
	for i := 1; i < n; i++ {
		b := backends[(start+i)%n]
		if a := b.active.Load(); a < bestActive {
			best, bestActive = b, a
		}
	}
	return best
}

// RoundRobin hands out backends in turn.
type RoundRobin struct {
	next atomic.Uint64
}

// Select implements Policy.
func (r *RoundRobin) Select(backends []*Backend, _ netip.AddrPort) *Backend {
	i := r.next.Add(1) - 1
	return backends[i%uint64(len(backends))]
}

var (
	_ Policy = LeastConn{}
	_ Policy = (*RoundRobin)(nil)
)

// ErrUnknownPolicy is returned by PolicyByName for a name it does not know.
var ErrUnknownPolicy = errors.New("unknown balance policy")

// PolicyName names a selection policy, as given to --balance.
type PolicyName string

// The policies PolicyByName builds.
const (
	// PolicyLeastConn is LeastConn, the default.
	PolicyLeastConn PolicyName = "least-conn"
	// PolicyRoundRobin is RoundRobin.
	PolicyRoundRobin PolicyName = "round-robin"
)

// DefaultPolicy is the policy of an empty name.
const DefaultPolicy = PolicyLeastConn

// PolicyNames lists the valid names, the default first.
func PolicyNames() []PolicyName { return []PolicyName{PolicyLeastConn, PolicyRoundRobin} }

// PolicyByName returns the policy called name (see PolicyNames); an empty
// name is DefaultPolicy.
func PolicyByName(name PolicyName) (Policy, error) {
	switch name {
	case "", PolicyLeastConn:
		return LeastConn{}, nil
	case PolicyRoundRobin:
		return &RoundRobin{}, nil
	}
	valid := make([]string, 0, len(PolicyNames()))
	for _, n := range PolicyNames() {
		valid = append(valid, string(n))
	}
	return nil, fmt.Errorf("%w %q (valid: %s)", ErrUnknownPolicy, name, strings.Join(valid, ", "))
}
