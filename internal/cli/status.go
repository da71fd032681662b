package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/status"
)

// Output formats of `hapod status`.
const (
	outputTable = "table"
	outputJSON  = "json"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the local hapod's VRRP routers, VIPs and backends; exit 0 only when healthy",
		Description: `Reads /status from the status server of the hapod running on this node and
prints it: a block per virtual router (one per address family of the VIPs),
then the proxy and its backends. The exit status is 0 when the node is
healthy: for every router, VRRP runs (Backup or Active), the kernel holds
each of its VIPs on this node exactly while it is Active (a second of
disagreement is tolerated), its link can carry VRRP, and no other host
answered for one of its VIPs in the last 5 seconds; and at least one backend
passes its health checks. Otherwise it prints one line saying why on stderr
(naming the router's family, ipv4 or ipv6) and exits 1; when the status
server cannot be reached (hapod not running) it exits 3, as an LSB init
script's status does. So it can gate scripts and kubeadm hooks:

   hapod status || echo "not ready"
   hapod status -o json | jq -r '.routers[] | .family + " " + .state'`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "status-addr", Value: config.DefaultStatusAddr.String(),
				Usage: "address of the status server of 'hapod run' (its --status-addr)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: outputTable,
				Usage: "output format: table or json"},
			&cli.DurationFlag{Name: "timeout", Value: 3 * time.Second,
				Usage: "give up on the status server after this long"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			addr, err := parseStatusAddr(c.String("status-addr"))
			if err != nil {
				return err
			}
			format := c.String("output")
			if format != outputTable && format != outputJSON {
				return fmt.Errorf("--output %q: want %s or %s", format, outputTable, outputJSON)
			}
			r, err := status.Fetch(c.Context, &http.Client{Timeout: c.Duration("timeout")}, addr)
			if err != nil {
				return exitError{err, ExitNotRunning}
			}
			if format == outputJSON {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else if err := status.WriteTable(c.App.Writer, r); err != nil {
				return err
			}
			return r.Err()
		},
	}
}

// parseStatusAddr parses --status-addr exactly as `hapod run` does, through
// the same config field.
func parseStatusAddr(s string) (netip.AddrPort, error) {
	for _, f := range config.Fields() {
		if f.Name == "status-addr" {
			cfg := config.Default()
			if err := f.Apply(&cfg, []string{s}); err != nil {
				return netip.AddrPort{}, err
			}
			return cfg.Status.Addr, nil
		}
	}
	return netip.ParseAddrPort(s)
}

// ExitNotRunning is the exit status of `hapod status` when no status server
// answers: LSB's "program is not running", so a script can tell a daemon
// that is down from one that runs unhealthy (1).
const ExitNotRunning = 3

// exitError carries an exit status other than 1 for main.
type exitError struct {
	error
	code int
}

func (e exitError) Unwrap() error { return e.error }

// ExitCode is the process exit status for an error returned by the app: 0
// for nil, the status an error carries, 1 for every other error.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	if e, ok := errors.AsType[exitError](err); ok {
		return e.code
	}
	return 1
}
