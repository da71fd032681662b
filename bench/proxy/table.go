package main

import (
	"fmt"
	"math"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// The result table: rows of medians for both proxies, and their ratios.

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

func (r *row) add(p int, v float64) { r.vals[p] = append(r.vals[p], v) }

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
