package lab

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestInCI(t *testing.T) {
	for _, tc := range []struct {
		v    string
		set  bool
		want bool
	}{
		{set: false, want: false},
		{v: "", set: true, want: false},
		{v: "false", set: true, want: false},
		{v: "0", set: true, want: false},
		{v: "true", set: true, want: true},
		{v: "1", set: true, want: true},
		{v: "yes", set: true, want: true}, // not a bool: set all the same
	} {
		if tc.set {
			t.Setenv("CI", tc.v)
		} else {
			t.Setenv("CI", "") // restores CI at the end
			os.Unsetenv("CI")
		}
		if got := InCI(); got != tc.want {
			t.Errorf("CI=%q (set %v): InCI() = %v, want %v", tc.v, tc.set, got, tc.want)
		}
	}
}

// TestToolMissing: a missing tool skips the test outside CI and fails it
// under CI, naming the Debian package either way.
func TestToolMissing(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		var out syncBuffer
		var ex exitRecorder
		s := newScript(&out, ex.exit)
		if onOwnGoroutine(func() { Tool(s, "/nonexistent/hapod-e2e-tool", "hapod-e2e-pkg") }) {
			t.Fatalf("CI=%q: Tool returned for a missing tool", ci)
		}
		if s.Failed() != (ci != "") {
			t.Errorf("CI=%q: failed %v", ci, s.Failed())
		}
		if !strings.Contains(out.String(), "Debian package hapod-e2e-pkg") {
			t.Errorf("CI=%q: message %q names no package", ci, out.String())
		}
		if got := ex.got(); !slices.Equal(got, []int{1}) {
			t.Errorf("CI=%q: exit codes %v", ci, got)
		}
	}
}

func TestToolPresent(t *testing.T) {
	t.Setenv("CI", "true")
	var out syncBuffer
	s := newScript(&out, (&exitRecorder{}).exit)
	if p := Tool(s, "sh", "dash"); p == "" || s.Failed() {
		t.Errorf("Tool(sh) = %q, failed %v: %s", p, s.Failed(), out.String())
	}
}
