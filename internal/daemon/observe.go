package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"os"

	"github.com/hapod/hapod/pkg/health"
	"github.com/hapod/hapod/pkg/proxy"
	"github.com/hapod/hapod/pkg/status"
)

// Version is hapod's version as shown on the status page and in
// hapod_build_info; the CLI sets it from its own.
var Version = "dev"

// newMonitor builds the status Monitor of this node and the logger every
// part must use: it records the Info-and-above lines as the page's recent
// events and counts VRRP transitions from them.
func newMonitor(ifname string, source netip.Addr, log *slog.Logger) (*status.Monitor, *slog.Logger) {
	node, err := os.Hostname()
	if err != nil {
		node = source.String()
	}
	mon := status.NewMonitor(status.MonitorConfig{Info: status.Info{
		Node:      node,
		Version:   Version,
		Interface: ifname,
	}})
	return mon, slog.New(mon.Handler(log.Handler()))
}

// logBackend logs a health checker verdict once, with its cause and the
// number of healthy backends it leaves. Call it before pool.SetHealthy, so
// that the line comes before those of its effects (priority lowered,
// state change).
func logBackend(log *slog.Logger, t health.Transition, pool *proxy.Pool) {
	healthy := pool.Healthy()
	for _, b := range pool.Backends() {
		if b.Addr == t.Backend && b.Healthy() != t.Healthy {
			if t.Healthy {
				healthy++
			} else {
				healthy--
			}
		}
	}
	if t.Healthy {
		log.Info("backend up", "backend", t.Backend, "healthy", healthy)
		return
	}
	log.Warn("backend down", "backend", t.Backend, "err", t.Err, "healthy", healthy)
}

// poolTransitions are the messages the proxy's pool logs on a health
// change. The daemon logs those changes itself, with the failing check's
// error that the pool does not know, so the pool's copies are dropped:
// one line per state change.
var poolTransitions = map[string]bool{"backend up": true, "backend down": true}

// proxyLogger returns the logger for the proxy: log without the pool's
// health transition lines.
func proxyLogger(log *slog.Logger) *slog.Logger {
	return slog.New(&dropMessages{next: log.Handler(), drop: poolTransitions})
}

// dropMessages is a slog.Handler that discards records by message.
type dropMessages struct {
	next slog.Handler
	drop map[string]bool
}

func (d *dropMessages) Enabled(ctx context.Context, l slog.Level) bool {
	return d.next.Enabled(ctx, l)
}

func (d *dropMessages) Handle(ctx context.Context, r slog.Record) error {
	if d.drop[r.Message] {
		return nil
	}
	return d.next.Handle(ctx, r)
}

func (d *dropMessages) WithAttrs(as []slog.Attr) slog.Handler {
	return &dropMessages{next: d.next.WithAttrs(as), drop: d.drop}
}

func (d *dropMessages) WithGroup(name string) slog.Handler {
	return &dropMessages{next: d.next.WithGroup(name), drop: d.drop}
}
