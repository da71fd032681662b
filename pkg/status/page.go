package status

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/hapod/hapod/pkg/config"
)

//go:embed page.html
var pageSource string

// pageTemplate renders a Report for people. It has no external assets (the
// node may have no route to the internet, and the page must work through a
// port-forward) and reloads itself every two seconds.
var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"ago":      ago,
	"clock":    func(t time.Time) string { return t.Local().Format("15:04:05") },
	"stamp":    func(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05.000 MST") },
	"lower":    strings.ToLower,
	"family":   familyName,
	"states":   states,
	"bytes":    humanBytes,
	"millis":   func(s float64) string { return fmt.Sprintf("%.1f ms", s*1000) },
	"duration": func(s float64) string { return humanDuration(time.Duration(s * float64(time.Second))) },
	"levelClass": func(l string) string {
		switch {
		case strings.HasPrefix(l, "ERROR"):
			return "err"
		case strings.HasPrefix(l, "WARN"):
			return "warn"
		}
		return "info"
	},
}).Parse(pageSource))

// familyName writes a router's family as people do: IPv4, IPv6.
func familyName(f config.Family) string {
	switch f {
	case config.IPv4:
		return "IPv4"
	case config.IPv6:
		return "IPv6"
	}
	return string(f)
}

// states is the routers' states for the page's title: "Active", or
// "Active/Backup" with two routers, IPv4 first.
func states(r Report) string {
	var out []string
	for _, rr := range r.Routers {
		out = append(out, rr.State)
	}
	return strings.Join(out, "/")
}

// WritePage renders r as the HTML status page.
func WritePage(w io.Writer, r Report) error {
	return pageTemplate.Execute(w, r)
}

func (m *Monitor) servePage(w http.ResponseWriter, _ *http.Request) {
	var b bytes.Buffer
	if err := WritePage(&b, m.Report()); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b.Bytes())
}

// ago says how long before now t was, in words a person reads at a glance.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return humanDuration(now.Sub(t)) + " ago"
}

func humanDuration(d time.Duration) string {
	switch {
	case d < 0:
		d = 0
		fallthrough
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func humanBytes(n uint64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	exp := min(int(math.Log(float64(n))/math.Log(1024)), 5)
	return fmt.Sprintf("%.1f %ciB", float64(n)/math.Pow(1024, float64(exp)), "KMGTP"[exp-1])
}
