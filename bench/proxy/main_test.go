package main

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

// A wrk 4.1 report (Debian), run with --latency.
const wrkReport = `Running 1s test @ http://127.0.0.1:45773/1k
  2 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   845.16us  483.52us   5.74ms   73.68%
    Req/Sec     5.22k     1.10k    7.77k    70.00%
  Latency Distribution
     50%  828.00us
     75%    1.11ms
     90%    1.31ms
     99%    2.41ms
  10384 requests in 1.00s, 12.47MB read
Requests/sec:  10379.50
Transfer/sec:     12.46MB
`

func TestParseWrk(t *testing.T) {
	got, err := parseWrk(wrkReport)
	if err != nil {
		t.Fatal(err)
	}
	if want := (wrkResult{rps: 10379.5, p50: 828, p99: 2410}); !reflect.DeepEqual(got, want) {
		t.Errorf("parseWrk = %+v, want %+v", got, want)
	}

	failing := strings.Replace(wrkReport, "Requests/sec:", "  Socket errors: connect 0, read 12, write 0, timeout 0\n  Non-2xx or 3xx responses: 3\nRequests/sec:", 1)
	got, err = parseWrk(failing)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Socket errors: connect 0, read 12, write 0, timeout 0", "Non-2xx or 3xx responses: 3"}; !reflect.DeepEqual(got.warnings, want) {
		t.Errorf("warnings = %q, want %q", got.warnings, want)
	}

	for name, out := range map[string]string{
		"empty":          "",
		"no --latency":   strings.Replace(wrkReport, "     99%    2.41ms\n", "", 1),
		"bad rate":       strings.Replace(wrkReport, "10379.50", "lots", 1),
		"bad latency":    strings.Replace(wrkReport, "828.00us", "828.00ns", 1),
		"bad number":     strings.Replace(wrkReport, "2.41ms", "2.4.1ms", 1),
		"no rate at all": strings.Replace(wrkReport, "Requests/sec:  10379.50\n", "", 1),
	} {
		if _, err := parseWrk(out); err == nil {
			t.Errorf("%s: parseWrk accepted it", name)
		}
	}
}

func TestParseWrkDuration(t *testing.T) {
	for in, want := range map[string]float64{"828.00us": 828, "1.11ms": 1110, "2.00s": 2e6, "0.50ms": 500} {
		if got, err := parseWrkDuration(in); err != nil || math.Abs(got-want) > 1e-9 {
			t.Errorf("parseWrkDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "us", "1.2", "1.2m", "abcms"} {
		if _, err := parseWrkDuration(in); err == nil {
			t.Errorf("parseWrkDuration(%q) accepted it", in)
		}
	}
}

func TestRatio(t *testing.T) {
	rate := &row{higherBetter: true}
	latency := &row{higherBetter: false}
	if got := rate.ratio(110, 100); math.Abs(got-1.1) > 1e-9 {
		t.Errorf("throughput ratio = %v, want 1.1 (hapod faster)", got)
	}
	if got := latency.ratio(80, 100); math.Abs(got-1.25) > 1e-9 {
		t.Errorf("latency ratio = %v, want 1.25 (hapod quicker)", got)
	}
	if got := rate.ratio(0, 100); !math.IsNaN(got) || ratioString(got) != "n/a" {
		t.Errorf("ratio with a missing value = %v (%s), want NaN (n/a)", got, ratioString(got))
	}
	if got := ratioString(1.0049); got != "1.00" {
		t.Errorf("ratioString(1.0049) = %q", got)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		in := append([]float64(nil), c.in...)
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
		if !reflect.DeepEqual(in, c.in) {
			t.Errorf("median reordered its input: %v", c.in)
		}
	}
}

func TestPaired(t *testing.T) {
	// The machine slowed down for the second run and both proxies lost
	// half; each run's own ratio is still 1.1.
	r := &row{higherBetter: true, vals: [2][]float64{{110, 55, 99}, {100, 50, 90}}}
	if got := r.paired(); math.Abs(got-1.1) > 1e-9 {
		t.Errorf("paired = %v, want 1.1", got)
	}
	r = &row{higherBetter: true, vals: [2][]float64{{100, 40}, {100, 100}}}
	if got := r.ratio(median(r.vals[0]), median(r.vals[1])); math.Abs(got-0.7) > 1e-9 {
		t.Errorf("ratio of medians = %v, want 0.7", got)
	}
	if got := r.paired(); math.Abs(got-0.7) > 1e-9 {
		t.Errorf("paired = %v, want 0.7 (the mean of 1.0 and 0.4)", got)
	}
}
