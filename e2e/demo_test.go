package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
)

// TestDemo runs `make demo`'s program (e2e/demo) as a newcomer would and
// checks that its story is told: a holder, its SIGKILL, a new holder with
// the measured failover time, the graceful handover, and that it leaves no
// namespace and no hapod process behind.
func TestDemo(t *testing.T) {
	lab.RequireRoot(t)
	lab.Tool(t, "ip", "iproute2")
	dir := t.TempDir()
	demoBin := filepath.Join(dir, "demo")
	if err := build(demoBin, "./e2e/demo"); err != nil {
		t.Fatal(err)
	}
	// A copy of hapod of the demo's own, so a process left running from it
	// is surely the demo's.
	hapod := filepath.Join(dir, "hapod")
	b, err := os.ReadFile(hapodBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hapod, b, 0o755); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, demoBin, "-hapod", hapod).CombinedOutput()
	t.Logf("demo ran %v:\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("demo: %v", err)
	}

	text := string(out)
	// find returns the submatches of the first line matching re, or fails.
	find := func(what, re string) []string {
		t.Helper()
		m := regexp.MustCompile(`(?m)^ *[0-9.]+s  ` + re + `$`).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("the demo's output lacks %s (no line matching %q)", what, re)
		}
		return m
	}
	id := find("the lab", `lab ([0-9a-f]{6}) ready: .*`)[1]
	first := find("a holder", `(node\d) holds the VIP (\S+) \(\d+ ms after hapod started\)`)[1]
	find("the SIGKILL", `SIGKILL hapod on `+first+`, the VIP holder .*`)
	m := find("a new holder and the failover time",
		`  (node\d) took the VIP over after (\d+) ms; the client's outage: (\d+) ms \(\d+ of \d+ connects failed\)`)
	second, took := m[1], m[2]
	if second == first {
		t.Errorf("the demo says %s took over from itself", second)
	}
	if took == "0" {
		t.Errorf("the demo measured a 0 ms failover after a SIGKILL")
	}
	find("the restart", `restarted hapod on `+first+`: .* rejoined as Backup;`)
	find("the SIGTERM", `SIGTERM hapod on `+second+`, the VIP holder .*`)
	third := find("the graceful handover",
		`  (node\d) took the VIP over after \d+ ms, `+second+` exited 0 after \d+ ms; the client's outage: \d+ ms .*`)[1]
	if third == second {
		t.Errorf("the demo says %s took over from itself", third)
	}
	find("the summary", `summary: a crashed VIP holder cost the client \d+ ms, a graceful handover \d+ ms;`)
	find("the cleanup", `cleaned up: every process stopped by PID, namespaces hlab-`+id+`-\* deleted`)
	t.Logf("holder %s, SIGKILL: %s took over after %s ms, SIGTERM: %s took over", first, second, took, third)

	// What the demo says about its cleanup must be true.
	list, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(list), "hlab-"+id+"-") {
		t.Errorf("the demo left namespaces of lab %s:\n%s", id, list)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		if exe, err := os.Readlink(p); err == nil && (exe == hapod || exe == demoBin) {
			t.Errorf("the demo left a process running: pid %s, %s", filepath.Base(filepath.Dir(p)), exe)
		}
	}
}
