package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// wrk: 1 KiB HTTP requests, keep-alive or a new connection each.

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
