package daemon

import (
	"net/netip"

	"github.com/hapod/hapod/pkg/proxy"
	"github.com/hapod/hapod/pkg/vrrp"
)

// suspectsAfter returns the backends that transition tr gives evidence
// against: on a takeover because the active router's adverts stopped
// (master down), the backends on that router's address. A router that
// goes silent without a priority-0 goodbye is most likely a crashed or
// cut-off host, and its kube-apiserver went with it; the health checker
// needs fall x interval to agree, and meanwhile the new holder's proxy
// would send clients there to wait for SYNs that are never answered. A
// graceful stop (priority 0) is no such evidence: the node's apiserver
// usually stays up (an upgrade, hapod reset).
//
// Matching is by address: it works where the VRRP source address is the
// node's apiserver address (kubeadm's advertise address on the VIP's
// interface, as usual), and finds nothing otherwise.
func suspectsAfter(tr vrrp.Transition, backends []netip.AddrPort) []netip.AddrPort {
	if tr.Reason != vrrp.ReasonMasterDown || tr.To != vrrp.StateActive || !tr.Peer.IsValid() {
		return nil
	}
	var out []netip.AddrPort
	for _, b := range backends {
		if b.Addr().Unmap() == tr.Peer.Unmap() {
			out = append(out, b)
		}
	}
	return out
}

// backendAddrs are the addresses of pool's backends now: the configured
// ones and those membership added.
func backendAddrs(pool *proxy.Pool) []netip.AddrPort {
	bs := pool.Backends()
	out := make([]netip.AddrPort, 0, len(bs))
	for _, b := range bs {
		out = append(out, b.Addr)
	}
	return out
}
