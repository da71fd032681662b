package lab

import (
	"errors"
	"testing"
	"time"
)

// samples builds a probe transcript: one character per 10 ms interval,
// '+' a success, '-' a failure.
func samples(t0 time.Time, pattern string) []Sample {
	var out []Sample
	for i, c := range pattern {
		s := Sample{At: t0.Add(time.Duration(i) * 10 * time.Millisecond), OK: c == '+'}
		if !s.OK {
			s.Err = errors.New("timeout")
		}
		out = append(out, s)
	}
	return out
}

func TestSummarize(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 10 * time.Millisecond) }
	for _, tc := range []struct {
		name     string
		pattern  string
		failures int
		outages  []Outage
		longest  time.Duration
	}{
		{name: "empty", pattern: ""},
		{name: "all good", pattern: "+++++"},
		{
			name: "one outage", pattern: "++---++", failures: 3,
			outages: []Outage{{Start: at(1), End: at(5), FirstFailure: at(2), LastFailure: at(4),
				Failures: 3, Recovered: true, Duration: 40 * time.Millisecond}},
			longest: 40 * time.Millisecond,
		},
		{
			name: "two outages, longest second", pattern: "+-+--+", failures: 3,
			outages: []Outage{
				{Start: at(0), End: at(2), FirstFailure: at(1), LastFailure: at(1), Failures: 1, Recovered: true, Duration: 20 * time.Millisecond},
				{Start: at(2), End: at(5), FirstFailure: at(3), LastFailure: at(4), Failures: 2, Recovered: true, Duration: 30 * time.Millisecond},
			},
			longest: 30 * time.Millisecond,
		},
		{
			name: "failing from the start", pattern: "--+", failures: 2,
			outages: []Outage{{Start: at(0), End: at(2), FirstFailure: at(0), LastFailure: at(1),
				Failures: 2, Recovered: true, Duration: 20 * time.Millisecond}},
			longest: 20 * time.Millisecond,
		},
		{
			name: "never recovered", pattern: "++---", failures: 3,
			outages: []Outage{{Start: at(1), FirstFailure: at(2), LastFailure: at(4),
				Failures: 3, Duration: 30 * time.Millisecond}},
			longest: 30 * time.Millisecond,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := samples(t0, tc.pattern)
			// Attempts complete out of order; Summarize sorts by start.
			for i := 0; i+1 < len(in); i += 2 {
				in[i], in[i+1] = in[i+1], in[i]
			}
			r := Summarize(in)
			if r.Attempts != len(tc.pattern) || r.Failures != tc.failures {
				t.Errorf("attempts, failures = %d, %d; want %d, %d", r.Attempts, r.Failures, len(tc.pattern), tc.failures)
			}
			if len(r.Outages) != len(tc.outages) {
				t.Fatalf("outages = %+v, want %+v", r.Outages, tc.outages)
			}
			for i := range tc.outages {
				if r.Outages[i] != tc.outages[i] {
					t.Errorf("outage %d = %+v, want %+v", i, r.Outages[i], tc.outages[i])
				}
			}
			if got := r.LongestOutage(); got != tc.longest {
				t.Errorf("LongestOutage = %v, want %v", got, tc.longest)
			}
		})
	}
}

func TestOutageAfter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 10 * time.Millisecond) }
	r := Summarize(samples(t0, "+-++++---+++---"))
	for _, tc := range []struct {
		name      string
		fault     time.Time
		want      time.Duration
		recovered bool
	}{
		// Fault injected at 35 ms: the earlier blip (ended at 20 ms) is not
		// its outage; the next one ends with the success at 90 ms.
		{"following", at(3).Add(5 * time.Millisecond), 55 * time.Millisecond, true},
		// Inside the outage that starts at 50 ms.
		{"containing", at(7), 20 * time.Millisecond, true},
		// The last outage never recovers: measured to the last sample.
		{"unrecovered", at(11), 30 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.OutageAfter(tc.fault); got != tc.want {
				t.Errorf("OutageAfter = %v, want %v", got, tc.want)
			}
			o, ok := r.OutageAt(tc.fault)
			if !ok || o.Recovered != tc.recovered {
				t.Errorf("OutageAt = %+v, %v; want recovered %v", o, ok, tc.recovered)
			}
		})
	}
	clean := Summarize(samples(t0, "+++"))
	if got := clean.OutageAfter(at(1)); got != 0 {
		t.Errorf("no failures: OutageAfter = %v, want 0", got)
	}
	if _, ok := clean.OutageAt(at(1)); ok {
		t.Errorf("no failures: OutageAt found one")
	}
}

func TestServedBy(t *testing.T) {
	r := Summarize([]Sample{
		{At: time.Unix(1, 0), OK: true, Served: "node0"},
		{At: time.Unix(2, 0), Err: errors.New("refused")},
		{At: time.Unix(3, 0), OK: true, Served: "node1"},
		{At: time.Unix(4, 0), OK: true, Served: "node1"},
	})
	got := r.ServedBy()
	if len(got) != 2 || got["node0"] != 1 || got["node1"] != 2 {
		t.Errorf("ServedBy = %v", got)
	}
	if last, ok := r.LastSample(); !ok || last.Served != "node1" {
		t.Errorf("LastSample = %+v, %v", last, ok)
	}
}
