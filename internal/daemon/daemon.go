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
	"github.com/hapod/hapod/pkg/vip"
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

// Run runs hapod until ctx ends, then hands the VIP over and drains the
// proxy. cfg must be completed and valid.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) (runErr error) {
	clk := clock.RealClock{}
	if len(cfg.VIP.Prefixes) > 1 {
		return &config.FieldError{Flag: "vip", Err: errors.New("this hapod run serves one VIP; several arrive with issue 22's per-family routers")}
	}
	// One instance per VIP per host, decided before anything is bound or
	// touched: a second one (a copy of the manifest, a debug run) must
	// leave the first one's VIP and ports alone.
	lock, err := instance.Acquire(cfg.VIP.Primary().Addr())
	if err != nil {
		return err
	}
	handover := &handoverRecord{clock: clk}
	// Last of all, once the VIP is released: the lock is free when Run
	// returns, and whoever asked for a handover hears how it went.
	defer func() { lock.Release(handover.outcome(runErr)) }()
	// A handover request (`hapod reset`) stops like SIGTERM.
	ctx, requestStop := context.WithCancel(ctx)
	defer requestStop()

	ifname := cfg.VIP.Interface
	if ifname == "" {
		if ifname, err = hostnet.RouteInterface(cfg.VIP.Primary().Addr()); err != nil {
			return fmt.Errorf("--interface not given and not detected: %w", err)
		}
	}
	// The checks `hapod init` made before it wrote the manifest, on what
	// this host has now; run starts from their results.
	cfg.VIP.Interface = ifname
	start, err := preflight.Check(ctx, cfg, preflight.SystemHost)
	if err != nil {
		return err
	}
	source, password := start.Sources[config.FamilyOf(cfg.VIP.Primary().Addr())], start.Password
	mon, log := newMonitor(ifname, source, log)
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
	var speaker *vrrp.Speaker // the proxy's OnHealthy runs once it serves
	// VIP:--port reaches the proxy through hapod's nftables redirect
	// when the proxy listens elsewhere (kube-apiserver holds 0.0.0.0:6443).
	var redir *redirect.Switch
	if cfg.Proxy.Redirect() {
		if redir, err = newRedirect(cfg, clk, log); err != nil {
			return err
		}
		// Last of all, once the VIP is gone: VIP:--port reaches the local
		// kube-apiserver again (a no-op after the explicit Stop below).
		defer redir.Stop()
	}
	// The proxy, listening on the VIP before this node holds it.
	policy, err := proxy.PolicyByName(cfg.Proxy.Balance)
	if err != nil {
		return err
	}
	// The backends and peers start from the static and persisted
	// members: nothing here waits for the API.
	mem := loadMembers(cfg, log)
	pool := proxy.NewPool(mem.initial, policy)
	px, err := proxy.New(proxy.Config{
		Listen:         []netip.AddrPort{netip.AddrPortFrom(cfg.VIP.Primary().Addr(), cfg.Proxy.ListenPort)},
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
			// No healthy backend: let a node that reaches one take the VIP.
			if n == 0 && cfg.Health.Weight > 0 {
				speaker.AdjustPriority("backends", -cfg.Health.Weight)
				log.Warn("no healthy kube-apiserver: VRRP priority lowered", "by", cfg.Health.Weight)
			} else {
				speaker.AdjustPriority("backends", 0)
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
	// The VIP: a SIGKILLed predecessor may have left it on the interface.
	// The group holds it as the speaker wants and as the kernel has it;
	// when the interface is created again it opens the VRRP socket anew.
	var conn *vrrp.RedialConn
	addr, err := vip.NewGroup(vip.GroupConfig{
		Interface: ifname, Prefixes: []netip.Prefix{cfg.VIP.Primary()}, Source: source,
		OnRebind: func(int) error { return conn.Redial() },
		Clock:    clk, Logger: log,
	})
	if err != nil {
		return err
	}
	defer addr.Close()
	if stale, err := addr.RemoveStale(); err != nil {
		return fmt.Errorf("remove a stale VIP: %w", err)
	} else if len(stale) > 0 {
		log.Warn("removed the VIP left on the interface by a previous holder", "vip", cfg.VIP.Primary(), "interface", ifname)
	}

	var held vrrp.VIP = addr
	var leased *lease
	if cfg.VIP.DHCP {
		if leased, err = newLease(cfg, ifname, clk, log); err != nil {
			return err
		}
		defer leased.close()
		held = leasedVIP{VIP: addr, lease: leased}
	}
	// The proxy closes its connections before the VIP goes.
	closing := &closingVIP{VIP: held, px: px, log: log}

	// One vrrp.Config feeds the socket and the speaker.
	router := vrrp.Config{
		Interface: ifname,
		Primary:   source,
		Peers:     cfg.VRRP.Peers,
		VRID:      cfg.VRRP.VRID,
		Version:   vrrp.Version(cfg.VRRP.Version),
		Priority:  cfg.VRRP.Priority,
		Interval:  cfg.VRRP.AdvertInterval,
		Preempt:   cfg.VRRP.Preempt,
		Password:  password,
		Addrs:     []netip.Addr{cfg.VIP.Primary().Addr()},
	}
	if peers := mem.peers(mem.initial, source); peers != nil {
		router.Peers = peers
	}
	cc := router.ConnConfig()
	cc.OnDrop = newMisconfigWarner(log, clk.Now).drop
	conn, err = vrrp.DialRedial(cc)
	if err != nil {
		return fmt.Errorf("VRRP socket on %s: %w", ifname, err)
	}
	speaker = vrrp.NewSpeaker(vrrp.SpeakerConfig{
		Machine: router.MachineConfig(),
		Clock:   clk,
		Logger:  log,
		// Before the VIP is taken: the first client through it must not
		// be sent to the node whose silence made this takeover.
		OnTransition: func(tr vrrp.Transition) {
			for _, b := range suspectsAfter(tr, backendAddrs(pool)) {
				pool.Suspect(b)
			}
		},
	}, conn, closing)
	handover.setSpeaker(speaker)

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

	// Background parts stop when bgCtx ends, after the VIP is handed over.
	bgCtx, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	sink := memberSink{pool: pool, prober: prober, self: source}
	if len(router.Peers) > 0 {
		sink.setPeers = conn.SetPeers
	}
	tracker := mem.start(bgCtx, sink, clk, "hapod/"+Version)

	sources := status.Sources{
		Routers: []status.Router{{
			Family: config.FamilyOf(cfg.VIP.Primary().Addr()), VRID: cfg.VRRP.VRID, Version: cfg.VRRP.Version,
			Address: source, VRRP: speaker, Drops: conn,
			VIPs: []netip.Prefix{cfg.VIP.Primary()}, Kernel: addr,
		}},
		Proxy: px, Health: prober, Membership: tracker,
	}
	if leased != nil {
		sources.DHCP = leased
	}
	if redir != nil {
		sources.Redirect = redir
	}
	mon.SetSources(sources)
	mon.Install(srv)

	log.Info("hapod starting", "vip", cfg.VIP.Primary(), "interface", ifname, "source", source,
		"vrid", cfg.VRRP.VRID, "version", cfg.VRRP.Version, "priority", cfg.VRRP.Priority,
		"interval", cfg.VRRP.AdvertInterval, "peers", len(cfg.VRRP.Peers), "port", cfg.Proxy.Port,
		"listen_port", cfg.Proxy.ListenPort, "backends", len(mem.initial), "discover", cfg.Membership.Discover)

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
		if !speaker.Ready() {
			return errors.New("initializing")
		}
		return nil
	})
	go srv.Serve(bgCtx)
	go prober.Run(bgCtx)
	if leased != nil {
		go leased.run(bgCtx)
	}
	proxyErr := make(chan error, 1)
	go func() {
		proxyErr <- px.Serve(bgCtx)
		proxyDone.Store(true)
	}()

	// The keeper reports the link's state to the speaker (down while the
	// interface is missing, down, or without this node's own address) and
	// keeps the VIP in line with the speaker's state.
	linkLost := make(chan struct{})
	go func() {
		if err := addr.Run(bgCtx, speaker.SetLink); err != nil {
			log.Error("VIP keeper stopped", "err", err)
			close(linkLost) // netlink failed for good: see supervise
		}
	}()

	// The speaker runs in the foreground: on ctx's end it sends priority 0
	// and keeps the VIP (and the proxy on it serving) until a new holder
	// is heard, then releases it and returns.
	// Its state is recorded before it sees the stop, whatever the cause
	// (SIGTERM, a handover request), for whoever asked to be told.
	speakerCtx, stopSpeaker := context.WithCancel(context.Background())
	defer stopSpeaker()
	defer context.AfterFunc(ctx, func() {
		handover.stopping()
		stopSpeaker()
	})()
	speakerErr := make(chan error, 1)
	go func() { speakerErr <- speaker.Run(speakerCtx) }()
	lock.Serve(func() string {
		state := handover.request()
		log.Info("handover requested through the instance lock (hapod reset): stopping", "state", state)
		requestStop()
		return state
	})
	err = supervise(speakerErr, proxyErr, linkLost, stopSpeaker, log)
	speakerDone.Store(true)
	if redir != nil {
		// The VIP is gone, and the proxy is about to: the endpoint port
		// belongs to the local kube-apiserver again.
		if rerr := redir.Stop(); rerr != nil && err == nil {
			err = rerr
		}
	}
	// The VIP is gone from this node and the connections through it were
	// closed as it went (closingVIP): stop at once, so that the pod exits
	// within a second of SIGTERM.
	closeNow, cancel := context.WithCancel(context.Background())
	cancel()
	if err := px.Shutdown(closeNow); err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("proxy shutdown", "err", err)
	}
	log.Info("stopped")
	return err
}

// closingVIP closes the proxy's connections right before the VIP leaves
// this node, whatever the reason (shutdown, a stronger router, a healed
// split brain, link down): their FINs must still leave from the VIP. Once
// it is gone, clients' packets reach the new holder, and an idle watch
// would hang on this node until its keepalive gave up.
type closingVIP struct {
	vrrp.VIP
	px  *proxy.Proxy // set before the speaker runs
	log *slog.Logger
}

func (v *closingVIP) Release() error {
	if v.px == nil {
		return v.VIP.Release()
	}
	if n := v.px.CloseAll(); n > 0 {
		v.log.Info("closed the connections through the VIP before releasing it", "closed", n)
	}
	return v.VIP.Release()
}

// newRedirect is the switch for VIP:--port to VIP:--listen-port, on a
// netlink socket in hapod's (the host's) network namespace.
func newRedirect(cfg config.Config, clk clock.PassiveClock, log *slog.Logger) (*redirect.Switch, error) {
	nft, err := redirect.NewNFTables()
	if err != nil {
		return nil, fmt.Errorf("--listen-port %d differs from --port %d, so VIP:%d is redirected with nftables: %w",
			cfg.Proxy.ListenPort, cfg.Proxy.Port, cfg.Proxy.Port, err)
	}
	return redirect.NewSwitch(redirect.Spec{
		VIPs:       []netip.Addr{cfg.VIP.Primary().Addr()},
		Port:       cfg.Proxy.Port,
		ListenPort: cfg.Proxy.ListenPort,
	}, nft, clk, log)
}
