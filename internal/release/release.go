// Package release tells a release build from any other. A release is a git
// tag vMAJOR.MINOR.PATCH, optionally with a pre-release (v1.2.0-rc.1): its
// image is published as ghcr.io/hapod/hapod:<tag>. Anything else (a commit
// after a tag, a dirty tree, a Go pseudo-version, a plain `go build`) has no
// published image of its own name.
package release

import (
	"regexp"
	"runtime/debug"
)

// Unstamped is the version of a build nobody stamped: `go build` without
// make's -ldflags and outside `go install module@version`.
const Unstamped = "dev"

var (
	// Semantic Versioning 2.0 with a leading v, without build metadata
	// (a "+..." suffix is how Go marks a dirty tree: v1.2.3+dirty).
	semverTag = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$`)
	// What git describe appends after a tag: -<commits>-g<hash>, -dirty.
	describeSuffix = regexp.MustCompile(`(-[0-9]+-g[0-9a-f]{7,}|-dirty)$`)
	// Go's pseudo-versions: -yyyymmddhhmmss-<12 hex> after "-" or ".0.".
	pseudoSuffix = regexp.MustCompile(`[-.][0-9]{14}-[0-9a-f]{12}$`)
)

// IsRelease reports whether v is a release tag, not the version of some
// other tree: git describe's output for a commit after a tag
// (v1.2.3-4-gabcdef0) or of a dirty tree (-dirty), and Go's pseudo-versions
// (v0.0.0-20261206010203-abcdefabcdef), are not.
func IsRelease(v string) bool {
	return semverTag.MatchString(v) && !describeSuffix.MatchString(v) && !pseudoSuffix.MatchString(v)
}

// Resolve returns the version a build reports: the one make stamped with
// -ldflags -X, else the module version the go command recorded when that
// is a release (`go install github.com/hapod/hapod/cmd/hapod@v1.2.3`
// records v1.2.3), else Unstamped. A pseudo-version recorded by a plain
// `go build` in a checkout is not used: it changes with every commit, and
// the generated example manifests, which carry the version, must not.
func Resolve(stamped string, info *debug.BuildInfo) string {
	if stamped != "" && stamped != Unstamped {
		return stamped
	}
	if info != nil && IsRelease(info.Main.Version) {
		return info.Main.Version
	}
	return Unstamped
}
