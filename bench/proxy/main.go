// Command proxy benchmarks hapod's L4 proxy (pkg/proxy, run by
// bench/proxy/hapodproxy) against haproxy `mode tcp` side by side on
// loopback, with the same backends for both, and prints a Markdown table
// of medians with two ratios per row: of the medians, and the median of
// each run's ratio. `make bench-proxy` runs it (root, for
// the 20,000-connection row's file limits).
//
// Needs: haproxy, iperf3, wrk, nginx (Debian: nginx-light). Each case runs
// -runs times, alternating which proxy goes first.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
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

// row is one line of the table: a metric measured for both proxies.
type row struct {
	name         string
	unit         string
	higherBetter bool
	vals         [2][]float64
}

func (b *bench) row(name, unit string, higherBetter bool) *row {
	for _, r := range b.results {
		if r.name == name {
			return r
		}
	}
	r := &row{name: name, unit: unit, higherBetter: higherBetter}
	b.results = append(b.results, r)
	return r
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

func (b *bench) build() error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	cmd := exec.Command("go", "build", "-trimpath", "-o", b.path("hapodproxy"), "./bench/proxy/hapodproxy")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build hapodproxy: %v: %s", err, out)
	}
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func freePorts(ps ...*int) error {
	for _, p := range ps {
		var err error
		if *p, err = freePort(); err != nil {
			return err
		}
	}
	return nil
}

// start runs a long-lived helper process, remembered for cleanup by PID.
func (b *bench) start(name, tag string, env []string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(b.path(filepath.Base(name) + "-" + tag + ".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	b.mu.Lock()
	b.procs = append(b.procs, cmd)
	b.mu.Unlock()
	return cmd, nil
}

func (b *bench) cleanup() {
	b.mu.Lock()
	procs := b.procs
	b.procs = nil
	b.mu.Unlock()
	for _, c := range procs {
		terminate(c)
	}
	if *verbose {
		// hapodproxy's exit summary: dial retries, refusals, accept errors.
		logs, _ := filepath.Glob(b.path("hapodproxy-*.log"))
		for _, f := range logs {
			out, _ := os.ReadFile(f)
			for line := range strings.Lines(string(out)) {
				if strings.HasPrefix(line, "hapodproxy: ") {
					fmt.Fprint(os.Stderr, line)
				}
			}
		}
	}
	if b.dir != "" && !*keep {
		os.RemoveAll(b.dir)
	}
}

func waitPort(port int) error {
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return nil
		}
	}
	return fmt.Errorf("nothing listens on port %d", port)
}

const blobSize = 10 << 20

func (b *bench) startBackends() error {
	p := &b.ports
	if err := freePorts(&p.iperf, &p.iperf2, &p.nginx, &p.blob); err != nil {
		return err
	}
	for _, port := range []int{p.iperf, p.iperf2} {
		if _, err := b.start("iperf3", "server", nil, "-s", "-p", strconv.Itoa(port)); err != nil {
			return err
		}
	}
	www := b.path("www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(www, "1k"), []byte(strings.Repeat("x", 1024)), 0o644); err != nil {
		return err
	}
	conf := fmt.Sprintf(`user root;
worker_processes %d;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/nginx.err warn;
worker_rlimit_nofile 20000;
events { worker_connections 16000; }
http {
  access_log off;
  client_body_temp_path %[2]s/cbt; proxy_temp_path %[2]s/pt; fastcgi_temp_path %[2]s/ft;
  uwsgi_temp_path %[2]s/ut; scgi_temp_path %[2]s/st;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:%[3]d backlog=4096;
    root %[4]s;
    location / { }
  }
}
`, *nginxProcs, b.dir, p.nginx, www)
	if err := os.WriteFile(b.path("nginx.conf"), []byte(conf), 0o644); err != nil {
		return err
	}
	if _, err := b.start("nginx", "server", nil, "-p", b.dir, "-c", b.path("nginx.conf"), "-e", b.path("nginx.err")); err != nil {
		return err
	}
	if _, err := serve(p.blob, serveBlob); err != nil {
		return err
	}
	for _, port := range []int{p.iperf, p.iperf2, p.nginx} {
		if err := waitPort(port); err != nil {
			return err
		}
	}
	return nil
}

// serve runs an in-process backend.
func serve(port int, h func(*net.TCPConn)) (net.Listener, error) {
	ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				h(c.(*net.TCPConn))
			}()
		}
	}()
	return ln, nil
}

var blob = make([]byte, blobSize)

// serveBlob sends 10 MiB, then waits for the client to close.
func serveBlob(c *net.TCPConn) {
	c.Write(blob)
	c.CloseWrite()
	io.Copy(io.Discard, c)
}

// serveSink greets with one byte (proof that the path is end to end),
// then holds the connection until the client closes it.
func serveSink(c *net.TCPConn) {
	c.Write([]byte{'!'})
	io.Copy(io.Discard, c)
}

func (b *bench) startProxies() error {
	for i := range b.front {
		f := &b.front[i]
		if err := freePorts(&f.iperf, &f.iperf2, &f.nginx, &f.blob); err != nil {
			return err
		}
		cmd, err := b.startProxy(i, "main", []route{
			{"iperf", f.iperf, b.ports.iperf}, {"iperf2", f.iperf2, b.ports.iperf2}, {"nginx", f.nginx, b.ports.nginx},
			{"blob", f.blob, b.ports.blob},
		})
		if err != nil {
			return err
		}
		b.pid[i] = cmd.Process.Pid
	}
	return nil
}

// route is one frontend port relayed to one backend port.
type route struct {
	name          string
	front, server int
}

// startProxy starts proxy p (0 hapod, 1 haproxy) with routes and waits
// until every frontend accepts.
func (b *bench) startProxy(p int, tag string, routes []route) (*exec.Cmd, error) {
	var cmd *exec.Cmd
	var err error
	if p == 0 {
		args := []string{"-max-conns", strconv.Itoa(b.maxConns)}
		for _, r := range routes {
			args = append(args, "-route", fmt.Sprintf("127.0.0.1:%d=127.0.0.1:%d", r.front, r.server))
		}
		var env []string
		if *hapodEnv != "" {
			env = strings.Split(*hapodEnv, ",")
		}
		cmd, err = b.start(b.path("hapodproxy"), tag, env, args...)
	} else {
		// The usual HA-guide shape (mode tcp, one server), no checks and
		// no logging, like the hapod side.
		var cfg strings.Builder
		fmt.Fprintf(&cfg, "global\n  maxconn %d\ndefaults\n  mode tcp\n  maxconn %d\n", b.maxConns, b.maxConns)
		cfg.WriteString("  timeout connect 3s\n  timeout client 1h\n  timeout server 1h\n")
		for _, r := range routes {
			fmt.Fprintf(&cfg, "listen %s\n  bind 127.0.0.1:%d\n  server s1 127.0.0.1:%d\n", r.name, r.front, r.server)
		}
		file := b.path("haproxy-" + tag + ".cfg")
		if err := os.WriteFile(file, []byte(cfg.String()), 0o644); err != nil {
			return nil, err
		}
		if out, err := exec.Command("haproxy", "-c", "-f", file).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("haproxy config: %v: %s", err, out)
		}
		cmd, err = b.start("haproxy", tag, nil, "-db", "-f", file)
	}
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		if err := waitPort(r.front); err != nil {
			return nil, err
		}
	}
	return cmd, nil
}

// stop ends one helper process by PID.
func (b *bench) stop(cmd *exec.Cmd) {
	b.mu.Lock()
	b.procs = slices.DeleteFunc(b.procs, func(c *exec.Cmd) bool { return c == cmd })
	b.mu.Unlock()
	terminate(cmd)
}

func terminate(c *exec.Cmd) {
	c.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.Process.Kill()
		<-done
	}
}

// procCPU returns the process's user+system CPU time.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which ends with ')'.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	const hz = 100 // USER_HZ
	return time.Duration(ut+st) * time.Second / hz, nil
}

// procRSS returns the process's resident set size in bytes.
func procRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// measureCPU runs f and returns the proxy's CPU use as a percentage of
// one core over f's wall time.
func (b *bench) measureCPU(p int, f func() error) (float64, error) {
	c0, err := procCPU(b.pid[p])
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := f(); err != nil {
		return 0, err
	}
	wall := time.Since(t0)
	c1, err := procCPU(b.pid[p])
	if err != nil {
		return 0, err
	}
	return 100 * float64(c1-c0) / float64(wall), nil
}

func (b *bench) logf(format string, args ...any) {
	if *verbose {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
}

// iperf runs iperf3 through proxy p: clients processes at once, each
// with streams streams to its own iperf3 server. It retries a run that a
// server refused (one serves one test at a time and sometimes still
// finishes the previous one).
//
// Two processes are a case of their own because Debian 12's iperf3
// (3.12) runs all of a client's streams in one thread, and on loopback
// the sending thread also runs the TCP receive processing of the
// proxy's socket unless the proxy holds that socket at the moment, so
// that row measures the client as much as the proxy.
func (b *bench) iperf(p, clients, streams int) error {
	var err error
	for try := range 3 {
		if err = b.iperfOnce(p, clients, streams); err == nil {
			return nil
		}
		b.logf("%s iperf3 try %d: %v", proxyNames[p], try+1, err)
		time.Sleep(time.Second)
	}
	return err
}

func (b *bench) iperfOnce(p, clients, streams int) error {
	ports := []int{b.front[p].iperf, b.front[p].iperf2}[:clients]
	bps := make([]float64, clients)
	cpu, err := b.measureCPU(p, func() error {
		errs := make([]error, clients)
		var wg sync.WaitGroup
		for i, port := range ports {
			wg.Go(func() { bps[i], errs[i] = runIperf(port, streams) })
		}
		wg.Wait()
		return errors.Join(errs...)
	})
	if err != nil {
		return err
	}
	var gbps float64
	for _, v := range bps {
		gbps += v / 1e9
	}
	name := fmt.Sprintf("iperf3 %d stream", clients*streams)
	if clients*streams > 1 {
		name += "s"
	}
	if clients > 1 {
		name += fmt.Sprintf(", %d processes", clients)
	}
	b.row(name+": throughput", "Gbit/s", true).add(p, gbps)
	b.row(name+": proxy CPU per GB", "ms", false).add(p, cpu/100*1000/(gbps/8))
	b.logf("%s %s: %.2f Gbit/s, CPU %.0f%%", proxyNames[p], name, gbps, cpu)
	return nil
}

// runIperf runs one iperf3 client to port and returns what its server
// received, in bits per second.
func runIperf(port, streams int) (float64, error) {
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	out, err := exec.Command("iperf3", "-c", "127.0.0.1", "-p", strconv.Itoa(port),
		"-t", strconv.Itoa(int(iperfDur.Seconds())), "-P", strconv.Itoa(streams), "-J").Output()
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		return 0, fmt.Errorf("iperf3: %v %v", err, jerr)
	}
	if res.Error != "" {
		return 0, fmt.Errorf("iperf3: %s", res.Error)
	}
	return res.End.SumReceived.BitsPerSecond, nil
}

func (r *row) add(p int, v float64) { r.vals[p] = append(r.vals[p], v) }

// parseWrkDuration turns wrk's "828.00us", "1.11ms" or "2.00s" into µs.
func parseWrkDuration(s string) (float64, error) {
	for _, u := range [...]struct {
		suffix string
		us     float64
	}{{"us", 1}, {"ms", 1e3}, {"s", 1e6}} { // "s" last: it ends the others
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("wrk duration %q", s)
			}
			return f * u.us, nil
		}
	}
	return 0, fmt.Errorf("wrk duration %q", s)
}

func (b *bench) wrk(p int, close bool) error {
	args := []string{"-t", strconv.Itoa(*wrkThreads), "-c", strconv.Itoa(*wrkConns),
		"-d", strconv.Itoa(int(wrkDur.Seconds())) + "s", "--latency"}
	name := "HTTP 1 KiB keep-alive"
	if close {
		args = append(args, "-H", "Connection: close")
		name = "HTTP 1 KiB new connection per request"
	}
	args = append(args, fmt.Sprintf("http://127.0.0.1:%d/1k", b.front[p].nginx))
	var out []byte
	cpu, err := b.measureCPU(p, func() error {
		var err error
		out, err = exec.Command("wrk", args...).CombinedOutput()
		return err
	})
	if err != nil {
		return fmt.Errorf("wrk: %v: %s", err, out)
	}
	res, err := parseWrk(string(out))
	if err != nil {
		return err
	}
	for _, w := range res.warnings {
		fmt.Fprintf(os.Stderr, "warning: %s via %s: %s\n", name, proxyNames[p], w)
	}
	b.row(name+": requests", "req/s", true).add(p, res.rps)
	b.row(name+": p50 latency", "µs", false).add(p, res.p50)
	b.row(name+": p99 latency", "µs", false).add(p, res.p99)
	// CPU% is a share of a fixed wall time: per request it compares
	// proxies that served different rates.
	b.row(name+": proxy CPU per request", "µs", false).add(p, cpu/100*1e6/res.rps)
	b.logf("%s %s: %.0f req/s p50 %.0fµs p99 %.0fµs CPU %.0f%%", proxyNames[p], name, res.rps, res.p50, res.p99, cpu)
	return nil
}

// wrkResult is what a wrk --latency run reports: requests per second,
// p50 and p99 latency in µs, and its lines about failed requests.
type wrkResult struct {
	rps, p50, p99 float64
	warnings      []string
}

func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		var err error
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			r.rps, err = strconv.ParseFloat(f[1], 64)
		case len(f) == 2 && f[0] == "50%":
			r.p50, err = parseWrkDuration(f[1])
		case len(f) == 2 && f[0] == "99%":
			r.p99, err = parseWrkDuration(f[1])
		case len(f) > 0 && (f[0] == "Socket" || f[0] == "Non-2xx"):
			r.warnings = append(r.warnings, strings.TrimSpace(line))
		}
		if err != nil {
			return wrkResult{}, fmt.Errorf("wrk output %q: %w", strings.TrimSpace(line), err)
		}
	}
	if r.rps == 0 || r.p50 == 0 || r.p99 == 0 {
		return wrkResult{}, fmt.Errorf("wrk: no result (run with --latency): %s", out)
	}
	return r, nil
}

// transfer times 10 MiB downloads through the proxy.
func (b *bench) transfer(p int) error {
	addr := fmt.Sprintf("127.0.0.1:%d", b.front[p].blob)
	buf := make([]byte, 256<<10)
	var times []float64
	for range *transfers {
		t0 := time.Now()
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			return err
		}
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, buf)
		c.Close()
		if err != nil {
			return err
		}
		if n != blobSize {
			return fmt.Errorf("got %d bytes, want %d", n, blobSize)
		}
		times = append(times, float64(time.Since(t0))/float64(time.Millisecond))
	}
	b.row("10 MiB transfer: time", "ms", false).add(p, median(times))
	b.logf("%s 10 MiB: %.2f ms", proxyNames[p], median(times))
	return nil
}

// idle opens -idle connections through a freshly started proxy (so its
// memory is what the idle connections cost, not what earlier cases
// left), each proven end to end by the sink's greeting byte, holds them,
// and reads the proxy's RSS and CPU time.
func (b *bench) idle(p int) error {
	// A sink of its own per run: the proxy closes first towards the sink,
	// so each run leaves its connections in TIME_WAIT on the proxy's
	// side, for a minute. Connecting to the same sink port again, every
	// ephemeral port tried collides with one of those, and the kernel's
	// port search (__inet_check_established in perf) then cost more CPU
	// than the proxy itself: hapod spent 260 ms to open 9,700
	// connections in a first run and 1.1 s in each run after it.
	var port, sinkPort int
	if err := freePorts(&port, &sinkPort); err != nil {
		return err
	}
	sink, err := serve(sinkPort, serveSink)
	if err != nil {
		return err
	}
	defer sink.Close()
	cmd, err := b.startProxy(p, "idle", []route{{"sink", port, sinkPort}})
	if err != nil {
		return err
	}
	defer b.stop(cmd)
	pid := cmd.Process.Pid
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	n := *idleConns
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	rss0, err := procRSS(pid)
	if err != nil {
		return err
	}
	c0, err := procCPU(pid)
	if err != nil {
		return err
	}
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	workers := 64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var d net.Dialer
			one := make([]byte, 1)
			for i := w; i < n; i += workers {
				c, err := d.DialContext(ctx, "tcp4", addr)
				if err == nil {
					c.SetReadDeadline(time.Now().Add(30 * time.Second))
					_, err = io.ReadFull(c, one)
					c.SetReadDeadline(time.Time{})
				}
				if err != nil {
					select {
					case errc <- fmt.Errorf("connection %d: %w", i, err):
					default:
					}
					cancel()
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	open := time.Since(t0)
	time.Sleep(*idleHold)
	rss1, err := procRSS(pid)
	if err != nil {
		return err
	}
	c1, err := procCPU(pid)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%d idle connections", n)
	b.row(name+": time to open", "ms", false).add(p, float64(open)/float64(time.Millisecond))
	b.row(name+": proxy RSS", "MiB", false).add(p, float64(rss1)/(1<<20))
	b.row(name+": proxy RSS per connection", "KiB", false).add(p, float64(rss1-rss0)/1024/float64(n))
	b.row(name+": proxy CPU to open and hold", "ms", false).add(p, float64(c1-c0)/float64(time.Millisecond))
	b.logf("%s idle: open %v, RSS %.1f MiB (+%.1f), CPU %v", proxyNames[p], open, float64(rss1)/(1<<20), float64(rss1-rss0)/(1<<20), c1-c0)
	return nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (b *bench) print() {
	hv, _ := exec.Command("haproxy", "-v").Output()
	hver, _, _ := strings.Cut(string(hv), "\n")
	fmt.Printf("## hapod proxy vs haproxy (loopback, %d CPUs, median of %d runs each, alternating)\n\n", runtime.NumCPU(), *runs)
	fmt.Printf("haproxy: %s; nginx workers: %d; wrk -t%d -c%d -d%v; iperf3 -t %v.\n", strings.TrimSpace(hver), *nginxProcs, *wrkThreads, *wrkConns, *wrkDur, *iperfDur)
	fmt.Printf("ratio > 1 means hapod is better (hapod/haproxy for throughput, haproxy/hapod for time, latency, CPU, memory).\n")
	fmt.Printf("ratio: of the two medians; paired: the median of each run's ratio (both proxies back to back), which cancels the machine's drift between runs.\n\n")
	fmt.Println("| case | unit | hapod | haproxy | ratio | paired |")
	fmt.Println("|---|---|---:|---:|---:|---:|")
	for _, r := range b.results {
		h, x := median(r.vals[0]), median(r.vals[1])
		fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", r.name, r.unit, num(h), num(x), ratioString(r.ratio(h, x)), ratioString(r.paired()))
	}
}

// paired is the median of each run's ratio: run i of hapod against run i
// of haproxy, measured back to back.
func (r *row) paired() float64 {
	var rs []float64
	for i := range min(len(r.vals[0]), len(r.vals[1])) {
		rs = append(rs, r.ratio(r.vals[0][i], r.vals[1][i]))
	}
	return median(rs)
}

// ratio is hapod's value h against haproxy's x, > 1 when hapod is better;
// NaN when either is not positive.
func (r *row) ratio(h, x float64) float64 {
	if h <= 0 || x <= 0 {
		return math.NaN()
	}
	if r.higherBetter {
		return h / x
	}
	return x / h
}

func ratioString(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func num(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
