// Package daemon is `hapod run`: it wires the VRRP speaker, the VIP, the
// health checker, the proxy and the status server together from one
// Config, and shuts them down in the order that keeps clients served.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"

	"github.com/hapod/hapod/internal/hostnet"
	"github.com/hapod/hapod/internal/instance"
	"github.com/hapod/hapod/internal/preflight"
	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/health"
	"github.com/hapod/hapod/pkg/proxy"
	"github.com/hapod/hapod/pkg/redirect"
	"github.com/hapod/hapod/pkg/status"
	"github.com/hapod/hapod/pkg/vrrp"
)

// NewLogger returns the logger cfg asks for, writing to stderr (kubelet
// keeps container logs).
func NewLogger(cfg config.Log) *slog.Logger { return newLogger(os.Stderr, cfg) }

func newLogger(w io.Writer, cfg config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level)) // validated already
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Run runs hapod until ctx ends, then hands the VIPs over and drains the
// proxy. cfg must be completed and valid.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) (runErr error) {
	clk := clock.RealClock{}
	// One instance per cluster per host, decided before anything is
	// bound or touched: a second one (a copy of the manifest, a debug
	// run) must leave the first one's VIPs and ports alone.
	lock, err := instance.Acquire(cfg.VIP.Primary().Addr())
	if err != nil {
		return err
	}
	handover := &handoverRecord{clock: clk}
	// Last of all, once the VIPs are released: the lock is free when Run
	// returns, and whoever asked for a handover hears how it went.
	defer func() { lock.Release(handover.outcome(runErr)) }()
	// A handover request (`hapod reset`) stops like SIGTERM.
	ctx, requestStop := context.WithCancel(ctx)
	defer requestStop()

	if cfg.VIP.Interface == "" {
		if cfg.VIP.Interface, err = routeInterface(cfg.VIP.Prefixes, hostnet.RouteInterface); err != nil {
			return err
		}
	}
	ifname := cfg.VIP.Interface
	// The checks `hapod init` made before it wrote the manifest, on what
	// this host has now; run starts from their results.
	start, err := preflight.Check(ctx, cfg, preflight.SystemHost)
	if err != nil {
		return err
	}
	specs := cfg.Routers()
	mon, log := newMonitor(ifname, start.Sources[specs[0].Family], log)
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	if n, err := proxy.RaiseNoFile(); err != nil {
		log.Warn("could not raise the open-file limit", "err", err)
	} else {
		log.Debug("open-file limit", "nofile", n)
	}

	// The ports before any address: if another process holds one, this
	// one fails here without having changed anything.
	srv := status.New(cfg.Status.Addr)
	if err := srv.Listen(); err != nil {
		return err
	}
	var routers []*router // the proxy's OnHealthy runs once it serves
	// VIP:--port reaches the proxy through hapod's nftables redirect
	// when the proxy listens elsewhere (kube-apiserver holds 0.0.0.0:6443).
	var redir *redirect.Switch
	if cfg.Proxy.Redirect() {
		if redir, err = newRedirect(cfg, clk, log); err != nil {
			return err
		}
		// Last of all, once the VIPs are gone: VIP:--port reaches the
		// local kube-apiserver again (a no-op after the explicit Stop
		// below).
		defer redir.Stop()
	}
	// The proxy, listening on every VIP before this node holds them.
	policy, err := proxy.PolicyByName(cfg.Proxy.Balance)
	if err != nil {
		return err
	}
	// The backends and peers start from the static and persisted
	// members: nothing here waits for the API.
	mem := loadMembers(cfg, log)
	pool := proxy.NewPool(mem.initial, policy)
	var listen []netip.AddrPort
	for _, a := range cfg.VIP.Addrs() {
		listen = append(listen, netip.AddrPortFrom(a, cfg.Proxy.ListenPort))
	}
	px, err := proxy.New(proxy.Config{
		Listen:         listen,
		ConnectTimeout: cfg.Proxy.ConnectTimeout,
		IdleTimeout:    cfg.Proxy.IdleTimeout,
		MaxConns:       cfg.Proxy.MaxConns,
		RecvBuffer:     cfg.Proxy.RecvBuffer,
		Splice:         cfg.Proxy.Splice,
		CloseOnDown:    cfg.Proxy.CloseOnDown,
		Rebalance:      cfg.Proxy.Rebalance,
		Clock:          clk,
		Logger:         proxyLogger(log),
		OnHealthy: func(n int) {
			// No healthy backend: let a node that reaches one take the
			// VIPs, of every family.
			lowered := n == 0 && cfg.Health.Weight > 0
			for _, r := range routers {
				if lowered {
					r.speaker.AdjustPriority("backends", -cfg.Health.Weight)
				} else {
					r.speaker.AdjustPriority("backends", 0)
				}
			}
			if lowered {
				log.Warn("no healthy kube-apiserver: VRRP priority lowered", "by", cfg.Health.Weight)
			}
			if redir != nil {
				// Without a backend the proxy cannot serve: VIP:--port
				// goes to the local kube-apiserver, which still answers.
				// The switch logs its own failures and retries on the
				// next change.
				_ = redir.SetHealthy(n)
			}
		},
	}, pool)
	if err != nil {
		return err
	}
	if err := px.Listen(); err != nil {
		return err
	}
	if redir != nil {
		// The proxy listens and no check has run: backends start healthy,
		// as the pool has them. A SIGKILLed predecessor's table is
		// replaced (or removed) here.
		stale, err := redir.Start(pool.Healthy())
		if err != nil {
			return err
		}
		if stale {
			log.Warn("took over the redirect table left by a previous run", "table", redirect.TableName(cfg.VIP.Primary().Addr()))
		}
	}

	var leased *lease
	if cfg.VIP.DHCP {
		if leased, err = newLease(cfg, ifname, clk, log); err != nil {
			return err
		}
		defer leased.close()
	}
	// One virtual router per address family, the IPv4 one first.
	deps := routerDeps{
		cfg: cfg, ifname: ifname, password: start.Password, clk: clk, log: log, px: px, lease: leased,
		peers: func(self netip.Addr) []netip.Addr { return mem.peers(mem.initial, self) },
		// Before the VIPs are taken: the first client through them must
		// not be sent to the node whose silence made this takeover.
		onTransition: func(r *router, tr vrrp.Transition) {
			for _, b := range suspectsAfter(tr, backendAddrs(pool)) {
				pool.Suspect(b)
			}
			if len(routers) == 2 && r == routers[0] {
				followHolder(routers[1].speaker, tr.To)
			}
		},
	}
	for _, spec := range specs {
		// The IPv6 router breaks ties in the IPv4 one's order.
		r, err := newRouter(spec, start.Sources[spec.Family], start.Sources[specs[0].Family], deps)
		if err != nil {
			return err
		}
		defer r.close()
		routers = append(routers, r)
	}
	if len(routers) == 2 {
		// The IPv4 router starts as a backup.
		followHolder(routers[1].speaker, vrrp.StateBackup)
	}
	handover.setRouters(routers)

	checker, err := health.NewChecker(cfg.Health.Check, cfg.Health.Path, start.HealthTLS)
	if err != nil {
		return err
	}
	prober := health.NewProber(health.Config{
		Interval: cfg.Health.Interval,
		Timeout:  cfg.Health.Timeout,
		Rise:     cfg.Health.Rise,
		Fall:     cfg.Health.Fall,
		Clock:    clk,
		Logger:   log,
		Observe: func(b netip.AddrPort, d time.Duration, err error) {
			mon.ObserveCheck(b, d, err)
			if err == nil {
				pool.CheckPassed(b, clk.Now().Add(-d)) // when it started
			}
		},
	}, checker, mem.initial, func(t health.Transition) {
		logBackend(log, t, pool) // first: the cause before its effects
		pool.SetHealthy(t.Backend, t.Healthy)
	})

	// Background parts stop when bgCtx ends, after the VIPs are handed over.
	bgCtx, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	sink := memberSink{pool: pool, prober: prober}
	for _, r := range routers {
		if r.unicast() {
			sink.routers = append(sink.routers, peerSink{self: r.source, setPeers: r.conn.SetPeers})
		}
	}
	tracker := mem.start(bgCtx, sink, clk, "hapod/"+Version)

	sources := statusSources(routers, cfg.VRRP.Version)
	sources.Proxy, sources.Health, sources.Membership = px, prober, tracker
	if leased != nil {
		sources.DHCP = leased
	}
	if redir != nil {
		sources.Redirect = redir
	}
	mon.SetSources(sources)
	mon.Install(srv)

	for _, r := range routers {
		log.Info("hapod starting", "family", r.spec.Family, "vips", r.spec.VIPs, "interface", ifname, "source", r.source,
			"vrid", r.spec.VRID, "version", cfg.VRRP.Version, "priority", cfg.VRRP.Priority,
			"interval", cfg.VRRP.AdvertInterval, "peers", len(r.spec.Peers), "port", cfg.Proxy.Port,
			"listen_port", cfg.Proxy.ListenPort, "backends", len(mem.initial), "discover", cfg.Membership.Discover)
	}

	var speakerDone, proxyDone atomic.Bool
	srv.AddLiveness("vrrp", func() error {
		if speakerDone.Load() {
			return errors.New("speaker stopped")
		}
		return nil
	})
	srv.AddLiveness("proxy", func() error {
		if proxyDone.Load() {
			return errors.New("proxy stopped")
		}
		return nil
	})
	srv.AddReadiness("vrrp", func() error {
		for _, r := range routers {
			if !r.speaker.Ready() {
				return fmt.Errorf("%s router initializing", r.spec.Family)
			}
		}
		return nil
	})
	go srv.Serve(bgCtx)
	go prober.Run(bgCtx)
	if redir != nil {
		go reconcileRedirect(bgCtx, redir, clk)
	}
	if leased != nil {
		go leased.run(bgCtx)
	}
	proxyErr := make(chan error, 1)
	go func() {
		proxyErr <- px.Serve(bgCtx)
		proxyDone.Store(true)
	}()

	// Each keeper reports its router's link state to its speaker (down
	// while the interface is missing, down, or without the router's
	// source address) and keeps the VIPs in line with the speaker's
	// state.
	linkLost := make(chan struct{})
	var lostOnce sync.Once
	for _, r := range routers {
		go func() {
			if err := r.addrs.Run(bgCtx, r.speaker.SetLink); err != nil {
				r.log.Error("VIP keeper stopped", "err", err)
				lostOnce.Do(func() { close(linkLost) }) // netlink failed for good: see supervise
			}
		}()
	}

	// The speakers run in the foreground: on ctx's end each sends
	// priority 0 and keeps its VIPs (and the proxy on them serving)
	// until a new holder is heard, then releases them and returns.
	// Their states are recorded before they see the stop, whatever the
	// cause (SIGTERM, a handover request), for whoever asked to be told.
	speakerCtx, stopSpeakers := context.WithCancel(context.Background())
	defer stopSpeakers()
	defer context.AfterFunc(ctx, func() {
		handover.stopping()
		stopSpeakers()
	})()
	speakerErr := runSpeakers(routers, func(r *router) error { return r.speaker.Run(speakerCtx) }, stopSpeakers)
	lock.Serve(func() string {
		state := handover.request()
		log.Info("handover requested through the instance lock (hapod reset): stopping", "state", state)
		requestStop()
		return state
	})
	err = supervise(speakerErr, proxyErr, linkLost, stopSpeakers, log)
	speakerDone.Store(true)
	if redir != nil {
		// The VIPs are gone, and the proxy is about to: the endpoint port
		// belongs to the local kube-apiserver again.
		if rerr := redir.Stop(); rerr != nil && err == nil {
			err = rerr
		}
	}
	// The VIPs are gone from this node and the connections through them
	// were closed as they went (closingVIP): stop at once, so that the
	// pod exits within a second of SIGTERM.
	closeNow, cancel := context.WithCancel(context.Background())
	cancel()
	if err := px.Shutdown(closeNow); err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("proxy shutdown", "err", err)
	}
	log.Info("stopped")
	return err
}

// routeInterface is the interface every VIP is routed to: hapod holds
// all of them on one interface, where the other nodes are.
func routeInterface(vips []netip.Prefix, route func(netip.Addr) (string, error)) (string, error) {
	var first string
	for i, p := range vips {
		ifname, err := route(p.Addr())
		if err != nil {
			return "", fmt.Errorf("--interface not given and not detected for the VIP %s: %w", p, err)
		}
		if i == 0 {
			first = ifname
		} else if ifname != first {
			return "", fmt.Errorf("--interface not given, and the VIPs are routed to different interfaces: %s to %s, %s to %s; hapod holds every VIP on one interface: give --interface", vips[0], first, p, ifname)
		}
	}
	return first, nil
}

// reconcileRedirect keeps the redirect table as the switch wants it until
// ctx ends: a failed change is tried again, a flushed table put back.
func reconcileRedirect(ctx context.Context, redir *redirect.Switch, clk clock.WithTicker) {
	t := clk.NewTicker(redirect.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			_ = redir.Reconcile() // it logs its failures
		}
	}
}

// newRedirect is the switch for VIP:--port to VIP:--listen-port, on a
// netlink socket in hapod's (the host's) network namespace.
func newRedirect(cfg config.Config, clk clock.PassiveClock, log *slog.Logger) (*redirect.Switch, error) {
	nft, err := redirect.NewNFTables()
	if err != nil {
		return nil, fmt.Errorf("--listen-port %d differs from --port %d, so VIP:%d is redirected with nftables: %w",
			cfg.Proxy.ListenPort, cfg.Proxy.Port, cfg.Proxy.Port, err)
	}
	return redirect.NewSwitch(redirectSpec(cfg), nft, clk, log)
}

// redirectSpec is the redirect of every VIP:--port, the primary VIP
// first: it names the table, as `hapod reset` and init/join expect.
func redirectSpec(cfg config.Config) redirect.Spec {
	primary := cfg.VIP.Primary().Addr()
	vips := []netip.Addr{primary}
	for _, a := range cfg.VIP.Addrs() {
		if a != primary {
			vips = append(vips, a)
		}
	}
	return redirect.Spec{VIPs: vips, Port: cfg.Proxy.Port, ListenPort: cfg.Proxy.ListenPort}
}
