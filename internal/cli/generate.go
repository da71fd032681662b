package cli

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/hapod/hapod/internal/cri"
	"github.com/hapod/hapod/internal/inputfile"
	"github.com/hapod/hapod/internal/release"
	"github.com/hapod/hapod/pkg/config"
)

// DefaultManifestDir is where kubelet looks for static pods on a kubeadm node.
const DefaultManifestDir = "/etc/kubernetes/manifests"

// Flags that only shape how the manifest is made; they are not part of
// the Config that `hapod run` receives.
const (
	flagKubeadmConfig = "kubeadm-config"
	flagManifestDir   = "manifest-dir"
	flagImage         = "image"
	flagDryRun        = "dry-run"
	flagForce         = "force"
	flagCRISocket     = "cri-socket"
	flagOffline       = "offline"
	flagAdvertise     = "apiserver-advertise-address"
	flagBindPort      = "apiserver-bind-port"
)

// defaultImage is the published image of this release, or "" for a build
// that is not a release: there is none of its version.
func defaultImage() string {
	if !release.IsRelease(Version) {
		return ""
	}
	return ImageRepository + ":" + Version
}

func generateFlags(write bool) []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: flagKubeadmConfig, Usage: fmt.Sprintf("kubeadm config file (v1beta3 or v1beta4): the VIP and port come from controlPlaneEndpoint (in a join file: discovery.bootstrapToken.apiServerEndpoint), this node's backend from localAPIEndpoint; on a dual-stack cluster, --vip gives the endpoint's VIP and the other family's; a regular file of at most %d MiB", inputfile.MaxSize>>20), Category: "Manifest", TakesFile: true},
		&cli.StringFlag{Name: flagImage, Usage: "container image of the pod (required unless hapod is a release build)", Value: defaultImage(), Category: "Manifest"},
		&cli.StringFlag{Name: flagAdvertise, Usage: "this node's kube-apiserver address, as kubeadm's flag of that name: with no --backend it is the first backend and the others are discovered (default: the kubeadm config's localAPIEndpoint, else this node's address on the VIP's interface)", Category: "Manifest"},
		&cli.UintFlag{Name: flagBindPort, Usage: "this node's kube-apiserver port, with --" + flagAdvertise + " or its default", Value: config.DefaultAPIServerPort, Category: "Manifest"},
	}
	if write {
		flags = append(flags,
			&cli.StringFlag{Name: flagManifestDir, Usage: "directory kubelet watches for static pods", Value: DefaultManifestDir, Category: "Manifest", TakesFile: true},
			&cli.BoolFlag{Name: flagDryRun, Usage: "print the manifest and what would happen; write nothing (with --vip dhcp it still takes a real lease, to have an address to render, and says so)", Category: "Manifest"},
			&cli.BoolFlag{Name: flagForce, Usage: "replace a different existing hapod.yaml (without it hapod shows the difference and stops); go on without the image when it is missing and cannot be pulled", Category: "Manifest"},
			&cli.StringFlag{Name: flagCRISocket, Usage: "container runtime socket asked whether the image is on this node (default: the kubeadm config's nodeRegistration.criSocket, else the first that exists of " + strings.Join(cri.DefaultEndpoints, ", ") + ")", Category: "Manifest"},
			&cli.BoolFlag{Name: flagOffline, Usage: "kubelet cannot pull images here (air-gapped): stop unless the image is already on this node", Category: "Manifest"},
		)
	}
	return append(flags, configFlags()...)
}

const exampleFlags = "--vip 198.18.0.10/24 --backend 198.18.0.11:6443 --backend 198.18.0.12:6443 --backend 198.18.0.13:6443"

func initCommand(host Host) *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "write the static pod on the first control-plane node, before 'kubeadm init'",
		Description: `Writes <manifest-dir>/hapod.yaml atomically and prints the 'hapod join' command
for the other control-plane nodes. Re-running with the same settings changes
nothing; different settings need --force, and the difference is shown.
--dry-run writes nothing, but with --vip dhcp it still takes a real lease
(the manifest needs the address) and says so.

With no --backend, this node's own kube-apiserver is the first backend
(--apiserver-advertise-address, the kubeadm config's localAPIEndpoint, or
this node's address on the VIP's interface) and the others are discovered
from the API once it runs (--discover): the same command then works on
every control-plane node, e.g. in Cluster API's preKubeadmCommands.

Examples:
   hapod init --vip 198.18.0.10/24
   kubeadm init --control-plane-endpoint 198.18.0.10:8443 --upload-certs

   hapod init ` + exampleFlags + `
   kubeadm init --control-plane-endpoint 198.18.0.10 --upload-certs

   hapod init --kubeadm-config kubeadm.yaml
   kubeadm init --config kubeadm.yaml --upload-certs

   hapod init --vip 198.18.0.10/24 --vip 2001:db8::10/64   # dual-stack
   kubeadm init --control-plane-endpoint 198.18.0.10:6443 --apiserver-cert-extra-sans=2001:db8::10 --upload-certs`,
		Flags:  generateFlags(true),
		Action: func(c *cli.Context) error { return generate(c, host, modeInit) },
	}
}

func joinCommand(host Host) *cli.Command {
	return &cli.Command{
		Name:  "join",
		Usage: "write the static pod on another control-plane node, before 'kubeadm join --control-plane'",
		Description: `Run the command 'hapod init' printed. A --peer that is one of this host's own
addresses is dropped, so the same command works on every node.

Examples:
   hapod join ` + exampleFlags + `
   kubeadm join 198.18.0.10:6443 --control-plane --token ... --discovery-token-ca-cert-hash ... --certificate-key ...

   hapod join --kubeadm-config join.yaml --backend ... # VIP:port from discovery.bootstrapToken.apiServerEndpoint
   kubeadm join --config join.yaml`,
		Flags:  generateFlags(true),
		Action: func(c *cli.Context) error { return generate(c, host, modeJoin) },
	}
}

func manifestCommand(host Host) *cli.Command {
	return &cli.Command{
		Name:  "manifest",
		Usage: "print the static pod manifest to stdout",
		Description: `It checks the settings but not this host (no files are read, no addresses
looked at): it may run anywhere, e.g. to render manifests for GitOps. 'hapod
init' and 'hapod join' also make, on the node, the checks 'hapod run' makes at
start.

Example:
   hapod manifest ` + exampleFlags + ` --interface eth0`,
		Flags:  generateFlags(false),
		Action: func(c *cli.Context) error { return generate(c, host, modePrint) },
	}
}

type mode int

const (
	modePrint mode = iota
	modeInit
	modeJoin
)

// generate makes the plan (plan.go) and prints the manifest (`hapod
// manifest`), says what it would do (--dry-run) or applies it (apply.go)
// and prints the next steps (nextsteps.go).
func generate(c *cli.Context, host Host, m mode) error {
	if err := noArgs(c); err != nil {
		return err
	}
	r, err := requestFromFlags(c, m)
	if err != nil {
		return err
	}
	p, err := makePlan(c.Context, host, r)
	if err != nil {
		return err
	}
	switch {
	case m == modePrint:
		if _, err := c.App.Writer.Write(p.Manifest); err != nil {
			return err
		}
		printNotes(c.App.ErrWriter, p.Notes)
		return nil
	case r.DryRun:
		return dryRun(c.Context, p, r.ManifestDir, c.App.Writer, c.App.ErrWriter)
	}
	a, err := apply(c.Context, host, p, r.ManifestDir, r.Force, c.App.ErrWriter)
	if err != nil {
		return err
	}
	printNextSteps(c.App.Writer, p, a)
	return nil
}
