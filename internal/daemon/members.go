package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"

	"k8s.io/utils/clock"

	"github.com/hapod/hapod/internal/discover"
	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/membership"
)

// members is membership as `hapod run` has it: the static backends,
// the persisted ones, and (with --discover) the API's list, applied to
// the proxy pool, the health checker and the unicast peers.
type members struct {
	cfg     config.Config
	log     *slog.Logger
	initial []netip.AddrPort // static + persisted, what the parts start with
	saved   []netip.AddrPort
	path    string // the state file; empty without --discover
}

// loadMembers reads the persisted members. A bad or unreadable state
// file is logged and ignored: the static backends are enough to start.
func loadMembers(cfg config.Config, log *slog.Logger) *members {
	m := &members{cfg: cfg, log: log.With("component", "membership")}
	m.initial = slices.Clone(cfg.Proxy.Backends)
	if !cfg.Membership.Discover {
		return m
	}
	m.path = filepath.Join(cfg.Membership.StateDir, membership.FileName(cfg.VIP.Primary().Addr()))
	saved, err := membership.Load(m.path)
	if err != nil {
		m.log.Warn("ignoring the saved members", "err", err)
	}
	m.saved = saved
	for _, a := range saved {
		if !slices.Contains(m.initial, a) {
			m.initial = append(m.initial, a)
		}
	}
	return m
}

// peers returns the unicast peers for members, or nil in multicast mode.
func (m *members) peers(all []netip.AddrPort, self netip.Addr) []netip.Addr {
	if len(m.cfg.VRRP.Peers) == 0 {
		return nil
	}
	return membership.Peers(m.cfg.VRRP.Peers, all, self)
}

// memberSink is what a change of members is applied to.
type memberSink struct {
	pool interface {
		Add(netip.AddrPort) bool
		Remove(netip.AddrPort) bool
	}
	prober interface {
		Add(netip.AddrPort) bool
		Remove(netip.AddrPort) bool
	}
	// routers are the unicast routers' peer lists; none in multicast
	// mode.
	routers []peerSink
}

// peerSink is where a unicast router takes its peers: the members of its
// family (that of self, its source address).
type peerSink struct {
	self     netip.Addr
	setPeers func([]netip.Addr) error
}

// start makes the Tracker, applying its changes to sink, and with
// --discover runs the API source until ctx ends. It returns the Tracker
// for the status page.
func (m *members) start(ctx context.Context, sink memberSink, clk clock.Clock, userAgent string) *membership.Tracker {
	tr := membership.NewTracker(membership.TrackerConfig{
		Config:    membership.Config{Static: m.cfg.Proxy.Backends, Grace: m.cfg.Membership.Grace},
		Persisted: m.saved,
		StatePath: m.path,
		Clock:     clk,
		Logger:    m.log,
		OnChange: func(changes []membership.Change, all []netip.AddrPort) {
			for _, c := range changes {
				if c.Added {
					// Checked first: the pool takes it once it passes.
					sink.prober.Add(c.Member)
					sink.pool.Add(c.Member)
				} else {
					sink.pool.Remove(c.Member)
					sink.prober.Remove(c.Member)
				}
			}
			for _, r := range sink.routers {
				peers := m.peers(all, r.self)
				if err := r.setPeers(peers); err != nil {
					m.log.Warn("could not change the VRRP peers", "family", config.FamilyOf(r.self), "peers", peers, "err", err)
				} else {
					m.log.Info("VRRP peers", "family", config.FamilyOf(r.self), "peers", peers)
				}
			}
		},
	})
	if !m.cfg.Membership.Discover {
		return tr
	}
	go tr.Run(ctx)
	src := discover.New(discover.Config{
		Kubeconfig: m.cfg.Membership.Kubeconfig,
		VIP:        m.cfg.VIP.Primary().Addr(),
		UserAgent:  userAgent,
		Clock:      clk,
		Logger:     m.log,
	}, tr)
	go src.Run(ctx)
	return tr
}
