// Command fakeapiserver runs internal/fakeapiserver, a kube-apiserver
// imitation, as a process for end-to-end tests in network namespaces:
//
//	fakeapiserver --listen 198.18.0.11:6443 --name cp1 --ca-out /tmp/ca.crt
//	fakeapiserver --listen 198.18.0.11:6443 --ca-dir /tmp/pki --endpoints-file /tmp/ep.json
//
// Once it listens it prints "ready ADDR ..." (one line per listener) on
// stdout, so a test can wait for that line instead of polling the port.
// SIGTERM or SIGINT stop it with exit status 0; with --shutdown-delay it
// first fails /readyz for that long while still serving, as kube-apiserver
// does with --shutdown-delay-duration; a second signal kills it at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hapod/hapod/internal/fakeapiserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// After the first signal, a second one kills at once (default
	// handling), e.g. to cut a --shutdown-delay short.
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "fakeapiserver:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

type options struct {
	listen        []string
	name          string
	caOut         string
	mode          fakeapiserver.Mode
	slow          time.Duration
	sans          []netip.Addr
	watchInterval time.Duration
	shutdownDelay time.Duration
	caDir         string
	endpointsFile string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	host, _ := os.Hostname()
	o := options{mode: fakeapiserver.ModeOK}
	fs := flag.NewFlagSet("fakeapiserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Func("listen", "`ADDR:PORT` to serve HTTPS on (repeatable; default 127.0.0.1:6443)", func(s string) error {
		o.listen = append(o.listen, s)
		return nil
	})
	fs.StringVar(&o.name, "name", host, "`NAME` answered by /fake/whoami and put in every answer")
	fs.StringVar(&o.caOut, "ca-out", "", "write the CA certificate (PEM) to `FILE` before listening")
	fs.Func("mode", "initial `MODE`: ok, fail (/readyz 500) or slow (default ok)", func(s string) error {
		m, err := fakeapiserver.ParseMode(s)
		o.mode = m
		return err
	})
	fs.DurationVar(&o.slow, "slow", fakeapiserver.DefaultSlowDelay, "how long slow mode delays answers")
	fs.Func("san", "extra certificate IP `ADDR`s, comma-separated (e.g. the VIP)", func(s string) error {
		for f := range strings.SplitSeq(s, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(f))
			if err != nil {
				return err
			}
			o.sans = append(o.sans, a)
		}
		return nil
	})
	fs.DurationVar(&o.watchInterval, "watch-interval", fakeapiserver.DefaultWatchInterval, "time between two lines of a watch stream")
	fs.DurationVar(&o.shutdownDelay, "shutdown-delay", 0, "on SIGTERM, fail /readyz this long while serving before stopping")
	fs.StringVar(&o.caDir, "ca-dir", "", "use the CA in `DIR` (ca.crt, ca.key) instead of a fresh one, so that servers share it")
	fs.StringVar(&o.endpointsFile, "endpoints-file", "", "serve the default/kubernetes Endpoints from `FILE` (JSON, read at every request; 503 while missing) to clients with a certificate of the CA")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected argument %q\n", fs.Arg(0))
		return o, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if len(o.listen) == 0 {
		o.listen = []string{"127.0.0.1:6443"}
	}
	return o, nil
}

// run serves until ctx ends, then stops (after the shutdown delay).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	var srv *fakeapiserver.Server
	if o.caDir != "" {
		ca, err := fakeapiserver.LoadCA(o.caDir)
		if err != nil {
			return fmt.Errorf("--ca-dir: %w", err)
		}
		srv = fakeapiserver.NewWithCA(o.name, ca)
	} else if srv, err = fakeapiserver.New(o.name); err != nil {
		return err
	}
	srv.SetEndpointsFile(o.endpointsFile)
	srv.SetMode(o.mode)
	srv.SetSlowDelay(o.slow)
	srv.SetWatchInterval(o.watchInterval)
	srv.AddSAN(o.sans...)
	if o.caOut != "" {
		if err := srv.WriteCA(o.caOut); err != nil {
			return err
		}
	}

	var listeners []net.Listener
	for _, addr := range o.listen {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return fmt.Errorf("--listen %s: %w", addr, err)
		}
		listeners = append(listeners, l)
	}
	served := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { served <- srv.Serve(l) }()
		fmt.Fprintf(stdout, "ready %s name=%s mode=%s\n", l.Addr(), o.name, o.mode)
	}

	select {
	case <-ctx.Done():
	case err := <-served:
		srv.Close()
		return err
	}
	if o.shutdownDelay > 0 {
		srv.SetMode(fakeapiserver.ModeFail)
		fmt.Fprintf(stdout, "shutting down: /readyz fails for %s\n", o.shutdownDelay)
		time.Sleep(o.shutdownDelay)
	}
	if err := srv.Close(); err != nil {
		return err
	}
	for range listeners {
		if err := <-served; err != nil {
			return err
		}
	}
	return nil
}
