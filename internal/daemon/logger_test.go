package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/health"
	"github.com/hapod/hapod/pkg/vrrp"
)

// With --log-format=json every line is one JSON object with time, level
// and msg, and a state change carries its cause as fields. The logger is
// built as `hapod run` builds it (flag, Config, NewLogger, the Monitor's
// handler) and fed by a real speaker on a fake clock.
func TestJSONLogs(t *testing.T) {
	cfg := config.Default()
	for flag, value := range map[string]string{"log-format": "json", "vip": "198.18.0.10/24", "vrid": "10"} {
		f, ok := config.Lookup(flag)
		if !ok {
			t.Fatalf("no --%s", flag)
		}
		if err := f.Apply(&cfg, []string{value}); err != nil {
			t.Fatal(err)
		}
	}
	source := netip.MustParseAddr("198.18.0.11")
	var out lockedBuffer
	mon, log := newMonitor("eth0", source, newLogger(&out, cfg.Log))

	clk := clocktesting.NewFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	sp := vrrp.NewSpeaker(vrrp.SpeakerConfig{
		Machine: vrrp.MachineConfig{VRID: cfg.VRRP.VRID, Priority: 100, Interval: time.Second,
			Version: vrrp.Version3, Primary: source},
		Clock:  clk,
		Logger: log,
	}, newSilentConn(), nopVIP{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sp.Run(ctx) }()
	// Alone, it goes Init -> Backup -> Active, sending an advert a second
	// (logged at Debug only); then it stops, and its handover times out.
	advance := func() {
		if clk.HasWaiters() {
			clk.Step(time.Second)
		}
		time.Sleep(time.Millisecond)
	}
	for sp.Status().AdvertsSent < 5 {
		advance()
	}
	cancel()
	for stopped := false; !stopped; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			stopped = true
		default:
			advance()
		}
	}
	logBackend(log, health.Transition{Backend: be1, Err: errors.New("connect: connection refused")}, newPool(t, log))

	text := out.String()
	if !strings.HasSuffix(text, "\n") {
		t.Fatalf("output does not end a line:\n%s", text)
	}
	var lines []map[string]any
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		var obj map[string]any
		dec := json.NewDecoder(strings.NewReader(line))
		if err := dec.Decode(&obj); err != nil || dec.More() {
			t.Fatalf("line %d is not one JSON object (%v): %s", i+1, err, line)
		}
		ts, _ := obj["time"].(string)
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("line %d: time %q: %v", i+1, obj["time"], err)
		}
		if obj["level"] == nil || obj["msg"] == nil {
			t.Errorf("line %d lacks level or msg: %s", i+1, line)
		}
		lines = append(lines, obj)
	}

	var changes []map[string]any
	for _, l := range lines {
		switch msg := l["msg"].(string); {
		case msg == "vrrp state change":
			changes = append(changes, l)
		case strings.Contains(msg, "advert sent") || strings.Contains(msg, "advert received"):
			t.Errorf("a line per advert at the default level: %v", l)
		}
	}
	// Numbers decode as float64.
	want := []map[string]any{
		{"level": "INFO", "msg": "vrrp state change", "vrid": 10.0, "from": "Init", "to": "Backup", "reason": "startup"},
		{"level": "INFO", "msg": "vrrp state change", "vrid": 10.0, "from": "Backup", "to": "Active", "reason": "master down timer expired"},
		{"level": "INFO", "msg": "vrrp state change", "vrid": 10.0, "from": "Active", "to": "Init", "reason": "shutdown"},
	}
	if len(changes) != len(want) {
		t.Fatalf("state change lines %v, want %d:\n%s", changes, len(want), text)
	}
	for i, w := range want {
		delete(changes[i], "time")
		if !sameFields(changes[i], w) {
			t.Errorf("state change %d = %v\nwant %v", i, changes[i], w)
		}
	}
	last := lines[len(lines)-1]
	delete(last, "time")
	if w := map[string]any{"level": "WARN", "msg": "backend down", "backend": be1.String(),
		"err": "connect: connection refused", "healthy": 1.0}; !sameFields(last, w) {
		t.Errorf("backend down = %v\nwant %v", last, w)
	}
	// The JSON handler sits behind the Monitor's: the page still gets them.
	var events int
	for _, e := range mon.Report().Events {
		if e.Message == "vrrp state change" {
			events++
		}
	}
	if events != 3 {
		t.Errorf("%d state changes among the page's events, want 3", events)
	}
}

func sameFields(got, want map[string]any) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// lockedBuffer is a bytes.Buffer the speaker's goroutines may write to.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// silentConn is a vrrp.Conn on a LAN with nobody else.
type silentConn struct {
	once   sync.Once
	closed chan struct{}
}

func newSilentConn() *silentConn { return &silentConn{closed: make(chan struct{})} }

func (c *silentConn) Send(*vrrp.Packet) error { return nil }

func (c *silentConn) Receive() (vrrp.Received, error) {
	<-c.closed
	return vrrp.Received{}, net.ErrClosed
}

func (c *silentConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

type nopVIP struct{}

func (nopVIP) Acquire() error { return nil }
func (nopVIP) Release() error { return nil }
