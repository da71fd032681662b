package cli

import (
	"flag"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
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

// TestFlagSets keeps the README's words about the flag table true:
// `hapod manifest` takes init's flags but --manifest-dir, --dry-run,
// --force, --cri-socket and --offline, and `hapod run` takes the flags from
// --vip on.
func TestFlagSets(t *testing.T) {
	names := func(flags []cli.Flag) []string {
		var out []string
		for _, f := range flags {
			if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
				continue // accepted for old manifests, never written
			}
			out = append(out, f.Names()[0])
		}
		return out
	}
	all := names(generateFlags(true))
	var withoutWrite []string
	for _, n := range all {
		if !slices.Contains([]string{flagManifestDir, flagDryRun, flagForce, flagCRISocket, flagOffline}, n) {
			withoutWrite = append(withoutWrite, n)
		}
	}
	if got := names(manifestCommand(fakeHost()).Flags); !slices.Equal(got, withoutWrite) {
		t.Errorf("hapod manifest flags:\n%v\nwant init's but --manifest-dir, --dry-run, --force, --cri-socket, --offline:\n%v", got, withoutWrite)
	}
	i := slices.Index(all, "vip")
	if got := names(runCommand().Flags); i < 0 || !slices.Equal(got, all[i:]) {
		t.Errorf("hapod run flags:\n%v\nwant init's from --vip on:\n%v", got, all[i:])
	}
}
