package cli

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// childEnv, when set, makes the test binary run as `hapod` with the fake
// host instead of running tests: tests that race whole invocations start
// it as separate processes, as real users' commands are.
const childEnv = "HAPOD_CLI_TEST_CHILD"

// The tests run as a release build, whose default image is published;
// TestUntaggedBuildNeedsImage switches to other builds.
func TestMain(m *testing.M) {
	Version = "v1.2.3"
	if os.Getenv(childEnv) != "" {
		app := NewApp(os.Stdout, os.Stderr, fakeHost())
		if err := app.RunContext(context.Background(), os.Args); err != nil {
			fmt.Fprintf(os.Stderr, "hapod: %v\n", err)
			os.Exit(ExitCode(err))
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
