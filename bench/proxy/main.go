// Command proxy benchmarks hapod's L4 proxy (pkg/proxy, run by
// bench/proxy/hapodproxy) against haproxy `mode tcp` side by side on
// loopback, with the same backends for both, and prints a Markdown table
// of medians with two ratios per row: of the medians, and the median of
// each run's ratio. `make bench-proxy` runs it (root, for
// the 20,000-connection row's file limits).
//
// Needs: haproxy, iperf3, wrk, nginx (Debian: nginx-light). Each case runs
// -runs times, alternating which proxy goes first.
//
// One file per job: main.go the cases and their order, backends.go and
// nginx.go what both proxies relay to, proxies.go and haproxy.go the
// contenders, iperf3.go, wrk.go, transfer.go and idle.go one case each,
// table.go the result table, process.go starting, stopping and measuring
// the processes.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var (
	runs       = flag.Int("runs", 3, "runs per case and proxy (medians are printed)")
	wrkDur     = flag.Duration("wrk-duration", 10*time.Second, "wrk run length")
	wrkConns   = flag.Int("wrk-conns", 50, "wrk connections")
	wrkThreads = flag.Int("wrk-threads", 2, "wrk threads")
	iperfDur   = flag.Duration("iperf-duration", 5*time.Second, "iperf3 run length")
	transfers  = flag.Int("transfers", 10, "10 MiB transfers per run")
	idleConns  = flag.Int("idle", 20000, "concurrent idle connections")
	idleHold   = flag.Duration("idle-hold", 5*time.Second, "how long the idle connections are held")
	only       = flag.String("only", "", "comma-separated cases to run: iperf1,iperf4,iperf2x2,wrk-ka,wrk-close,10mib,idle (default all)")
	hapodEnv   = flag.String("hapod-env", "", "extra environment for hapodproxy, comma-separated K=V")
	nginxProcs = flag.Int("nginx-workers", 1, "nginx worker processes")
	keep       = flag.Bool("keep", false, "keep the temporary directory")
	verbose    = flag.Bool("v", false, "print every run")
)

func main() {
	flag.Parse()
	b := &bench{maxConns: 60000}
	err := b.run()
	b.cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-proxy:", err)
		os.Exit(1)
	}
}

// proxyKind names the two contenders; hapod is index 0.
var proxyNames = []string{"hapod", "haproxy"}

type bench struct {
	dir      string
	maxConns int // per proxy, fitted to the open-file limit
	procs    []*exec.Cmd
	mu       sync.Mutex

	// iperf2 is a second iperf3 server (one serves one test at a time)
	// for the case with two client processes.
	ports struct {
		iperf, iperf2, nginx, blob int
	}
	front [2]struct{ iperf, iperf2, nginx, blob int }
	pid   [2]int

	results []*row
}

func (b *bench) run() error {
	for _, tool := range []string{"haproxy", "iperf3", "wrk", "nginx"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not installed (Debian: apt-get install haproxy iperf3 wrk nginx-light)", tool)
		}
	}
	// 20,000 relayed connections: the client and the sink here hold
	// 40,000 descriptors and each proxy as many; children inherit this.
	// Without CAP_SYS_RESOURCE the hard limit stays, and both proxies'
	// maxconn and the idle case shrink to fit it (two descriptors per
	// relayed connection).
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 200000, Max: 200000}); err != nil {
		var r unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
			return err
		}
		r.Cur = r.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
			return err
		}
		b.maxConns = min(b.maxConns, int(r.Max-400)/2)
		if *idleConns > b.maxConns-100 {
			fmt.Fprintf(os.Stderr, "warning: open-file limit %d (cannot raise: %v): idle case reduced to %d connections\n",
				r.Max, err, b.maxConns-100)
			*idleConns = b.maxConns - 100
		}
	}
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigc
		b.cleanup()
		os.Exit(130)
	}()

	var err error
	if b.dir, err = os.MkdirTemp("", "hapod-bench-proxy-"); err != nil {
		return err
	}
	if err := b.build(); err != nil {
		return err
	}
	if err := b.startBackends(); err != nil {
		return err
	}
	if err := b.startProxies(); err != nil {
		return err
	}
	cases := []struct {
		name string
		fn   func(p, run int) error
	}{
		{"iperf1", func(p, _ int) error { return b.iperf(p, 1, 1) }},
		{"iperf4", func(p, _ int) error { return b.iperf(p, 1, 4) }},
		{"iperf2x2", func(p, _ int) error { return b.iperf(p, 2, 2) }},
		{"wrk-ka", func(p, _ int) error { return b.wrk(p, false) }},
		{"wrk-close", func(p, _ int) error { return b.wrk(p, true) }},
		{"10mib", func(p, _ int) error { return b.transfer(p) }},
		{"idle", func(p, _ int) error { return b.idle(p) }},
	}
	want := map[string]bool{}
	for _, c := range strings.Split(*only, ",") {
		if c != "" {
			want[c] = true
		}
	}
	for _, c := range cases {
		if len(want) > 0 && !want[c.name] {
			continue
		}
		for run := range *runs {
			order := []int{0, 1}
			if run%2 == 1 {
				order = []int{1, 0}
			}
			for _, p := range order {
				if err := c.fn(p, run); err != nil {
					return fmt.Errorf("%s via %s: %w", c.name, proxyNames[p], err)
				}
			}
		}
	}
	b.print()
	return nil
}

func (b *bench) path(name string) string { return filepath.Join(b.dir, name) }
