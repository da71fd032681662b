package e2e

import (
	"net/netip"

	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/health"
)

// hapodConfig is the Config an e2e hapod starts from: the defaults, the VIP
// on n's lab interface, the frontend on frontendPort and the backends given,
// checked with a TCP connect (the TCP stand-ins answer nothing else). A test
// changes what it needs and renders it with runArgs.
func hapodConfig(vip netip.Prefix, n *lab.Node, backends ...netip.AddrPort) config.Config {
	c := config.Default()
	c.VIP.Prefixes = []netip.Prefix{vip}
	c.VIP.Interface = n.Iface
	c.Proxy.Port = frontendPort
	c.Proxy.Backends = backends
	c.Health.Check = health.KindTCP
	// No kubelet identity in the lab, and the host's /var/lib/hapod is
	// not the test's: the membership tests turn discovery on with their
	// own kubeconfig and state directory.
	c.Membership.Discover = false
	return c
}

// runArgs is `hapod run`'s argument list for c, without the binary:
// "run", then the flag table's rendering of c (config.Config.Args), as the
// manifest carries it.
func runArgs(c config.Config) []string {
	return append([]string{"run"}, c.Args()...)
}
