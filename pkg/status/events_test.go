package status

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRecorderKeepsTheNewestFirst(t *testing.T) {
	r := NewRecorder(3)
	if got := r.Events(); len(got) != 0 {
		t.Fatalf("empty recorder has %d events", len(got))
	}
	for i := range 5 {
		r.Add(Event{Message: fmt.Sprint(i)})
		var got []string
		for _, e := range r.Events() {
			got = append(got, e.Message)
		}
		var want []string
		for j := i; j >= 0 && j > i-3; j-- {
			want = append(want, fmt.Sprint(j))
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("after %d adds: %v, want %v", i+1, got, want)
		}
	}
}

func TestTapRecordsInfoAndAboveWhateverTheLogLevel(t *testing.T) {
	var out bytes.Buffer
	r := NewRecorder(10)
	log := slog.New(r.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})))

	log.Debug("advert sent", "priority", 100)
	log.With("vrid", 10).Info("vrrp state change", "from", "Backup", "to", "Active", "reason", "master down timer expired")
	log.WithGroup("g").Warn("backend down", "backend", "198.18.0.11:6443", slog.Group("check", "err", "refused"))

	ev := r.Events()
	if len(ev) != 2 {
		t.Fatalf("recorded %d events, want 2 (Info and Warn, not Debug): %+v", len(ev), ev)
	}
	if ev[0].Message != "backend down" || ev[0].Level != "WARN" || ev[0].Details != `g.backend=198.18.0.11:6443 g.check.err=refused` {
		t.Errorf("newest event = %+v", ev[0])
	}
	if ev[1].Details != `vrid=10 from=Backup to=Active reason="master down timer expired"` {
		t.Errorf("details = %s", ev[1].Details)
	}
	if ev[1].Time.IsZero() || time.Since(ev[1].Time) < 0 {
		t.Errorf("event time %v", ev[1].Time)
	}
	// The log itself keeps its own level: only the Warn line is written.
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "backend down") {
		t.Errorf("log output:\n%s", out.String())
	}
}

func TestTapPassesDebugWhenTheLogWantsIt(t *testing.T) {
	var out bytes.Buffer
	r := NewRecorder(10)
	log := slog.New(r.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	log.Debug("advert sent")
	if !strings.Contains(out.String(), "advert sent") {
		t.Errorf("debug line not logged: %q", out.String())
	}
	if n := len(r.Events()); n != 0 {
		t.Errorf("a debug line became an event (%d events)", n)
	}
}

// A line about one virtual router names it (its family attribute, from
// With or the line itself); a line about the node as a whole names none.
func TestEventFamily(t *testing.T) {
	r := NewRecorder(10)
	log := slog.New(r.Handler(slog.DiscardHandler))
	log.With("family", "ipv6").Info("vrrp state change", "from", "Backup", "to", "Active")
	log.Info("vrrp state change", "family", "ipv4", "from", "Init", "to", "Backup")
	log.Info("vrrp state change", "from", "Init", "to", "Backup")
	log.WithGroup("g").Info("backend up", "family", "ipv4")
	var got []string
	for _, e := range r.Events() {
		got = append(got, string(e.Family))
	}
	if want := []string{"", "", "ipv4", "ipv6"}; !slices.Equal(got, want) {
		t.Errorf("families (newest first) %q, want %q", got, want)
	}
}
