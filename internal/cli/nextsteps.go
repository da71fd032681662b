package cli

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/hapod/hapod/pkg/config"
)

// printNextSteps says what apply wrote and what to run next: on init the
// kubeadm init command and the `hapod join` command for the other nodes,
// on join the kubeadm join command.
func printNextSteps(out io.Writer, p plan, a applied) {
	cfg := p.Config
	fmt.Fprintf(out, "hapod: %s %s: VIP %s on %s (VRRPv%d, VRID %d), proxy port %d -> %d backend(s)\n",
		a.Outcome, a.Path, cfg.VIP.Primary(), cfg.VIP.Interface, cfg.VRRP.Version, cfg.VRRP.VRID, cfg.Proxy.ListenPort, len(cfg.Proxy.Backends))
	endpoint := netip.AddrPortFrom(cfg.VIP.Primary().Addr(), cfg.Proxy.Port)
	fmt.Fprintf(out, "hapod: endpoint %s: %s\n", endpoint, endpointMode(cfg.Proxy))
	if p.Mode != modeInit {
		fmt.Fprintf(out, "\nNow join the control plane through the VIP:\n\n  kubeadm join %s --control-plane ...\n", endpoint)
		return
	}
	if p.KubeadmFile != "" {
		fmt.Fprintf(out, "\nNow start the control plane:\n\n  kubeadm init --config %s --upload-certs\n", p.KubeadmFile)
	} else {
		fmt.Fprintf(out, "\nNow start the control plane with the VIP as its endpoint:\n\n  kubeadm init --control-plane-endpoint %s --upload-certs\n", endpoint)
	}
	join := cfg
	if p.OwnBackend {
		// Each node takes its own apiserver and discovers the others.
		join.Proxy.Backends = nil
	}
	fmt.Fprintf(out, "\nThen, on each other control-plane node, before 'kubeadm join ... --control-plane':\n\n  %s\n", strings.Join(JoinCommand(join, p.Image, p.Sources), " "))
	if cfg.VRRP.AuthPassFile != "" {
		fmt.Fprintf(out, "\nCopy %s to the same path on each node first (mode 0600).\n", cfg.VRRP.AuthPassFile)
	}
}

// endpointMode says how clients of VIP:--port reach the proxy.
func endpointMode(p config.Proxy) string {
	if p.Redirect() {
		return fmt.Sprintf("redirected by hapod's nftables rule to the proxy on port %d while this node has a healthy backend; the kube-apiservers keep port %d on all addresses (kubeadm's default)", p.ListenPort, p.Port)
	}
	return "the proxy listens there itself"
}

// JoinCommand is the `hapod join` command line that gives another node the
// same cluster-wide settings as cfg. The interface and priority are left to
// each node; in unicast mode the peer list gains this node's own
// addresses (self, one per virtual router), and `hapod join` drops
// whichever peers are the joining node itself.
func JoinCommand(cfg config.Config, image string, self map[config.Family]netip.Addr) []string {
	cmd := []string{"hapod", "join"}
	def := config.Default()
	def.VIP.Prefixes = cfg.VIP.Prefixes
	def.VRRP.Version = cfg.VRRP.Version
	// The listen port derives from these: it is left out when the
	// joining node would derive the same.
	def.Proxy.Port, def.Proxy.Backends = cfg.Proxy.Port, cfg.Proxy.Backends
	def.Complete()
	join := cfg
	if len(cfg.VRRP.Peers) > 0 {
		var own []netip.Addr
		for _, f := range []config.Family{config.IPv4, config.IPv6} {
			if a, ok := self[f]; ok && !slices.Contains(cfg.VRRP.Peers, a) {
				own = append(own, a)
			}
		}
		join.VRRP.Peers = append(own, cfg.VRRP.Peers...)
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
