// Command hapodproxy runs pkg/proxy with static backends, for the
// proxy benchmark (bench/proxy): no health checks, no VRRP.
//
//	hapodproxy -route 127.0.0.1:18001=127.0.0.1:5201 [-route ...]
//
// It exits cleanly on SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hapod/hapod/pkg/proxy"
)

type routes []string

func (r *routes) String() string     { return strings.Join(*r, ",") }
func (r *routes) Set(s string) error { *r = append(*r, s); return nil }

func main() {
	var rs routes
	flag.Var(&rs, "route", "LISTEN=BACKEND[,BACKEND...] (repeatable)")
	maxConns := flag.Int("max-conns", 60000, "max concurrent connections per route")
	recvBuf := flag.Int("recv-buffer", proxy.DefaultRecvBuffer, "receive buffer per socket in bytes; 0: kernel autotuning")
	splice := flag.Bool("splice", false, "splice bulk streams after 16 MiB instead of copying them (hapod --splice)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile here until exit")
	traceFile := flag.String("trace", "", "write a runtime execution trace here until exit (go tool trace)")
	flag.Parse()
	stop, err := startProfiles(*cpuProfile, *traceFile)
	if err == nil {
		err = run(rs, *maxConns, *recvBuf, *splice)
		stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hapodproxy:", err)
		os.Exit(1)
	}
}

// startProfiles starts a CPU profile and a runtime execution trace into
// the files named ("": not that one) and returns what stops both.
func startProfiles(cpuFile, traceFile string) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for _, f := range stops {
			f()
		}
	}
	for _, p := range []struct {
		file  string
		start func(io.Writer) error
		stop  func()
	}{
		{cpuFile, pprof.StartCPUProfile, pprof.StopCPUProfile},
		{traceFile, trace.Start, trace.Stop},
	} {
		if p.file == "" {
			continue
		}
		f, err := os.Create(p.file)
		if err == nil {
			err = p.start(f)
		}
		if err != nil {
			stop()
			return nil, err
		}
		stops = append(stops, p.stop)
	}
	return stop, nil
}

func run(rs routes, maxConns, recvBuf int, splice bool) error {
	if len(rs) == 0 {
		return errors.New("no -route given")
	}
	if _, err := proxy.RaiseNoFile(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var proxies []*proxy.Proxy
	for _, r := range rs {
		l, bs, err := parseRoute(r)
		if err != nil {
			return err
		}
		cfg := proxy.DefaultConfig(l)
		cfg.MaxConns = maxConns
		cfg.RecvBuffer = recvBuf
		cfg.Splice = splice
		cfg.DrainTimeout = time.Second
		cfg.Logger = log
		p, err := proxy.New(cfg, proxy.NewPool(bs, proxy.LeastConn{}))
		if err != nil {
			return err
		}
		if err := p.Listen(); err != nil {
			return err
		}
		proxies = append(proxies, p)
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(proxies))
	for _, p := range proxies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- p.Serve(ctx)
		}()
	}
	wg.Wait()
	close(errc)
	for _, p := range proxies {
		s := p.Stats()
		fmt.Fprintf(os.Stderr, "hapodproxy: %s: accepted %d, refused %d, no backend %d, dial retries %d, accept errors %d\n",
			p.Addrs()[0], s.Accepted, s.Refused, s.NoBackend, s.Retries, s.AcceptErrors)
	}
	for err := range errc {
		if err != nil && !errors.Is(err, proxy.ErrDrainTimeout) {
			return err
		}
	}
	return nil
}

// parseRoute reads LISTEN=BACKEND[,BACKEND...], each an IP:PORT.
func parseRoute(r string) (netip.AddrPort, []netip.AddrPort, error) {
	listen, backends, ok := strings.Cut(r, "=")
	if !ok {
		return netip.AddrPort{}, nil, fmt.Errorf("route %q: want LISTEN=BACKEND[,BACKEND...]", r)
	}
	l, err := netip.ParseAddrPort(listen)
	if err != nil {
		return netip.AddrPort{}, nil, fmt.Errorf("route %q: %w", r, err)
	}
	var bs []netip.AddrPort
	for _, b := range strings.Split(backends, ",") {
		a, err := netip.ParseAddrPort(b)
		if err != nil {
			return netip.AddrPort{}, nil, fmt.Errorf("route %q: %w", r, err)
		}
		bs = append(bs, a)
	}
	return l, bs, nil
}
