// Package cli is hapod's command line: `manifest`, `init` and `join` make
// the static pod; `run` is what the pod runs.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/hapod/hapod/internal/cri"
	"github.com/hapod/hapod/internal/hostnet"
	"github.com/hapod/hapod/internal/instance"
	"github.com/hapod/hapod/internal/release"
	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/dhcpvip"
	"github.com/hapod/hapod/pkg/redirect"
)

// Version is stamped at build time with -ldflags "-X ...cli.Version=v1.2.3"
// (make stamps `git describe --tags --always --dirty`); main resolves an
// unstamped one with release.Resolve.
var Version = release.Unstamped

// ImageRepository is where release images are published; a release build's
// default image is this repository tagged with Version. Other builds have
// no default image: nothing publishes one of their version.
const ImageRepository = "ghcr.io/hapod/hapod"

// Host is what the commands ask of the machine they run on. Tests replace
// it; NewApp's default asks the kernel.
type Host struct {
	// RouteInterface returns the interface of the route to an address.
	RouteInterface func(netip.Addr) (string, error)
	// Addrs lists the addresses configured on the host.
	Addrs func() ([]hostnet.Addr, error)
	// DefaultInterface returns the interface of the IPv4 default route.
	DefaultInterface func() (string, error)
	// LeaseVIP leases a VIP from the site's DHCP server (`--vip dhcp`).
	LeaseVIP func(ctx context.Context, cfg dhcpvip.Config) (dhcpvip.Lease, error)
	// Instance returns the PID of the hapod running for a VIP on this
	// host (0: in another PID namespace), or instance.ErrNotRunning.
	Instance func(vip netip.Addr) (int, error)
	// Instances lists the VIPs of the hapod instances running on this host.
	Instances func() ([]netip.Addr, error)
	// Listening reports whether a process listens on a TCP port of an
	// address: a hapod built before the instance lock, on its VIP.
	Listening func(netip.Addr) (bool, error)
	// RemoveAddr takes an address off its interface.
	RemoveAddr func(hostnet.Addr) error
	// Redirect reports whether hapod's nftables table for a VIP (the
	// redirect of VIP:--port) is there.
	Redirect func(vip netip.Addr) (bool, error)
	// RemoveRedirect deletes hapod's nftables table for a VIP.
	RemoveRedirect func(vip netip.Addr) error
	// Handover asks the hapod running for a VIP to hand the VIP over and
	// exit, and returns once it has exited: the state it was in and how
	// the handover went, in its words.
	Handover func(ctx context.Context, vip netip.Addr) (state, outcome string, err error)
	// DetectRuntime returns the CRI socket kubeadm would use.
	DetectRuntime func() (string, error)
	// ImagePresent asks the container runtime at a CRI socket whether an
	// image is there.
	ImagePresent func(ctx context.Context, endpoint, image string) (bool, error)
}

// SystemHost asks the kernel and the network.
var SystemHost = Host{
	RouteInterface:   hostnet.RouteInterface,
	Addrs:            hostnet.Addrs,
	DefaultInterface: hostnet.DefaultInterface,
	LeaseVIP:         dhcpvip.Acquire,
	Instance: func(vip netip.Addr) (int, error) {
		c, err := instance.Dial(vip)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.PID, nil
	},
	Instances:  instance.List,
	Listening:  hostnet.Listening,
	RemoveAddr: hostnet.RemoveAddr,
	Redirect: func(vip netip.Addr) (bool, error) {
		nft, err := redirect.NewNFTables()
		if err != nil {
			return false, err
		}
		defer nft.Close()
		return nft.Present(redirect.TableName(vip))
	},
	RemoveRedirect: func(vip netip.Addr) error {
		nft, err := redirect.NewNFTables()
		if err != nil {
			return err
		}
		defer nft.Close()
		return nft.Delete(redirect.TableName(vip))
	},
	Handover:      handover,
	DetectRuntime: cri.Detect,
	ImagePresent:  cri.ImagePresent,
}

// handover asks vip's running instance to hand over, and waits until its
// lock is free: the process has released the VIP and is exiting.
func handover(ctx context.Context, vip netip.Addr) (state, outcome string, err error) {
	c, err := instance.Dial(vip)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	state, outcome, err = c.Handover(ctx)
	if errors.Is(err, instance.ErrStopped) {
		// Already stopping (kubelet's SIGTERM): it hands over all the same.
		outcome, err = "was stopping already (kubelet stops it once hapod.yaml is gone)", nil
	}
	if err != nil {
		return state, outcome, err
	}
	return state, outcome, instance.WaitGone(ctx, vip)
}

// NewApp builds the hapod command line. Output goes to stdout and stderr;
// errors are returned by Run, never printed and exited on, so main decides
// the exit status.
func NewApp(stdout, stderr io.Writer, host Host) *cli.App {
	app := &cli.App{
		Name:                 "hapod",
		Usage:                "a highly available Kubernetes API endpoint in one static pod (VRRP VIP + L4 proxy)",
		Version:              Version,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		HideVersion:          true,
		Description: `Before 'kubeadm init' on the first control-plane node, 'hapod init' writes
/etc/kubernetes/manifests/hapod.yaml. Kubelet starts that pod together with the
control plane; it holds the virtual IP with VRRP (keepalived-compatible) and
proxies VIP:6443 to every healthy kube-apiserver (an nftables redirect to the
proxy's own port, so the apiservers keep their default bind). 'hapod init' prints the
'hapod join' command to run before 'kubeadm join --control-plane' on the others.

Example, on the first of three control-plane nodes (VIP 198.18.0.10):
   hapod init ` + exampleFlags + `
   kubeadm init --control-plane-endpoint 198.18.0.10 --upload-certs

Before 'kubeadm reset' on a node, run 'hapod reset': it removes the manifest
and has the running hapod hand the VIP over to another node and exit.

See 'hapod init --help' for a kubeadm config file or a VIP from DHCP.`,
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unknown command %q (see --help)", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		Commands: []*cli.Command{
			initCommand(host),
			joinCommand(host),
			manifestCommand(host),
			resetCommand(host),
			runCommand(),
			statusCommand(),
			versionCommand(),
			completionCommand(),
		},
		// Errors are returned to main, which prints one line and exits 1.
		ExitErrHandler: func(*cli.Context, error) {},
	}
	for _, cmd := range app.Commands {
		// A bad flag is one line too, not the command's whole help.
		if cmd.OnUsageError == nil {
			cmd.OnUsageError = usageError
		}
	}
	return app
}

func usageError(_ *cli.Context, err error, _ bool) error {
	return fmt.Errorf("%w (see --help)", err)
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print hapod's version",
		Action: func(c *cli.Context) error {
			if release.IsRelease(Version) {
				fmt.Fprintf(c.App.Writer, "hapod %s\n", Version)
				return nil
			}
			fmt.Fprintf(c.App.Writer, "hapod %s (not a release: built from an untagged or modified tree; init, join and manifest need --image)\n", Version)
			return nil
		},
	}
}

// configFlags returns one CLI flag per row of config's flag table. Their
// defaults are shown in --help; whether a flag was given is asked with
// IsSet, so a default never overrides a value from a kubeadm config.
func configFlags() []cli.Flag {
	var flags []cli.Flag
	for _, f := range config.Fields() {
		def := f.Default()
		switch f.Kind {
		case config.KindBool:
			v, _ := strconv.ParseBool(def)
			flags = append(flags, &cli.BoolFlag{Name: f.Name, Usage: f.Usage, Value: v, Category: f.Category})
		case config.KindList:
			flags = append(flags, &cli.StringSliceFlag{Name: f.Name, Usage: f.Usage, Category: f.Category})
		default:
			flags = append(flags, &cli.StringFlag{Name: f.Name, Usage: f.Usage, Value: def, Category: f.Category})
		}
	}
	return flags
}

// configFromFlags starts from the defaults and applies every config flag
// the user gave.
func configFromFlags(c *cli.Context) (config.Config, error) {
	cfg := config.Default()
	for _, f := range config.Fields() {
		if !c.IsSet(f.Name) {
			continue
		}
		var values []string
		switch f.Kind {
		case config.KindBool:
			values = []string{strconv.FormatBool(c.Bool(f.Name))}
		case config.KindList:
			values = c.StringSlice(f.Name)
		default:
			values = []string{c.String(f.Name)}
		}
		if err := f.Apply(&cfg, values); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// ErrArgs reports positional arguments, which no hapod command takes.
var ErrArgs = errors.New("unexpected arguments")

func noArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("%w: %s (all settings are --flags)", ErrArgs, strings.Join(c.Args().Slice(), " "))
	}
	return nil
}
