package cli

import (
	"os"
	"testing"
)

// The tests run as a release build, whose default image is published;
// TestUntaggedBuildNeedsImage switches to other builds.
func TestMain(m *testing.M) {
	Version = "v1.2.3"
	os.Exit(m.Run())
}
