package lab

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Probe defaults: fine enough to resolve a sub-second VRRP failover, short
// enough a timeout that a dead VIP is noticed within a few intervals.
const (
	DefaultProbeInterval = 10 * time.Millisecond
	DefaultProbeTimeout  = 50 * time.Millisecond
)

// ProbeConfig configures a Probe.
type ProbeConfig struct {
	// Target is the address probed with TCP connects (and ICMP echoes).
	Target netip.AddrPort
	// Interval between attempts; default DefaultProbeInterval. Attempts
	// start on schedule even when earlier ones are still waiting.
	Interval time.Duration
	// Timeout of one attempt; default DefaultProbeTimeout.
	Timeout time.Duration
	// ICMP also sends an echo request to Target's address every interval;
	// the results are in ProbeResult.ICMP. Default off.
	ICMP bool
	// ReadGreeting reads the first line the server sends (a TCPServer's
	// node name) into Sample.Served; a connection that closes without one
	// counts as failed. Default off: a completed connect is a success.
	ReadGreeting bool
	// Request, when set, is the attempt instead of a TCP connect: what a
	// real client does (an HTTPS GET through a proxy, say), with ctx
	// ending at Timeout. It returns who served it, for Sample.Served, or
	// why it failed.
	Request func(ctx context.Context) (served string, err error)
}

// Sample is one probe attempt.
type Sample struct {
	// At is when the attempt started.
	At time.Time
	// OK tells whether it succeeded within the timeout.
	OK bool
	// RTT is how long success took (connect, or echo reply).
	RTT time.Duration
	// Served is the server's greeting (ProbeConfig.ReadGreeting).
	Served string
	// Err is why it failed.
	Err error
}

// Probe measures a target's availability from one node: what a client of
// the VIP sees during a failover.
type Probe struct {
	cfg    ProbeConfig
	from   *Node
	cancel context.CancelFunc
	loop   sync.WaitGroup // the scheduler
	tries  sync.WaitGroup // attempts in flight

	mu   sync.Mutex
	tcp  []Sample
	icmp *echoer

	stopOnce sync.Once
	result   ProbeResult
}

// StartProbe starts probing target with TCP connects from the node every
// interval (0 means DefaultProbeInterval) until Stop or ctx ends.
func StartProbe(ctx context.Context, from *Node, target netip.AddrPort, interval time.Duration) *Probe {
	p, err := StartProbeConfig(ctx, from, ProbeConfig{Target: target, Interval: interval})
	if err != nil {
		// Only the ICMP socket can fail, and it is off here.
		panic(err)
	}
	return p
}

// StartProbeConfig starts a probe with all options. It fails only when
// ProbeConfig.ICMP is set and the raw ICMP socket can't be opened.
func StartProbeConfig(ctx context.Context, from *Node, cfg ProbeConfig) (*Probe, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultProbeInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultProbeTimeout
	}
	p := &Probe{cfg: cfg, from: from}
	if cfg.ICMP {
		e, err := newEchoer(from, cfg.Target.Addr(), cfg.Timeout)
		if err != nil {
			return nil, err
		}
		p.icmp = e
	}
	ctx, p.cancel = context.WithCancel(ctx)
	p.loop.Add(1)
	go p.run(ctx)
	return p, nil
}

func (p *Probe) run(ctx context.Context) {
	defer p.loop.Done()
	tick := time.NewTicker(p.cfg.Interval)
	defer tick.Stop()
	for {
		now := time.Now()
		p.tries.Add(1)
		go p.attempt(now)
		if p.icmp != nil {
			p.icmp.send(now)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// attempt is one TCP connect (and greeting read), or one Request.
func (p *Probe) attempt(at time.Time) {
	defer p.tries.Done()
	s := Sample{At: at}
	// Not derived from the probe's context: Stop must not turn attempts
	// in flight into failures.
	actx, cancel := context.WithTimeout(context.Background(), p.cfg.Timeout)
	defer cancel()
	var c net.Conn
	var err error
	if p.cfg.Request != nil {
		s.Served, err = p.cfg.Request(actx)
	} else {
		c, err = p.from.Dial(actx, "tcp", p.cfg.Target.String())
	}
	if c != nil {
		if p.cfg.ReadGreeting {
			s.Served, err = readGreeting(actx, c)
		}
		c.Close()
	}
	s.RTT = time.Since(at)
	s.OK = err == nil
	s.Err = err
	if !s.OK {
		s.RTT = 0
	}
	p.mu.Lock()
	p.tcp = append(p.tcp, s)
	p.mu.Unlock()
}

func readGreeting(ctx context.Context, c net.Conn) (string, error) {
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetReadDeadline(d)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("greeting: %w", err)
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// Stop ends the probe, waits for the attempts in flight (at most one
// timeout) and summarises. Calling it again returns the same result.
func (p *Probe) Stop() ProbeResult {
	p.stopOnce.Do(func() {
		p.cancel()
		p.loop.Wait()
		p.tries.Wait()
		p.mu.Lock()
		p.result = Summarize(p.tcp)
		p.mu.Unlock()
		if p.icmp != nil {
			r := Summarize(p.icmp.stop())
			p.result.ICMP = &r
		}
	})
	return p.result
}

// Snapshot summarises the TCP attempts completed so far while the probe
// keeps running, so a test can wait for a condition on it (say, the last
// attempt succeeding on the new master).
func (p *Probe) Snapshot() ProbeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Summarize(p.tcp)
}

// LastSample is the most recently started attempt that has completed.
func (r ProbeResult) LastSample() (Sample, bool) {
	if len(r.Samples) == 0 {
		return Sample{}, false
	}
	return r.Samples[len(r.Samples)-1], true
}

// Outage is a run of consecutive failed attempts.
type Outage struct {
	// Start is the last success before the first failure, or the first
	// failure when the probe had not succeeded before.
	Start time.Time
	// End is the first success after the last failure; zero when the probe
	// stopped before the target recovered.
	End time.Time
	// FirstFailure and LastFailure are the start times of the outage's
	// first and last failed attempts.
	FirstFailure, LastFailure time.Time
	// Failures is the number of failed attempts.
	Failures int
	// Recovered tells whether a success followed.
	Recovered bool
	// Duration is End-Start, or LastFailure-Start without recovery: the
	// client's view of the outage, accurate to one probe interval.
	Duration time.Duration
}

// ProbeResult summarises a probe's samples.
type ProbeResult struct {
	// Attempts and Failures count the samples.
	Attempts, Failures int
	// Outages are the contiguous failed periods, in time order.
	Outages []Outage
	// Samples are all attempts sorted by start time.
	Samples []Sample
	// First and Last are the start times of the first and last samples.
	First, Last time.Time
	// ICMP is the same summary for the echo probes, when enabled.
	ICMP *ProbeResult
}

// Summarize turns samples (in any order) into a ProbeResult. It is pure:
// benchmarks and unit tests feed it recorded samples.
func Summarize(samples []Sample) ProbeResult {
	s := slices.Clone(samples)
	slices.SortStableFunc(s, func(a, b Sample) int { return a.At.Compare(b.At) })
	r := ProbeResult{Attempts: len(s), Samples: s}
	if len(s) == 0 {
		return r
	}
	r.First, r.Last = s[0].At, s[len(s)-1].At
	var lastOK time.Time
	var cur *Outage
	for _, x := range s {
		if x.OK {
			if cur != nil {
				cur.End = x.At
				cur.Recovered = true
				cur.Duration = cur.End.Sub(cur.Start)
				r.Outages = append(r.Outages, *cur)
				cur = nil
			}
			lastOK = x.At
			continue
		}
		r.Failures++
		if cur == nil {
			start := lastOK
			if start.IsZero() {
				start = x.At
			}
			cur = &Outage{Start: start, FirstFailure: x.At}
		}
		cur.LastFailure = x.At
		cur.Failures++
	}
	if cur != nil {
		cur.Duration = cur.LastFailure.Sub(cur.Start)
		r.Outages = append(r.Outages, *cur)
	}
	return r
}

// LongestOutage is the longest outage's Duration, 0 without failures.
func (r ProbeResult) LongestOutage() time.Duration {
	var d time.Duration
	for _, o := range r.Outages {
		d = max(d, o.Duration)
	}
	return d
}

// OutageAt returns the outage containing or following a fault injected at
// t: the first outage that had not ended by t.
func (r ProbeResult) OutageAt(t time.Time) (Outage, bool) {
	for _, o := range r.Outages {
		if o.Recovered && !o.End.After(t) {
			continue
		}
		return o, true
	}
	return Outage{}, false
}

// OutageAfter is how long after a fault injected at t the target answered
// again: the first success after the outage containing or following t, minus
// t. It is 0 when there was no such outage, and runs to the last sample
// when the target never recovered (check OutageAt's Recovered).
func (r ProbeResult) OutageAfter(t time.Time) time.Duration {
	o, ok := r.OutageAt(t)
	switch {
	case !ok:
		return 0
	case o.Recovered:
		return o.End.Sub(t)
	default:
		return r.Last.Sub(t)
	}
}

// ServedBy counts successful samples per greeting (ProbeConfig.ReadGreeting).
func (r ProbeResult) ServedBy() map[string]int {
	m := map[string]int{}
	for _, s := range r.Samples {
		if s.OK {
			m[s.Served]++
		}
	}
	return m
}

// String is a one-line summary for t.Logf.
func (r ProbeResult) String() string {
	return fmt.Sprintf("%d attempts, %d failed, %d outages, longest %v",
		r.Attempts, r.Failures, len(r.Outages), r.LongestOutage())
}
