package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
	"github.com/hapod/hapod/pkg/config"
)

// tsharkFields are what TestTsharkDaemonAdverts reads from each frame.
var tsharkFields = []string{
	"frame.protocols", "ip.src", "ip.dst", "ip.ttl", "ip.dsfield.dscp",
	"ipv6.src", "ipv6.dst", "ipv6.hlim", "ipv6.tclass.dscp",
	"vrrp.version", "vrrp.type", "vrrp.virt_rtr_id", "vrrp.prio", "vrrp.addr_count",
	"vrrp.adver_int", "vrrp.short_adver_int", "vrrp.ip_addr", "vrrp.ipv6_addr",
	"vrrp.auth_type", "vrrp.auth_string", "vrrp.checksum.status",
	"_ws.malformed", "_ws.expert",
}

// TestTsharkDaemonAdverts has tshark, an independent dissector, read the
// adverts the real hapod daemon puts on the wire (pkg/vrrp's TestTshark
// covers its raw socket alone): two nodes, a capture on the lab's bridge
// while the holder advertises, resigns on SIGTERM (priority 0) and the
// other takes over. Every frame must be a well-formed VRRP advert of the
// configured version, VRID, priority (or 0), interval, VIP and password,
// from a node's primary address to the group or the peer, TTL/hop limit
// 255, DSCP CS6, checksum good, no expert info.
func TestTsharkDaemonAdverts(t *testing.T) {
	lab.Tool(t, "tshark", "tshark")
	const (
		vrid     = 42
		priority = 120
		password = "hapod42"
	)
	for _, tc := range []struct {
		name     string
		ipv6     bool
		unicast  bool
		version  int
		password string
	}{
		{"v3-ipv4-multicast", false, false, 3, ""},
		{"v3-ipv6-multicast", true, false, 3, ""},
		{"v3-ipv4-unicast", false, true, 3, ""},
		{"v2-ipv4-password", false, false, 2, password},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var passFile string
			if tc.password != "" {
				passFile = filepath.Join(t.TempDir(), "pass")
				if err := os.WriteFile(passFile, []byte(tc.password+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			configure := func(c *config.Config) {
				c.VRRP.VRID, c.VRRP.Priority, c.VRRP.Version = vrid, priority, tc.version
				c.VRRP.AuthPassFile = passFile
			}
			c := newCluster(t, clusterOptions{nodes: 2, ipv6: tc.ipv6, unicast: tc.unicast, configure: configure})
			holder := c.stableOneHolder(300 * time.Millisecond)
			// Until the health checks pass, the priority is lowered by the
			// no-backend weight; capture full-priority adverts only.
			lab.WaitFor(t, 10*time.Second, "both nodes at full priority", func() bool {
				return c.vrrpStatus(0).EffectivePriority == priority && c.vrrpStatus(1).EffectivePriority == priority
			})
			other := c.lab.Nodes[1-c.index(holder)]
			primary := map[netip.Addr]*lab.Node{c.primary(holder): holder, c.primary(other): other}
			peer := map[*lab.Node]netip.Addr{holder: c.primary(other), other: c.primary(holder)}

			src, dst, ttl, dscp, addrs := "ip.src", "ip.dst", "ip.ttl", "ip.dsfield.dscp", "vrrp.ip_addr"
			if tc.ipv6 {
				src, dst, ttl, dscp, addrs = "ipv6.src", "ipv6.dst", "ipv6.hlim", "ipv6.tclass.dscp", "vrrp.ipv6_addr"
			}
			// count is how many adverts of priority prio from n tshark has
			// dissected.
			count := func(frames []map[string]string, n *lab.Node, prio int) int {
				k := 0
				for _, f := range frames {
					a, _ := netip.ParseAddr(f[src])
					if primary[a] == n && f["vrrp.prio"] == fmt.Sprint(prio) {
						k++
					}
				}
				return k
			}
			capture := c.lab.CaptureBridge(t, "ip proto 112 or ip6 proto 112", tsharkFields...)
			lab.WaitFor(t, 10*time.Second, "3 adverts from the holder in the capture", func() bool {
				return count(capture.Frames(), holder, priority) >= 3
			})
			// SIGTERM: a priority-0 advert, then the other takes over.
			if err := c.kill(c.index(holder), syscall.SIGTERM); err != nil {
				t.Fatalf("SIGTERM: %v", err)
			}
			if next, _ := c.waitOneHolder(5*time.Second, holder); next != other {
				t.Fatalf("%s took over, want %s", next.Name, other.Name)
			}
			lab.WaitFor(t, 10*time.Second, "3 adverts from the new holder in the capture", func() bool {
				return count(capture.Frames(), other, priority) >= 3
			})
			frames := capture.Stop(t)

			want := map[string]string{
				"vrrp.version": fmt.Sprint(tc.version), "vrrp.type": "1", "vrrp.virt_rtr_id": fmt.Sprint(vrid),
				"vrrp.addr_count": "1", "vrrp.checksum.status": "1", "_ws.malformed": "", "_ws.expert": "",
			}
			want[ttl], want[dscp], want[addrs] = "255", "48", c.vip.Addr().String()
			if tc.version == 3 {
				want["vrrp.short_adver_int"] = "10" // centiseconds: the default 100 ms
			} else {
				want["vrrp.adver_int"] = "1" // seconds
				want["vrrp.auth_type"] = "1" // simple text password
				want["vrrp.auth_string"] = tc.password
			}
			group := "224.0.0.18"
			if tc.ipv6 {
				group = "ff02::12"
			}

			// The story the frames must tell, per sender: full-priority
			// adverts from the holder, its priority-0 goodbye, then the
			// other's full-priority adverts.
			var story []string
			for i, f := range frames {
				if !strings.HasSuffix(f["frame.protocols"], ":vrrp") {
					t.Errorf("frame %d: protocols %s, want VRRP", i+1, f["frame.protocols"])
				}
				for k, v := range want {
					if f[k] != v {
						t.Errorf("frame %d: %s = %q, want %q", i+1, k, f[k], v)
					}
				}
				from, err := netip.ParseAddr(f[src])
				n := primary[from]
				if err != nil || n == nil {
					t.Errorf("frame %d: from %q, not a node's primary address %v", i+1, f[src], primary)
					continue
				}
				to := group
				if tc.unicast {
					to = peer[n].String()
				}
				if f[dst] != to {
					t.Errorf("frame %d from %s: to %s, want %s", i+1, n.Name, f[dst], to)
				}
				p := f["vrrp.prio"]
				if p != fmt.Sprint(priority) && p != "0" {
					t.Errorf("frame %d from %s: priority %s, want %d or 0", i+1, n.Name, p, priority)
				}
				step := n.Name + "/" + p
				if len(story) == 0 || story[len(story)-1] != step {
					story = append(story, step)
				}
			}
			t.Logf("%d frames: %s", len(frames), strings.Join(story, " "))
			wantStory := []string{holder.Name + "/" + fmt.Sprint(priority), holder.Name + "/0", other.Name + "/" + fmt.Sprint(priority)}
			if !slices.Equal(story, wantStory) {
				t.Errorf("senders and priorities in order: %v, want %v", story, wantStory)
			}
			if n := count(frames, holder, 0); n < 1 {
				t.Errorf("no priority-0 advert from %s after its SIGTERM", holder.Name)
			}
		})
	}
}
