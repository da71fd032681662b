package status

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hapod/hapod/pkg/config"
)

// DefaultEvents is how many recent events a Recorder keeps by default.
const DefaultEvents = 50

// Event is one state change (or warning) as it was logged.
type Event struct {
	Time  time.Time `json:"time"`
	Level string    `json:"level"`
	// Message is the log line's message, e.g. "vrrp state change".
	Message string `json:"message"`
	// Family is the virtual router the line is about: its family
	// attribute; empty when it has none, as lines about the node as a
	// whole have not.
	Family config.Family `json:"family,omitempty"`
	// Details are the line's attributes as key=value pairs, in order.
	Details string `json:"details,omitempty"`
}

// familyKey is the attribute that names a line's virtual router.
const familyKey = "family"

// Recorder keeps the last events logged at Info or above. hapod logs one
// Info line per state change and nothing per packet or connection at
// Info, so "the recent Info-and-above log lines" is exactly "the recent
// state changes": the status page shows them without a second, parallel
// event API that could drift from the logs.
type Recorder struct {
	mu   sync.Mutex
	ring []Event
	next int // where the next event goes
	full bool
}

// NewRecorder keeps the last n events (DefaultEvents if n <= 0).
func NewRecorder(n int) *Recorder {
	if n <= 0 {
		n = DefaultEvents
	}
	return &Recorder{ring: make([]Event, n)}
}

// Add records an event.
func (r *Recorder) Add(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ring[r.next] = e
	r.next++
	if r.next == len(r.ring) {
		r.next, r.full = 0, true
	}
}

// Events returns the recorded events, newest first.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.ring)
	}
	out := make([]Event, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.ring[(r.next-i+len(r.ring))%len(r.ring)])
	}
	return out
}

// Handler returns a slog.Handler that passes every record to next, as
// next's level allows, and records those at Info or above, whatever the
// configured log level: --log-level=warn must not empty the status page.
func (r *Recorder) Handler(next slog.Handler) slog.Handler {
	return &tap{rec: r, next: next}
}

// tap is the slog.Handler of Recorder.Handler.
type tap struct {
	rec    *Recorder
	next   slog.Handler
	attrs  []slog.Attr // from WithAttrs, keys already group-qualified
	prefix string      // open groups, "a.b."
}

func (t *tap) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || t.next.Enabled(ctx, l)
}

func (t *tap) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelInfo {
		attrs := append([]slog.Attr(nil), t.attrs...)
		rec.Attrs(func(a slog.Attr) bool {
			attrs = append(attrs, qualify(t.prefix, a)...)
			return true
		})
		t.rec.Add(Event{Time: rec.Time, Level: rec.Level.String(), Message: rec.Message, Family: family(attrs), Details: details(attrs)})
	}
	if !t.next.Enabled(ctx, rec.Level) {
		return nil
	}
	return t.next.Handle(ctx, rec)
}

func (t *tap) WithAttrs(as []slog.Attr) slog.Handler {
	c := *t
	c.next = t.next.WithAttrs(as)
	c.attrs = append([]slog.Attr(nil), t.attrs...)
	for _, a := range as {
		c.attrs = append(c.attrs, qualify(t.prefix, a)...)
	}
	return &c
}

func (t *tap) WithGroup(name string) slog.Handler {
	if name == "" {
		return t
	}
	c := *t
	c.next = t.next.WithGroup(name)
	c.prefix = t.prefix + name + "."
	return &c
}

// qualify flattens a (a group becomes several attributes) and prefixes
// the keys with the open groups.
func qualify(prefix string, a slog.Attr) []slog.Attr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		var out []slog.Attr
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			out = append(out, qualify(p, g)...)
		}
		return out
	}
	if a.Key == "" {
		return nil
	}
	return []slog.Attr{{Key: prefix + a.Key, Value: v}}
}

// family is the value of the last top-level family attribute, empty when
// there is none.
func family(attrs []slog.Attr) config.Family {
	for i := len(attrs) - 1; i >= 0; i-- {
		if attrs[i].Key == familyKey {
			return config.Family(attrs[i].Value.String())
		}
	}
	return ""
}

// details renders attributes as key=value pairs, quoting values with
// spaces, like the text log format.
func details(attrs []slog.Attr) string {
	var b strings.Builder
	for i, a := range attrs {
		if i > 0 {
			b.WriteByte(' ')
		}
		s := a.Value.String()
		if strings.ContainsAny(s, " =\"") || s == "" {
			s = fmt.Sprintf("%q", s)
		}
		b.WriteString(a.Key)
		b.WriteByte('=')
		b.WriteString(s)
	}
	return b.String()
}
