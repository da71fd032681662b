package cli

import (
	"context"
	"errors"
	"net/netip"

	"github.com/urfave/cli/v2"

	"github.com/hapod/hapod/internal/hostnet"
	"github.com/hapod/hapod/internal/preflight"
	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/kubeadm"
	"github.com/hapod/hapod/pkg/manifest"
)

// plan is what `hapod init`, `join` and `manifest` decided before writing
// anything: apply (apply.go) carries it out, nextsteps.go says what comes
// after.
type plan struct {
	Mode mode
	// Config is completed and valid.
	Config config.Config
	// Image is the pod's container image (--image).
	Image string
	// Manifest is the rendered hapod.yaml.
	Manifest []byte
	// KubeadmFile is --kubeadm-config, "" without it.
	KubeadmFile string
	// Source is this node's own address on the VIP's interface, the one
	// `hapod run` will send adverts from (preflight.SourceAddr); in unicast
	// mode the other nodes name it as --peer. Invalid for `hapod
	// manifest`, which looks at no host.
	Source netip.Addr
	// Edit sets the leased VIP as the kubeadm config's endpoint; nil: none.
	Edit *kubeadm.EndpointEdit
	// Stale is a VIP a dead hapod left on an interface, to be removed;
	// nil: none.
	Stale *hostnet.Addr
	// Notes are what a successful run says besides its output (a lease
	// taken, warnings), held back until every check has passed so a
	// failing run prints its one error line and nothing else.
	Notes []string
}

// request is what the command line asks of init, join or manifest.
type request struct {
	Mode mode
	// Config holds the settings given as flags, over the defaults.
	Config config.Config
	// Given reports whether the flag named was on the command line.
	Given func(flag string) bool
	// KubeadmFile is --kubeadm-config, "" without it.
	KubeadmFile string
	// Image is --image (or its default).
	Image string
	// ManifestDir is --manifest-dir, "" for `hapod manifest`.
	ManifestDir string
	// CRISocket is --cri-socket, "" without it.
	CRISocket              string
	DryRun, Force, Offline bool
}

// requestFromFlags reads the command line.
func requestFromFlags(c *cli.Context, m mode) (request, error) {
	cfg, err := configFromFlags(c)
	return request{
		Mode: m, Config: cfg, Given: c.IsSet,
		KubeadmFile: c.String(flagKubeadmConfig), Image: c.String(flagImage),
		ManifestDir: c.String(flagManifestDir), CRISocket: c.String(flagCRISocket),
		DryRun: c.Bool(flagDryRun), Force: c.Bool(flagForce), Offline: c.Bool(flagOffline),
	}, err
}

// makePlan turns a request, the kubeadm config and what this host shows
// into a plan. Every check runs here, before the first byte is written;
// the one thing it does to the world is a DHCP lease for --vip dhcp (the
// manifest needs the address), which its note owns up to.
func makePlan(ctx context.Context, host Host, r request) (plan, error) {
	m := r.Mode
	p := plan{Mode: m, KubeadmFile: r.KubeadmFile, Image: r.Image}
	cfg := r.Config
	if cfg.VIP.DHCP && !cfg.VIP.Prefix.IsValid() {
		if m == modeJoin {
			return p, &config.FieldError{Flag: "vip", Value: "dhcp", Err: errors.New(
				"only 'hapod init' leases the VIP; run the join command it printed (--vip=ADDR --vip-dhcp)")}
		}
		note, err := leaseVIP(ctx, &cfg, host)
		if err != nil {
			return p, err
		}
		if r.DryRun {
			// The manifest cannot be rendered without the address, so a
			// dry run leases too; it must not look like a side-effect-free run.
			note = "dry run: " + note + "; this is a real lease, taken to render the manifest: the server keeps the address for this cluster's client identity, so 'hapod init' without --dry-run normally gets the same one"
		}
		p.Notes = append(p.Notes, note)
	}
	// On init, a leased VIP (just now, or the first time: --vip=ADDR
	// --vip-dhcp) decides the endpoint, and kubeadm must use it: init
	// sets it in the kubeadm config, right before writing the manifest.
	setEndpoint := r.KubeadmFile != "" && cfg.VIP.DHCP && m == modeInit
	var kf *kubeadm.File
	if r.KubeadmFile != "" {
		var err error
		if kf, err = kubeadm.Load(ctx, r.KubeadmFile); err != nil {
			return p, err
		}
		if err := mergeKubeadm(&cfg, kf, r.KubeadmFile, setEndpoint, r.Given); err != nil {
			return p, err
		}
	}
	var err error
	if p.Stale, err = completeFromHost(ctx, &cfg, host, m == modeJoin, r.ManifestDir); err != nil {
		return p, err
	}
	cfg.Complete()
	if err := cfg.Validate(); err != nil {
		return p, err
	}
	p.Config = cfg
	if p.Image == "" && !r.Given(flagImage) {
		return p, imageRequired()
	}
	if err := manifest.CheckImage(p.Image); err != nil {
		return p, &config.FieldError{Flag: flagImage, Value: p.Image, Err: err}
	}
	// init and join run on the node: whatever `hapod run` would fail on
	// at start with these settings on this host fails here, before
	// anything is written. `hapod manifest` may run anywhere (a
	// workstation, GitOps): it checks the settings, not the host.
	if m != modePrint {
		start, err := preflight.Check(ctx, cfg, preflight.Host{Addrs: host.Addrs})
		if err != nil {
			return p, err
		}
		p.Source = start.Source
	}
	if p.Manifest, err = manifest.Render(cfg, p.Image, Version); err != nil {
		return p, err
	}
	if setEndpoint {
		// Checked now, written only once everything else has passed.
		p.Edit, err = kubeadm.PlanEndpoint(ctx, r.KubeadmFile, netip.AddrPortFrom(cfg.VIP.Prefix.Addr(), cfg.Proxy.Port))
		if err != nil {
			return p, err
		}
	}
	if r.KubeadmFile == "" {
		if w := portShareWarning(cfg); w != "" {
			p.Notes = append(p.Notes, w)
		}
	}
	for _, w := range cfg.Warnings() {
		p.Notes = append(p.Notes, "warning: "+w)
	}
	if m != modePrint {
		note, err := checkImage(ctx, host, p.Image, r.CRISocket, kf).verdict(r.Offline, r.Force)
		if err != nil {
			return p, err
		}
		p.Notes = append(p.Notes, note)
	}
	return p, nil
}
