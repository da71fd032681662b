package kubeadm

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/status"
)

// nodeAccess is scenario "node-identity-access": what the kubelet's own
// identity (kubelet.conf, the Node authorizer) may do with the two lists
// of live apiservers. hapod's discovery GETs the Endpoints; this is the
// check that it may, and that list and watch (an informer) may not.
func (c *cluster) nodeAccess(t *testing.T) {
	n := c.nodes[0]
	checks := []struct {
		verb, resource string
		want           bool
	}{
		{"get", "endpoints/kubernetes", true},
		{"list", "endpoints", false},
		{"watch", "endpoints", false},
		{"get", "endpointslices.discovery.k8s.io/kubernetes", false},
		{"list", "endpointslices.discovery.k8s.io", false},
		{"watch", "endpointslices.discovery.k8s.io", false},
	}
	var table strings.Builder
	for _, ch := range checks {
		// can-i exits 1 for "no" ("no - REASON" when the authorizer
		// gave one): the answer is the first word of its output.
		out, err := n.output(t, "kubectl", "--kubeconfig=/etc/kubernetes/kubelet.conf", "--request-timeout=5s",
			"auth", "can-i", ch.verb, ch.resource, "-n", "default")
		got := ""
		if f := strings.Fields(out); len(f) > 0 {
			got = f[0]
		}
		table.WriteString("  " + ch.verb + " " + ch.resource + ": " + strings.TrimSpace(out) + "\n")
		if want := map[bool]string{true: "yes", false: "no"}[ch.want]; got != want {
			t.Errorf("kubelet.conf identity: can-i %s %s = %q (%v), want %s", ch.verb, ch.resource, out, err, want)
		}
	}
	t.Logf("%s$ kubectl --kubeconfig /etc/kubernetes/kubelet.conf auth can-i VERB RESOURCE -n default\n%s", n.name, table.String())
}

// discovered is scenario "discovered": every node was given no --backend
// (its own kube-apiserver is its first, by `hapod init`/`join`), and each
// ends up proxying to all three, each up, from the default/kubernetes
// Endpoints read with its kubelet identity.
func (c *cluster) discovered(t *testing.T) {
	var want []netip.AddrPort
	for _, n := range c.nodes {
		want = append(want, netip.AddrPortFrom(n.IPv4, apiserverPort))
	}
	slices.SortFunc(want, netip.AddrPort.Compare)
	start := time.Now()
	for _, n := range c.nodes {
		var r status.Report
		lab.WaitFor(t, 2*time.Minute, n.name+"'s hapod proxying to the three apiservers", func() bool {
			out, err := n.output(t, hapodBin, "status", "-o", "json")
			if out == "" && err != nil {
				return false // not answering yet; unhealthy still prints
			}
			r = status.Report{}
			if json.Unmarshal([]byte(out), &r) != nil {
				return false
			}
			var up []netip.AddrPort
			for _, b := range r.Backends {
				if b.Health == status.HealthUp {
					up = append(up, b.Address)
				}
			}
			slices.SortFunc(up, netip.AddrPort.Compare)
			return slices.Equal(up, want)
		})
		var members []string
		if r.Membership != nil {
			for _, m := range r.Membership.Members {
				members = append(members, m.Address.String()+" ("+m.Source+")")
			}
		}
		t.Logf("%s: 3 backends up %v into this step; members %s; reads %v", n.name,
			time.Since(start).Round(100*time.Millisecond), strings.Join(members, ", "), r.Membership.Reads)
	}
}
