package kubeadm

import (
	"encoding/json"
	"fmt"
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

// memberGrace is --member-grace of TestKubeadmMulticast's nodes: short,
// so that removedAndRejoined sees a removal within the test.
const memberGrace = 20 * time.Second

// hapodStatus is node n's `hapod status -o json`, false while it does not
// answer (an unhealthy node still prints its report).
func hapodStatus(t *testing.T, n *node) (status.Report, bool) {
	out, _ := n.output(t, hapodBin, "status", "-o", "json")
	var r status.Report
	if out == "" || json.Unmarshal([]byte(out), &r) != nil {
		return r, false
	}
	return r, true
}

// upBackends are the backends r reports up, sorted.
func upBackends(r status.Report) []netip.AddrPort {
	var up []netip.AddrPort
	for _, b := range r.Backends {
		if b.Health == status.HealthUp {
			up = append(up, b.Address)
		}
	}
	slices.SortFunc(up, netip.AddrPort.Compare)
	return up
}

// apiservers are the kube-apiservers of nodes, sorted.
func apiservers(nodes []*node) []netip.AddrPort {
	var out []netip.AddrPort
	for _, n := range nodes {
		out = append(out, netip.AddrPortFrom(n.IPv4, apiserverPort))
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}

// discovered is scenario "discovered": every node was given no --backend
// (its own kube-apiserver is its first, by `hapod init`/`join`), and each
// ends up proxying to all three, each up, from the default/kubernetes
// Endpoints read with its kubelet identity.
func (c *cluster) discovered(t *testing.T) {
	want := apiservers(c.nodes)
	start := time.Now()
	for _, n := range c.nodes {
		var r status.Report
		var ok bool
		defer func() {
			if t.Failed() {
				t.Logf("%s: last status (read %v): backends %+v; %s", n.name, ok, r.Backends, membersLine(r))
				c.logHapod(t, 60)
			}
		}()
		lab.WaitFor(t, 2*time.Minute, n.name+"'s hapod proxying to the three apiservers", func() bool {
			r, ok = hapodStatus(t, n)
			return ok && slices.Equal(upBackends(r), want)
		})
		t.Logf("%s: 3 backends up %v into this step; %s", n.name, time.Since(start).Round(100*time.Millisecond), membersLine(r))
	}
}

func membersLine(r status.Report) string {
	if r.Membership == nil {
		return "no membership"
	}
	var members []string
	for _, m := range r.Membership.Members {
		members = append(members, m.Address.String()+" ("+m.Source+")")
	}
	return "members " + strings.Join(members, ", ") + fmt.Sprintf("; reads %v", r.Membership.Reads)
}

// removedAndRejoined is scenario "remove-node-and-rejoin": a node that is
// not the VIP holder leaves the control plane the README's way (`hapod
// reset`, `kubeadm reset`, which removes its etcd member, `kubectl delete
// node`); once its apiserver is out of the default/kubernetes Endpoints,
// every other node drops it after --member-grace, not before, with no
// manifest rewritten; joined again, it is back everywhere.
func (c *cluster) removedAndRejoined(t *testing.T) {
	h := c.holder(t)
	var n *node
	var others []*node
	for _, m := range c.nodes {
		if m != h && n == nil {
			n = m
		} else {
			others = append(others, m)
		}
	}
	manifests := map[*node][]byte{}
	for _, m := range others {
		manifests[m] = readFile(t, m.hostPath("/etc/kubernetes/manifests/hapod.yaml"))
	}
	out := n.must(t, hapodBin, "reset")
	t.Logf("%s$ hapod reset\n%s", n.name, indent(out))
	n.stopKubelet()
	c.kubeadm(t, n, "reset", "-f")
	resetAt := time.Now()
	if out, err := c.kubectl(t.Context(), h, "delete", "node", n.name); err != nil {
		t.Fatalf("kubectl delete node %s: %v\n%s", n.name, err, out)
	}
	gone := netip.AddrPortFrom(n.IPv4, apiserverPort)
	// When each node said it would drop it: its grace period's end.
	removeAt := map[*node]time.Time{}
	lab.WaitFor(t, memberGrace+3*time.Minute, n.name+"'s apiserver gone from every other node's backends", func() bool {
		all := true
		for _, m := range others {
			r, ok := hapodStatus(t, m)
			if !ok {
				return false
			}
			listed := slices.ContainsFunc(r.Backends, func(b status.BackendReport) bool { return b.Address == gone })
			if listed && r.Membership != nil && removeAt[m].IsZero() {
				for _, mm := range r.Membership.Members {
					if mm.Address == gone && !mm.RemoveAt.IsZero() {
						removeAt[m] = mm.RemoveAt
					}
				}
			}
			all = all && !listed
		}
		return all
	})
	took := time.Since(resetAt)
	for _, m := range others {
		if removeAt[m].IsZero() {
			t.Errorf("%s never showed %s's removal pending (grace %v)", m.name, gone, memberGrace)
		} else if early := time.Until(removeAt[m]); early > 0 {
			// Seen gone before the end of the grace period it announced
			// (same machine, same clock).
			t.Errorf("%s dropped %s %v before the end of its grace period", m.name, gone, early)
		}
		if got := readFile(t, m.hostPath("/etc/kubernetes/manifests/hapod.yaml")); string(got) != string(manifests[m]) {
			t.Errorf("%s's hapod.yaml changed", m.name)
		}
	}
	t.Logf("%s reset and deleted: its apiserver left every other node's backends %v later (grace %v); no manifest rewritten",
		n.name, took.Round(100*time.Millisecond), memberGrace)

	c.rejoin(t, n, nil)
	rejoinedAt := time.Now()
	want := apiservers(c.nodes)
	for _, m := range c.nodes {
		lab.WaitFor(t, 2*time.Minute, m.name+"'s hapod proxying to the three apiservers again", func() bool {
			r, ok := hapodStatus(t, m)
			return ok && slices.Equal(upBackends(r), want)
		})
	}
	t.Logf("%s joined again: every node proxies to it %v after kubeadm join returned", n.name, time.Since(rejoinedAt).Round(100*time.Millisecond))
}
