package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/hapod/hapod/internal/daemon"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "run the VRRP speaker and the proxy (the static pod's entrypoint)",
		Description: `The manifest written by 'hapod init' or 'hapod join' runs this with every
setting as a flag. On SIGTERM hapod sends a priority-0 advert, keeps serving
until a new holder has taken the VIP, releases it, drains in-flight proxy
connections for up to --drain-timeout, and exits 0.

Example (what the pod runs):
   hapod run --vip=198.18.0.10/24 --interface=eth0 --backend=198.18.0.11:6443`,
		Flags: configFlags(),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			cfg, err := configFromFlags(c)
			if err != nil {
				return err
			}
			cfg.Complete()
			if err := cfg.Validate(); err != nil {
				return err
			}
			daemon.Version = Version
			return daemon.Run(c.Context, cfg, daemon.NewLogger(cfg.Log))
		},
	}
}
