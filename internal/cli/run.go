package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/hapod/hapod/internal/daemon"
)

// obsoleteDrainFlag is accepted by 'hapod run' for manifests written by
// older versions, and ignored.
const obsoleteDrainFlag = "drain-timeout"

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "run the VRRP speaker and the proxy (the static pod's entrypoint)",
		Description: `The manifest written by 'hapod init' or 'hapod join' runs this with every
setting as a flag. On SIGTERM hapod sends a priority-0 advert, keeps serving
until a new holder has taken the VIP (at most 0.8 s), releases it, closes the
proxy connections that came through it (their clients reconnect through the
new holder) and exits 0.

Example (what the pod runs):
   hapod run --vip=198.18.0.10/24 --interface=eth0 --backend=198.18.0.11:6443`,
		Flags: append(configFlags(), &cli.StringFlag{
			// Manifests written by earlier builds pass it; the shutdown no
			// longer drains (see Description), so it is accepted and
			// ignored, never an error that would crash-loop the pod.
			Name: obsoleteDrainFlag, Hidden: true,
		}),
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
			log := daemon.NewLogger(cfg.Log)
			if c.IsSet(obsoleteDrainFlag) {
				log.Warn("--" + obsoleteDrainFlag + " is obsolete and ignored: on shutdown hapod closes the connections through the VIP once it has handed the VIP over; re-run 'hapod init' or 'hapod join' to drop it from the manifest")
			}
			return daemon.Run(c.Context, cfg, log)
		},
	}
}
