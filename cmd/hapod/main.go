// Command hapod makes and runs a highly available Kubernetes API endpoint
// in one static pod. See the README.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/hapod/hapod/internal/cli"
	"github.com/hapod/hapod/internal/release"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	info, _ := debug.ReadBuildInfo()
	cli.Version = release.Resolve(cli.Version, info)
	app := cli.NewApp(os.Stdout, os.Stderr, cli.SystemHost)
	if err := app.RunContext(ctx, os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "hapod: %v\n", err)
		os.Exit(cli.ExitCode(err))
	}
}
