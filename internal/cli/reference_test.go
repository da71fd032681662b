package cli

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var updateReadme = flag.Bool("update", false, "rewrite the README's flag reference")

const (
	refBegin = "<!-- flag-reference:begin (generated: go test ./internal/cli -update) -->\n"
	refEnd   = "<!-- flag-reference:end -->"
)

// TestREADMEFlagReference keeps the README's flag table equal to the flags
// the code defines.
func TestREADMEFlagReference(t *testing.T) {
	const path = "../../README.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i, j := strings.Index(s, refBegin), strings.Index(s, refEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the flag-reference markers")
	}
	want := FlagReference()
	got := s[i+len(refBegin) : j]
	if got == want {
		return
	}
	if *updateReadme {
		if err := os.WriteFile(path, []byte(s[:i+len(refBegin)]+want+s[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's flag reference is stale: run go test ./internal/cli -update")
}
