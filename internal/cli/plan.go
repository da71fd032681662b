package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
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
	// Sources are this node's own addresses on the VIPs' interface, one
	// per virtual router, the ones `hapod run` will send adverts from
	// (preflight.SourceAddr); in unicast mode the other nodes name them
	// as --peer. Empty for `hapod manifest`, which looks at no host.
	Sources map[config.Family]netip.Addr
	// Edit sets the leased VIP as the kubeadm config's endpoint; nil: none.
	Edit *kubeadm.EndpointEdit
	// Stale are the VIPs a dead hapod left on an interface, to be
	// removed.
	Stale []hostnet.Addr
	// Endpoint is the cluster's API endpoint, VIP:--port, the one kubeadm
	// writes into every kubeconfig: the kubeadm config's endpoint, else
	// the primary VIP (config.VIP.Primary). The other VIPs reach the same
	// kube-apiservers.
	Endpoint netip.AddrPort
	// OwnBackend: no --backend was given and the only backend is this
	// node's own kube-apiserver, the others to be discovered; the printed
	// join line then names no backend either.
	OwnBackend bool
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
	CRISocket string
	// Advertise is --apiserver-advertise-address (invalid without it)
	// and BindPort --apiserver-bind-port: this node's kube-apiserver.
	Advertise              netip.Addr
	BindPort               uint16
	DryRun, Force, Offline bool
}

// requestFromFlags reads the command line.
func requestFromFlags(c *cli.Context, m mode) (request, error) {
	cfg, err := configFromFlags(c)
	r := request{
		Mode: m, Config: cfg, Given: c.IsSet,
		KubeadmFile: c.String(flagKubeadmConfig), Image: c.String(flagImage),
		ManifestDir: c.String(flagManifestDir), CRISocket: c.String(flagCRISocket),
		DryRun: c.Bool(flagDryRun), Force: c.Bool(flagForce), Offline: c.Bool(flagOffline),
	}
	if err != nil {
		return r, err
	}
	if s := c.String(flagAdvertise); s != "" {
		if r.Advertise, err = netip.ParseAddr(s); err != nil || r.Advertise.Zone() != "" {
			return r, &config.FieldError{Flag: flagAdvertise, Value: s, Err: errors.New("not an IP address")}
		}
	}
	port := c.Uint(flagBindPort)
	if port < 1 || port > 65535 {
		return r, &config.FieldError{Flag: flagBindPort, Value: fmt.Sprint(port), Err: errors.New("not a port (1-65535)")}
	}
	r.BindPort = uint16(port)
	return r, nil
}

// makePlan turns a request, the kubeadm config and what this host shows
// into a plan. Every check runs here, before the first byte is written;
// the one thing it does to the world is a DHCP lease for --vip dhcp (the
// manifest needs the address), which its note owns up to. It reads the
// inputs (lease, kubeadm config, merged with the flags), gathers the host
// facts for the result, then decides in decide, which asks nothing.
func makePlan(ctx context.Context, host Host, r request) (plan, error) {
	m := r.Mode
	p := plan{Mode: m, KubeadmFile: r.KubeadmFile, Image: r.Image}
	cfg := r.Config
	if cfg.VIP.DHCP && !cfg.VIP.Primary().IsValid() {
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
	in := inputs{Config: cfg, SetEndpoint: r.KubeadmFile != "" && cfg.VIP.DHCP && m == modeInit}
	if r.KubeadmFile != "" {
		var err error
		if in.Kubeadm, err = kubeadm.Load(ctx, r.KubeadmFile); err != nil {
			return p, err
		}
		if in.FromKubeadm, err = mergeKubeadm(&in.Config, in.Kubeadm, r.KubeadmFile, in.SetEndpoint, r.Given); err != nil {
			return p, err
		}
	}
	return decide(p, r, in, gatherFacts(ctx, host, r, in))
}

// inputs is the configuration makePlan decides on: the flags merged with
// the kubeadm config.
type inputs struct {
	// Config is the flags' Config with the kubeadm config's settings,
	// neither completed nor validated.
	Config config.Config
	// Kubeadm is the loaded --kubeadm-config, nil without one.
	Kubeadm *kubeadm.File
	// SetEndpoint: init sets the leased VIP as the kubeadm config's
	// endpoint (--vip dhcp with --kubeadm-config).
	SetEndpoint bool
	// FromKubeadm is what else the kubeadm config gave.
	FromKubeadm fromKubeadm
}

// hostFacts is what this host and the files the config names showed, for
// decide. Each error is kept with its fact and reported where decide
// needs the fact, so the first problem a user sees is the one it was
// before the facts were gathered up front.
type hostFacts struct {
	// Addrs are the host's addresses.
	Addrs    []hostnet.Addr
	AddrsErr error
	// Local are the VIPs found on the host's interfaces, with what
	// classify needs, in the order of the Config's VIPs.
	Local    []localVIP
	LocalErr error
	// Routes are the routes to the VIPs not on this host, in the order
	// of the Config's VIPs, asked only without --interface.
	Routes []vipRoute
	// Files are the password and CA files read (init and join).
	Files    preflight.Start
	FilesErr error
	// Image is what the container runtime said about the image (init and
	// join, with a well-formed image).
	Image imageCheck
	// Edit is the kubeadm config's endpoint edit (SetEndpoint only).
	Edit    *kubeadm.EndpointEdit
	EditErr error
}

// gatherFacts asks the host, and reads the files, what decide needs for
// in's VIPs. It decides nothing and returns no error: a failed question
// is a fact too.
func gatherFacts(ctx context.Context, host Host, r request, in inputs) hostFacts {
	var f hostFacts
	cfg := in.Config
	primary := cfg.VIP.Primary()
	if !primary.IsValid() {
		return f // Validate names the missing --vip
	}
	if f.Addrs, f.AddrsErr = host.Addrs(); f.AddrsErr != nil {
		return f
	}
	inManifest := ownManifestVIPs(ctx, r.ManifestDir)
	for _, vip := range cfg.VIP.Addrs() {
		a, ok := findAddr(f.Addrs, vip)
		if ok {
			v, err := observeLocalVIP(host, a, primary.Addr(), inManifest.Has(vip))
			f.Local = append(f.Local, v)
			if err != nil {
				f.LocalErr = err
				break
			}
			continue
		}
		if cfg.VIP.Interface == "" {
			ifname, err := host.RouteInterface(vip)
			f.Routes = append(f.Routes, vipRoute{VIP: vip, Interface: ifname, Err: err})
		}
	}
	if r.Mode != modePrint {
		f.Files, f.FilesErr = preflight.ReadFiles(ctx, cfg)
		if r.Image != "" && manifest.CheckImage(r.Image) == nil {
			f.Image = checkImage(ctx, host, r.Image, r.CRISocket, in.Kubeadm)
		}
	}
	if in.SetEndpoint {
		f.Edit, f.EditErr = kubeadm.PlanEndpoint(ctx, r.KubeadmFile, netip.AddrPortFrom(primary.Addr(), cfg.Proxy.Port))
	}
	return f
}

// findAddr returns the host's address that is vip: the last one, should
// two interfaces have it.
func findAddr(addrs []hostnet.Addr, vip netip.Addr) (hostnet.Addr, bool) {
	for i := len(addrs) - 1; i >= 0; i-- {
		if addrs[i].Prefix.Addr() == vip {
			return addrs[i], true
		}
	}
	return hostnet.Addr{}, false
}

// ownAPIServer is the backend of a node given no --backend: its own
// kube-apiserver, at --apiserver-advertise-address or else (on the node)
// its address on the VIP's interface, the one kubeadm advertises by
// default. `hapod manifest` looks at no host: without the flag it returns
// nothing and Validate asks for --backend.
func ownAPIServer(cfg config.Config, r request, f hostFacts) (netip.AddrPort, string, error) {
	const rest = "the other kube-apiservers are discovered from the API once it answers (--discover)"
	if r.Advertise.IsValid() {
		own := netip.AddrPortFrom(r.Advertise.Unmap(), r.BindPort)
		return own, fmt.Sprintf("no --backend: the first backend is this node's kube-apiserver %s (--%s); %s", own, flagAdvertise, rest), nil
	}
	if r.Mode == modePrint || !cfg.VIP.Primary().IsValid() {
		return netip.AddrPort{}, "", nil
	}
	// A global address, also for an IPv6 VIP: kube-apiserver advertises
	// no link-local one.
	a, err := preflight.SourceAddr(f.Addrs, cfg.VIP.Interface, []netip.Prefix{cfg.VIP.Primary()}, true)
	if err != nil {
		return netip.AddrPort{}, "", &config.FieldError{Flag: "backend", Err: fmt.Errorf(
			"not given, and %s %w: pass --backend or --%s", cfg.VIP.Interface, err, flagAdvertise)}
	}
	own := netip.AddrPortFrom(a, r.BindPort)
	return own, fmt.Sprintf("no --backend: the first backend is this node's kube-apiserver %s (its address on %s); %s", own, cfg.VIP.Interface, rest), nil
}

// decide completes the plan from the request, the inputs and the host
// facts. It reads nothing and asks nothing: table tests give it facts.
func decide(p plan, r request, in inputs, f hostFacts) (plan, error) {
	m := r.Mode
	cfg := in.Config
	var err error
	if p.Stale, err = completeFromHost(&cfg, f, m == modeJoin); err != nil {
		return p, err
	}
	p.OwnBackend = in.FromKubeadm.OwnBackend
	p.Notes = append(p.Notes, in.FromKubeadm.Notes...)
	if len(cfg.Proxy.Backends) == 0 && cfg.Membership.Discover {
		own, note, err := ownAPIServer(cfg, r, f)
		if err != nil {
			return p, err
		}
		if own.IsValid() {
			cfg.Proxy.Backends, p.OwnBackend = []netip.AddrPort{own}, true
			p.Notes = append(p.Notes, note)
		}
	}
	cfg.Complete()
	if err := cfg.Validate(); err != nil {
		return p, err
	}
	p.Config = cfg
	p.Endpoint = netip.AddrPortFrom(cmp.Or(in.FromKubeadm.Endpoint, cfg.VIP.Primary().Addr()), cfg.Proxy.Port)
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
		if f.FilesErr != nil {
			return p, f.FilesErr
		}
		if p.Sources, err = preflight.CheckAddrs(cfg, f.Addrs); err != nil {
			return p, err
		}
	}
	if p.Manifest, err = manifest.Render(cfg, p.Image, Version); err != nil {
		return p, err
	}
	if in.SetEndpoint {
		// Checked now, written only once everything else has passed.
		if f.EditErr != nil {
			return p, f.EditErr
		}
		p.Edit = f.Edit
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
		note, err := f.Image.verdict(r.Offline, r.Force)
		if err != nil {
			return p, err
		}
		p.Notes = append(p.Notes, note)
	}
	return p, nil
}
