package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/hapod/hapod/internal/cri"
	"github.com/hapod/hapod/internal/hostnet"
	"github.com/hapod/hapod/internal/inputfile"
	"github.com/hapod/hapod/internal/preflight"
	"github.com/hapod/hapod/internal/release"
	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/dhcpvip"
	"github.com/hapod/hapod/pkg/kubeadm"
	"github.com/hapod/hapod/pkg/manifest"
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
		&cli.StringFlag{Name: flagKubeadmConfig, Usage: fmt.Sprintf("kubeadm config file (v1beta3 or v1beta4): the VIP and port come from controlPlaneEndpoint (in a join file: discovery.bootstrapToken.apiServerEndpoint), this node's backend from localAPIEndpoint; a regular file of at most %d MiB", inputfile.MaxSize>>20), Category: "Manifest", TakesFile: true},
		&cli.StringFlag{Name: flagImage, Usage: "container image of the pod (required unless hapod is a release build)", Value: defaultImage(), Category: "Manifest"},
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

Examples:
   hapod init ` + exampleFlags + `
   kubeadm init --control-plane-endpoint 198.18.0.10:8443 --upload-certs

   hapod init --kubeadm-config kubeadm.yaml
   kubeadm init --config kubeadm.yaml --upload-certs`,
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
   kubeadm join 198.18.0.10:8443 --control-plane --token ... --discovery-token-ca-cert-hash ... --certificate-key ...

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

// generate makes the manifest and prints or writes it. Every check runs
// before the first byte is written. What it has to say besides the
// manifest (a lease taken, a warning) waits in notes until every check
// has passed, so a failing run prints its one error line and nothing else.
func generate(c *cli.Context, host Host, m mode) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg, err := configFromFlags(c)
	if err != nil {
		return err
	}
	var notes []string
	if cfg.VIP.DHCP && !cfg.VIP.Prefix.IsValid() {
		if m == modeJoin {
			return &config.FieldError{Flag: "vip", Value: "dhcp", Err: errors.New(
				"only 'hapod init' leases the VIP; run the join command it printed (--vip=ADDR --vip-dhcp)")}
		}
		note, err := leaseVIP(c, &cfg, host)
		if err != nil {
			return err
		}
		if c.Bool(flagDryRun) {
			// The manifest cannot be rendered without the address, so a
			// dry run leases too; it must not look like a side-effect-free run.
			note = "dry run: " + note + "; this is a real lease, taken to render the manifest: the server keeps the address for this cluster's client identity, so 'hapod init' without --dry-run normally gets the same one"
		}
		notes = append(notes, note)
	}
	kubeadmFile := c.String(flagKubeadmConfig)
	// On init, a leased VIP (just now, or the first time: --vip=ADDR
	// --vip-dhcp) decides the endpoint, and kubeadm must use it: init
	// sets it in the kubeadm config, right before writing the manifest.
	setEndpoint := kubeadmFile != "" && cfg.VIP.DHCP && m == modeInit
	if kubeadmFile != "" {
		if err := mergeKubeadm(c, &cfg, kubeadmFile, setEndpoint); err != nil {
			return err
		}
	}
	stale, err := completeFromHost(c, &cfg, host, m == modeJoin)
	if err != nil {
		return err
	}
	cfg.Complete()
	if err := cfg.Validate(); err != nil {
		return err
	}
	image := c.String(flagImage)
	if image == "" && !c.IsSet(flagImage) {
		return imageRequired()
	}
	if err := manifest.CheckImage(image); err != nil {
		return &config.FieldError{Flag: flagImage, Value: image, Err: err}
	}
	// init and join run on the node: whatever `hapod run` would fail on
	// at start with these settings on this host fails here, before
	// anything is written. `hapod manifest` may run anywhere (a
	// workstation, GitOps): it checks the settings, not the host.
	if m != modePrint {
		if _, err := preflight.Check(c.Context, cfg, preflight.Host{Addrs: host.Addrs}); err != nil {
			return err
		}
	}
	data, err := manifest.Render(cfg, image, Version)
	if err != nil {
		return err
	}
	var edit *kubeadm.EndpointEdit
	if setEndpoint {
		// Checked now, written only once everything else has passed.
		edit, err = kubeadm.PlanEndpoint(c.Context, kubeadmFile, netip.AddrPortFrom(cfg.VIP.Prefix.Addr(), cfg.Proxy.Port))
		if err != nil {
			return err
		}
	}
	if kubeadmFile == "" {
		if w := portShareWarning(cfg); w != "" {
			notes = append(notes, w)
		}
	}
	for _, w := range cfg.Warnings() {
		notes = append(notes, "warning: "+w)
	}
	if m != modePrint {
		ic, err := checkImage(c, host, image)
		if err != nil {
			return err
		}
		note, err := ic.verdict(c.Bool(flagOffline), c.Bool(flagForce))
		if err != nil {
			return err
		}
		notes = append(notes, note)
	}
	if m == modePrint {
		if _, err := c.App.Writer.Write(data); err != nil {
			return err
		}
		printNotes(c.App.ErrWriter, notes)
		return nil
	}
	return writeManifest(c, cfg, data, m, host, edit, stale, notes)
}

// printNotes prints what a successful run has to say besides its output.
func printNotes(w io.Writer, notes []string) {
	for _, n := range notes {
		fmt.Fprintf(w, "hapod: %s\n", n)
	}
}

// writeManifest writes the manifest, and before it removes a stale VIP
// (nil: none) and makes the kubeadm config's endpoint edit (nil: none),
// which it undoes if the manifest cannot be written. Under --dry-run it
// says what it would do.
func writeManifest(c *cli.Context, cfg config.Config, data []byte, m mode, host Host, edit *kubeadm.EndpointEdit, stale *hostnet.Addr, notes []string) error {
	dir := c.String(flagManifestDir)
	path := filepath.Join(dir, manifest.FileName)
	force := c.Bool(flagForce)
	out, errOut := c.App.Writer, c.App.ErrWriter
	if c.Bool(flagDryRun) {
		printNotes(errOut, notes)
		if stale != nil {
			fmt.Fprintf(errOut, "hapod: dry run: would have %s\n", staleNote(*stale))
		}
		if edit != nil {
			fmt.Fprintf(errOut, "hapod: dry run: would set controlPlaneEndpoint %s in %s (keeping the original as %s)\n", edit.Endpoint, edit.Path, edit.Backup())
		}
		old, err := inputfile.Read(c.Context, path, 0)
		switch {
		case err != nil:
			fmt.Fprintf(errOut, "hapod: dry run: would create %s\n", path)
		case string(old) == string(data):
			fmt.Fprintf(errOut, "hapod: dry run: %s is unchanged\n", path)
		default:
			fmt.Fprintf(errOut, "hapod: dry run: would change %s:\n%s", path, manifest.Diff(string(old), string(data)))
		}
		_, err = out.Write(data)
		return err
	}
	// A different manifest stops the run without --force: find out before
	// the kubeadm config is touched.
	if old, err := inputfile.Read(c.Context, path, 0); err == nil && !bytes.Equal(old, data) && !force {
		err := &manifest.DiffError{Path: path, Diff: manifest.Diff(string(old), string(data))}
		fmt.Fprintf(errOut, "hapod: %s differs from what these settings produce:\n%s", err.Path, err.Diff)
		return err
	}
	if stale != nil {
		if err := host.RemoveAddr(*stale); err != nil {
			return fmt.Errorf("--vip %s: remove the stale VIP: %w", stale.Prefix.Addr(), err)
		}
		notes = append(notes, staleNote(*stale))
	}
	if edit != nil {
		if err := edit.Apply(); err != nil {
			return err
		}
		notes = append(notes, fmt.Sprintf("set controlPlaneEndpoint %s in %s (original kept as %s)", edit.Endpoint, edit.Path, edit.Backup()))
	}
	path, outcome, err := manifest.Write(dir, data, force)
	if err != nil && edit != nil {
		if uerr := edit.Undo(); uerr != nil {
			err = fmt.Errorf("%w; and restoring the kubeadm config failed: %v", err, uerr)
		}
	}
	var de *manifest.DiffError
	if errors.As(err, &de) {
		fmt.Fprintf(errOut, "hapod: %s differs from what these settings produce:\n%s", de.Path, de.Diff)
		return err
	}
	if err != nil {
		if !strings.Contains(err.Error(), path) { // most errors name it already
			err = fmt.Errorf("%s: %w", path, err)
		}
		return err
	}
	printNotes(errOut, notes)
	fmt.Fprintf(out, "hapod: %s %s: VIP %s on %s (VRRPv%d, VRID %d), proxy port %d -> %d backend(s)\n",
		outcome, path, cfg.VIP.Prefix, cfg.VIP.Interface, cfg.VRRP.Version, cfg.VRRP.VRID, cfg.Proxy.Port, len(cfg.Proxy.Backends))
	if m != modeInit {
		fmt.Fprintf(out, "\nNow join the control plane through the VIP:\n\n  kubeadm join %s --control-plane ...\n",
			netip.AddrPortFrom(cfg.VIP.Prefix.Addr(), cfg.Proxy.Port))
		return nil
	}
	endpoint := netip.AddrPortFrom(cfg.VIP.Prefix.Addr(), cfg.Proxy.Port)
	if f := c.String(flagKubeadmConfig); f != "" {
		fmt.Fprintf(out, "\nNow start the control plane:\n\n  kubeadm init --config %s --upload-certs\n", f)
	} else {
		fmt.Fprintf(out, "\nNow start the control plane with the VIP as its endpoint:\n\n  kubeadm init --control-plane-endpoint %s --upload-certs\n", endpoint)
	}
	self := primaryAddr(host, cfg)
	fmt.Fprintf(out, "\nThen, on each other control-plane node, before 'kubeadm join ... --control-plane':\n\n  %s\n", strings.Join(JoinCommand(cfg, c.String(flagImage), self), " "))
	if cfg.VRRP.AuthPassFile != "" {
		fmt.Fprintf(out, "\nCopy %s to the same path on each node first (mode 0600).\n", cfg.VRRP.AuthPassFile)
	}
	return nil
}

// JoinCommand is the `hapod join` command line that gives another node the
// same cluster-wide settings as cfg. The interface and priority are left to
// each node; in unicast mode the peer list gains this node's own address
// (self), and `hapod join` drops whichever peer is the joining node itself.
func JoinCommand(cfg config.Config, image string, self netip.Addr) []string {
	cmd := []string{"hapod", "join"}
	def := config.Default()
	def.VIP.Prefix = cfg.VIP.Prefix
	def.VRRP.Version = cfg.VRRP.Version
	def.Complete()
	join := cfg
	if len(cfg.VRRP.Peers) > 0 && self.IsValid() && !slices.Contains(cfg.VRRP.Peers, self) {
		join.VRRP.Peers = append([]netip.Addr{self}, cfg.VRRP.Peers...)
	}
	for _, f := range config.Fields() {
		switch f.Name {
		case "interface", "priority":
			continue
		}
		vals := f.Values(&join)
		always := f.Name == "vip" || f.Name == "vrid" || f.Name == "backend" || f.Name == "port"
		if !always && slices.Equal(vals, f.Values(&def)) {
			continue
		}
		for _, v := range vals {
			cmd = append(cmd, "--"+f.Name+"="+v)
		}
	}
	if image != defaultImage() {
		cmd = append(cmd, "--"+flagImage+"="+image)
	}
	return cmd
}

// leaseVIP leases the VIP from the site's DHCP server with the cluster's
// identity (a virtual MAC and client ID derived from the VRID and the
// cluster name, the same on every node), before anything else is decided.
// It returns a note saying what it leased.
func leaseVIP(c *cli.Context, cfg *config.Config, host Host) (string, error) {
	if cfg.VIP.Interface == "" {
		ifname, err := host.DefaultInterface()
		if err != nil {
			return "", &config.FieldError{Flag: "interface", Err: fmt.Errorf("not given and not detected for --vip dhcp: %v", err)}
		}
		cfg.VIP.Interface = ifname
	}
	cfg.Complete() // the VRID, which the DHCP identity derives from
	id := dhcpvip.NewIdentity(cfg.VRRP.VRID, cfg.VIP.ClusterName)
	lease, err := host.LeaseVIP(c.Context, dhcpvip.Config{
		Interface: cfg.VIP.Interface,
		Identity:  id,
		Hostname:  "hapod-" + cfg.VIP.ClusterName,
	})
	if err != nil {
		return "", &config.FieldError{Flag: "vip", Value: "dhcp", Err: err}
	}
	cfg.VIP.Prefix = lease.Prefix
	return fmt.Sprintf("leased VIP %s on %s from DHCP server %s for %v (client %s, cluster %q, VRID %d)",
		lease.Prefix, cfg.VIP.Interface, lease.Server, lease.Duration, id.MAC, cfg.VIP.ClusterName, cfg.VRRP.VRID), nil
}

// completeFromHost fills the interface from the VIP's own (on the node
// that holds it) or from the route to the VIP, refuses a VIP that is one
// of this host's own addresses, and on join drops the peer that is this
// host. It returns the VIP when a dead hapod left it on an interface: the
// caller removes it once every check has passed.
func completeFromHost(c *cli.Context, cfg *config.Config, host Host, join bool) (stale *hostnet.Addr, err error) {
	if !cfg.VIP.Prefix.IsValid() {
		return nil, nil // Validate names the missing --vip
	}
	vip := cfg.VIP.Prefix.Addr()
	addrs, err := host.Addrs()
	if err != nil {
		return nil, err
	}
	local := map[netip.Addr]hostnet.Addr{}
	for _, a := range addrs {
		local[a.Prefix.Addr()] = a
	}
	if a, ok := local[vip]; ok {
		v, err := observeLocalVIP(host, a, ownManifestHasVIP(c, vip))
		if err != nil {
			return nil, err
		}
		switch v.classify() {
		case vipNodeAddress:
			return nil, &config.FieldError{Flag: "vip", Value: vip.String(), Err: fmt.Errorf(
				"already an address of %s on this host: the VIP must be an address no node owns", a.Interface)}
		case vipStale:
			stale = &a
		}
		// Held or left behind, the VIP is on the interface hapod chose
		// for it; the route to it now goes over lo. The manifest comes
		// out as on a node without the VIP.
		if cfg.VIP.Interface == "" {
			cfg.VIP.Interface = a.Interface
		}
	}
	if join {
		cfg.VRRP.Peers = slices.DeleteFunc(cfg.VRRP.Peers, func(p netip.Addr) bool { _, ok := local[p]; return ok })
	}
	for _, p := range cfg.VRRP.Peers {
		if _, ok := local[p]; ok {
			return nil, &config.FieldError{Flag: "peer", Value: p.String(), Err: errors.New("is this host's own address; peers are the other nodes")}
		}
	}
	if cfg.VIP.Interface == "" {
		ifname, err := host.RouteInterface(vip)
		if err != nil {
			return nil, &config.FieldError{Flag: "interface", Err: fmt.Errorf("not given and not detected: %v", err)}
		}
		cfg.VIP.Interface = ifname
	}
	return stale, nil
}

// ownManifestHasVIP reports whether the manifest directory already holds a
// hapod manifest for vip.
func ownManifestHasVIP(c *cli.Context, vip netip.Addr) bool {
	path := manifestPath(c.String(flagManifestDir))
	if path == "" {
		return false
	}
	p, ok, err := manifestVIP(c.Context, path)
	return err == nil && ok && p.Addr() == vip
}

// primaryAddr is this node's own address on the VIP's interface, in the
// VIP's family: what the other nodes name as --peer.
func primaryAddr(host Host, cfg config.Config) netip.Addr {
	addrs, err := host.Addrs()
	if err != nil {
		return netip.Addr{}
	}
	vip := cfg.VIP.Prefix.Addr()
	for _, a := range addrs {
		ip := a.Prefix.Addr()
		if a.Interface == cfg.VIP.Interface && ip != vip && ip.Is4() == vip.Is4() && !ip.IsLinkLocalUnicast() {
			return ip
		}
	}
	return netip.Addr{}
}

// mergeKubeadm takes the VIP, port and this node's backend from a kubeadm
// config where the flags left them unset, and refuses disagreements and
// the port-6443 conflict. With setEndpoint the file's endpoint is about
// to be replaced by the leased VIP, so it is neither used nor compared.
func mergeKubeadm(c *cli.Context, cfg *config.Config, path string, setEndpoint bool) error {
	f, err := kubeadm.Load(c.Context, path)
	if err != nil {
		return err
	}
	s, err := f.Settings()
	// A DNS name is fine when --vip says which address it stands for;
	// hapod does not resolve it (no network while making a manifest).
	if err != nil && !(errors.Is(err, kubeadm.ErrDNSEndpoint) && c.IsSet("vip")) {
		return err
	}
	check := s
	if setEndpoint {
		// The lease decides the endpoint; init will set it.
		check.EndpointSet, check.EndpointName = false, ""
	}
	if check.EndpointSet || check.EndpointName != "" {
		ep := s.Endpoint
		if check.EndpointSet && !c.IsSet("vip") {
			cfg.VIP.Prefix = netip.PrefixFrom(ep.Addr(), ep.Addr().BitLen())
		}
		if c.IsSet("port") && cfg.Proxy.Port != ep.Port() {
			return &config.FieldError{Flag: "port", Value: fmt.Sprint(cfg.Proxy.Port), Err: fmt.Errorf(
				"differs from the port of %s %s in %s: clients would reach the VIP on a port nobody listens on", s.EndpointField, s.EndpointString(), path)}
		}
		cfg.Proxy.Port = ep.Port()
	}
	if !c.IsSet("vip") && cfg.VIP.Prefix.IsValid() {
		// Most likely a join file whose discovery points at one node.
		for _, b := range cfg.Proxy.Backends {
			if b.Addr() == cfg.VIP.Prefix.Addr() {
				return fmt.Errorf("%s: %w: %s %s is also --backend %s; hapod takes the VIP from it, so it must be the VIP, not a kube-apiserver's own address (or pass --vip)",
					path, kubeadm.ErrVIPIsNodeAddress, s.EndpointField, s.EndpointString(), b)
			}
		}
	}
	// Whether the VIP came from --vip or from the file, it must not be a
	// node's own address.
	if err := kubeadm.CheckVIP(cfg.VIP.Prefix.Addr(), check); err != nil {
		return err // names the file already
	}
	if !c.IsSet("backend") && s.AdvertiseAddress.IsValid() {
		cfg.Proxy.Backends = []netip.AddrPort{netip.AddrPortFrom(s.AdvertiseAddress, s.BindPort)}
	}
	if err := kubeadm.CheckPortConflict(cfg.Proxy.Port, s); err != nil {
		return err // names the file already
	}
	return nil
}

// portShareWarning warns when, without a kubeadm config to tell, the
// proxy's port equals a backend's: kube-apiserver binds the wildcard by
// default.
func portShareWarning(cfg config.Config) string {
	for _, b := range cfg.Proxy.Backends {
		if b.Port() == cfg.Proxy.Port {
			return fmt.Sprintf("warning: --port %d is also the kube-apiservers' port; unless they bind a specific address (apiServer extraArgs bind-address), kube-apiserver and kubeadm's Port-%d preflight check collide with the proxy on the VIP", cfg.Proxy.Port, cfg.Proxy.Port)
		}
	}
	return ""
}
