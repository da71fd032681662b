package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"k8s.io/utils/clock"

	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/proxy"
	"github.com/hapod/hapod/pkg/status"
	"github.com/hapod/hapod/pkg/vip"
	"github.com/hapod/hapod/pkg/vrrp"
)

// router is one virtual router of this node (RFC 9568: one per address
// family): the VIPs of its family as the kernel has them, its VRRP socket
// and its speaker. The routers of one hapod share the proxy, the health
// checker and the status server.
type router struct {
	spec    config.Router
	source  netip.Addr
	addrs   *vip.Group
	conn    *vrrp.RedialConn
	speaker *vrrp.Speaker
	log     *slog.Logger
}

// routerDeps is what every router of a node shares.
type routerDeps struct {
	cfg      config.Config
	ifname   string
	password string
	clk      clock.Clock
	log      *slog.Logger
	px       *proxy.Proxy
	// lease is the DHCP lease of a leased VIP, nil without one (a leased
	// VIP is the only one: Validate).
	lease *lease
	// peers returns the router's unicast peers at start, given its
	// source (nil for multicast).
	peers func(self netip.Addr) []netip.Addr
	// onTransition is called with the router and each of its state
	// changes, on its speaker's goroutine.
	onTransition func(*router, vrrp.Transition)
}

// newRouter opens what spec's router needs: the VIPs' keeper (removing
// VIPs a SIGKILLed predecessor left), the VRRP socket and the speaker.
// On error nothing stays open.
//
// tieBreak is the address whose TieBreakDelay the router's down timers
// take: its own source, except for a follower, which takes the leader's
// so that backups of equal priority take both families over in the same
// order (the same node first).
func newRouter(spec config.Router, source, tieBreak netip.Addr, d routerDeps) (_ *router, err error) {
	r := &router{spec: spec, source: source, log: d.log.With("family", string(spec.Family))}
	// The keeper holds the VIPs as the speaker wants and as the kernel
	// has them; when the interface is created again it opens the VRRP
	// socket anew.
	r.addrs, err = vip.NewGroup(vip.GroupConfig{
		Interface: d.ifname,
		Prefixes:  spec.VIPs,
		Source:    source,
		Clock:     d.clk,
		Logger:    r.log,
		OnRebind:  func(int) error { return r.conn.Redial() },
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			r.addrs.Close()
		}
	}()
	stale, err := r.addrs.RemoveStale()
	if err != nil {
		return nil, fmt.Errorf("remove a stale VIP: %w", err)
	}
	for _, p := range stale {
		r.log.Warn("removed the VIP left on the interface by a previous holder", "vip", p, "interface", d.ifname)
	}

	var held vrrp.VIP = r.addrs
	if d.lease != nil {
		held = leasedVIP{VIP: held, lease: d.lease}
	}
	addrs := make([]netip.Addr, len(spec.VIPs))
	for i, p := range spec.VIPs {
		addrs[i] = p.Addr()
	}
	// The proxy closes the connections through this router's VIPs
	// before they go; the other family's stay.
	closing := &closingVIP{VIP: held, px: d.px, addrs: addrs, log: r.log}

	// One vrrp.Config feeds the socket and the speaker.
	vc := vrrp.Config{
		Interface: d.ifname,
		Primary:   source,
		Peers:     spec.Peers,
		VRID:      spec.VRID,
		Version:   vrrp.Version(d.cfg.VRRP.Version),
		Priority:  d.cfg.VRRP.Priority,
		Interval:  d.cfg.VRRP.AdvertInterval,
		Preempt:   d.cfg.VRRP.Preempt,
		Password:  d.password,
		Addrs:     addrs,
	}
	if len(spec.Peers) > 0 {
		vc.Peers = d.peers(source)
	}
	cc := vc.ConnConfig()
	cc.OnDrop = newMisconfigWarner(r.log, d.clk.Now).drop
	if r.conn, err = vrrp.DialRedial(cc); err != nil {
		return nil, fmt.Errorf("VRRP socket on %s for the %s VIPs: %w", d.ifname, spec.Family, err)
	}
	mc := vc.MachineConfig()
	mc.TieBreak = vrrp.TieBreakDelay(tieBreak, vc.Interval)
	r.speaker = vrrp.NewSpeaker(vrrp.SpeakerConfig{
		Machine: mc,
		Clock:   d.clk,
		Logger:  r.log,
		OnTransition: func(tr vrrp.Transition) {
			if d.onTransition != nil {
				d.onTransition(r, tr)
			}
		},
	}, r.conn, closing)
	return r, nil
}

// unicast reports whether the router sends its adverts to peers.
func (r *router) unicast() bool { return len(r.spec.Peers) > 0 }

// close releases what newRouter opened but the speaker does not own: the
// speaker closes the socket when its Run returns.
func (r *router) close() error { return r.addrs.Close() }

// followHolder keeps the holders of both families together: the
// follower's priority is lowered by one while the leader (the IPv4
// router) is not active on this node, so a node holding the IPv4 VIPs
// also wins the IPv6 election (preempting another holder) and a node
// that lost them lets the IPv6 VIPs go to the new IPv4 holder. Each
// family still fails over on its own: a follower whose link fails
// leaves the IPv4 VIPs where they are. Call it with every transition of
// the leader.
func followHolder(follower *vrrp.Speaker, leader vrrp.State) {
	if leader == vrrp.StateActive {
		follower.AdjustPriority(followSource, 0)
		return
	}
	follower.AdjustPriority(followSource, -1)
}

// followSource names the follow adjustment among the priority sources.
const followSource = "follow-ipv4-holder"

// closingVIP closes the proxy's connections through a router's VIPs
// right before they leave this node, whatever the reason (shutdown, a
// stronger router, a healed split brain, link down): their FINs must
// still leave from the VIP. Once it is gone, clients' packets reach the
// new holder, and an idle watch would hang on this node until its
// keepalive gave up.
type closingVIP struct {
	vrrp.VIP
	px    *proxy.Proxy
	addrs []netip.Addr
	log   *slog.Logger
}

func (v *closingVIP) Release() error {
	if n := v.px.CloseLocal(v.addrs...); n > 0 {
		v.log.Info("closed the connections through the VIP before releasing it", "closed", n)
	}
	return v.VIP.Release()
}

// runSpeakers runs every router's speaker with run until they are
// stopped (each hands its VIPs over) or one fails, which stops the
// others with stopAll, and sends their joined error on the returned
// channel once all have returned.
func runSpeakers(routers []*router, run func(*router) error, stopAll func()) <-chan error {
	errs := make(chan error, len(routers))
	for _, r := range routers {
		go func() {
			err := run(r)
			if err != nil {
				err = fmt.Errorf("%s router: %w", r.spec.Family, err)
			}
			errs <- err
		}()
	}
	out := make(chan error, 1)
	go func() {
		var all []error
		for range routers {
			err := <-errs
			if err != nil {
				// One router down: the others hand their VIPs over too,
				// and the pod exits for kubelet to restart it.
				stopAll()
			}
			all = append(all, err)
		}
		out <- errors.Join(all...)
	}()
	return out
}

// statusSources are the routers as the status Monitor reads them; the
// caller adds the shared parts.
func statusSources(routers []*router, version int) status.Sources {
	var s status.Sources
	for _, r := range routers {
		s.Routers = append(s.Routers, status.Router{
			Family: r.spec.Family, VRID: r.spec.VRID, Version: version, Address: r.source,
			VRRP: r.speaker, Drops: r.conn, VIPs: r.spec.VIPs, Kernel: r.addrs,
		})
	}
	return s
}
