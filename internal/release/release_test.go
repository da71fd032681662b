package release

import (
	"runtime/debug"
	"testing"
)

func TestIsRelease(t *testing.T) {
	for v, want := range map[string]bool{
		"v0.1.0":        true,
		"v1.2.3":        true,
		"v1.2.0-rc.1":   true,
		"v10.20.30":     true,
		"v1.2.3-beta-2": true, // a hyphen inside a pre-release is allowed

		"":                                     false,
		"dev":                                  false,
		"1.2.3":                                false, // tags carry the v
		"v1.2":                                 false,
		"v01.2.3":                              false,
		"v1.2.3+build.5":                       false,
		"v1.2.3-dirty":                         false, // git describe of a dirty tree at a tag
		"v1.2.3-4-gabcdef0":                    false, // 4 commits after the tag
		"v1.2.3-rc.1-12-g0123456789ab-dirty":   false,
		"177bb4b":                              false, // git describe --always, no tag at all
		"177bb4b-dirty":                        false,
		"v0.0.0-20261206010203-abcdefabcdef":   false, // Go pseudo-versions
		"v1.2.4-0.20261206010203-abcdefabcdef": false,
		"v1.2.3-rc.1.0.20261206010203-abcdefabcdef": false,
		"v1.2.3+dirty": false,
		"(devel)":      false,
	} {
		if got := IsRelease(v); got != want {
			t.Errorf("IsRelease(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestResolve(t *testing.T) {
	info := func(v string) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Path: "github.com/hapod/hapod", Version: v}}
	}
	for _, tc := range []struct {
		stamped string
		info    *debug.BuildInfo
		want    string
	}{
		{"v1.2.3", info("v9.9.9"), "v1.2.3"},    // make's stamp wins
		{"177bb4b-dirty", nil, "177bb4b-dirty"}, // stamped, not a release: still what it says
		{"dev", info("v1.2.3"), "v1.2.3"},       // go install ...@v1.2.3
		{"", info("v1.2.3"), "v1.2.3"},
		{"dev", info("v0.0.0-20261206010203-abcdefabcdef+dirty"), "dev"}, // go build in a checkout
		{"dev", info("(devel)"), "dev"},
		{"dev", nil, "dev"},
	} {
		if got := Resolve(tc.stamped, tc.info); got != tc.want {
			t.Errorf("Resolve(%q, %v) = %q, want %q", tc.stamped, tc.info, got, tc.want)
		}
	}
}
