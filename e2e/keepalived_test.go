package e2e

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hapod/hapod/internal/lab"
)

// soak is how long a mixed group must keep exactly one holder: half of it
// with keepalived holding, half with hapod holding.
const soak = 60 * time.Second

// TestKeepalivedInterop puts hapod and Debian's keepalived in one virtual
// router: the side with the higher priority wins, failover works both
// ways, and there is never more than one holder.
func TestKeepalivedInterop(t *testing.T) {
	lab.Tool(t, "keepalived", "keepalived")
	for _, tc := range []struct {
		name     string
		version  int
		interval time.Duration
		unicast  bool
		password string
	}{
		{"v3-multicast", 3, 100 * time.Millisecond, false, ""},
		{"v3-unicast", 3, 100 * time.Millisecond, true, ""},
		{"v2-password", 2, time.Second, false, "hapod42"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := lab.New(t, 2)
			hn, kn := l.Nodes[0], l.Nodes[1]
			vip := l.VIP4Prefix(0)
			vrid := uint8(77)
			for _, n := range l.Nodes {
				n.ServeTCP(t, netip.AddrPortFrom(n.IPv4, backendPort))
			}
			// keepalived has no proxy: a listener on the VIP's frontend port
			// (IP_FREEBIND) answers the client while keepalived holds it.
			kn.ServeTCP(t, netip.AddrPortFrom(vip.Addr(), frontendPort))
			hapodArgs := func(prio int) []string {
				cfg := hapodConfig(vip, hn, netip.AddrPortFrom(hn.IPv4, backendPort), netip.AddrPortFrom(kn.IPv4, backendPort))
				cfg.VRRP.VRID, cfg.VRRP.Priority = vrid, uint8(prio)
				cfg.VRRP.Version, cfg.VRRP.AdvertInterval = tc.version, tc.interval
				if tc.unicast {
					cfg.VRRP.Peers = []netip.Addr{kn.IPv4}
				}
				if tc.password != "" {
					f := filepath.Join(t.TempDir(), "pass")
					if err := os.WriteFile(f, []byte(tc.password+"\n"), 0o600); err != nil {
						t.Fatal(err)
					}
					cfg.VRRP.AuthPassFile = f
				}
				return runArgs(cfg)
			}
			kaConfig := func(prio uint8) lab.KeepalivedConfig {
				c := lab.KeepalivedConfig{
					Interface: kn.Iface, VRID: vrid, Priority: prio, Interval: tc.interval,
					Version: tc.version, VIP: vip, AuthPass: tc.password, Preempt: true,
				}
				if tc.unicast {
					c.Source = kn.IPv4
					c.Peers = []netip.Addr{hn.IPv4}
				}
				return c
			}
			// Failover detection takes 3 intervals plus skew, plus startup.
			wait := 5*tc.interval + 2*time.Second

			// hapod higher: hapod wins.
			hp := hn.Start(t, hapodBin, hapodArgs(150)...)
			ka := kn.StartKeepalived(t, kaConfig(100))
			waitHolder(t, l, vip.Addr(), hn, wait)

			// hapod leaves (SIGTERM): keepalived takes over.
			hp.Signal(syscall.SIGTERM)
			if err := hp.Wait(3 * time.Second); err != nil {
				t.Fatalf("hapod SIGTERM: %v", err)
			}
			waitHolder(t, l, vip.Addr(), kn, wait)

			// hapod returns with the higher priority and preempts.
			hp = hn.Start(t, hapodBin, hapodArgs(150)...)
			waitHolder(t, l, vip.Addr(), hn, wait)

			// Now keepalived higher: restart both the other way round.
			ka.Signal(syscall.SIGTERM)
			ka.Wait(5 * time.Second)
			hp.Signal(syscall.SIGTERM)
			hp.Wait(3 * time.Second)
			hp = hn.Start(t, hapodBin, hapodArgs(100)...)
			waitHolder(t, l, vip.Addr(), hn, wait)
			ka = kn.StartKeepalived(t, kaConfig(150))
			waitHolder(t, l, vip.Addr(), kn, wait)

			// keepalived fails hard (its VRRP child killed): hapod takes over.
			if err := ka.KillVRRP(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			lab.WaitFor(t, wait, "hapod takes over from a dead keepalived", func() bool { return hn.HasAddr(vip.Addr()) })
			t.Logf("hapod took over %v after keepalived's VRRP process was killed", time.Since(start))
			ka.Wait(5 * time.Second)
			kn.Run(t, "ip", "addr", "del", vip.String(), "dev", kn.Iface) // the VIP a SIGKILLed keepalived leaves behind

			// Soak: keepalived back with the higher priority; exactly one
			// holder at every look for the first half of the soak.
			ka = kn.StartKeepalived(t, kaConfig(150))
			waitHolder(t, l, vip.Addr(), kn, wait)
			soakHolder(t, l, vip.Addr(), kn, soak/2)

			// hapod higher and holding, keepalived the backup.
			ka.Signal(syscall.SIGTERM)
			ka.Wait(5 * time.Second)
			hp.Signal(syscall.SIGTERM)
			hp.Wait(3 * time.Second)
			hp = hn.Start(t, hapodBin, hapodArgs(150)...)
			waitHolder(t, l, vip.Addr(), hn, wait)
			kn.StartKeepalived(t, kaConfig(100))
			waitHolder(t, l, vip.Addr(), hn, wait)

			// hapod fails hard while it holds: no goodbye, the VIP stays on
			// its interface; keepalived takes over and the client reaches the
			// VIP on keepalived's node (its stand-in listener greets as kn).
			if err := hp.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			start = time.Now()
			lab.WaitFor(t, wait, "keepalived takes over from a dead hapod", func() bool { return kn.HasAddr(vip.Addr()) })
			t.Logf("keepalived took over %v after hapod was killed", time.Since(start))
			if err := hp.Wait(3 * time.Second); err == nil {
				t.Fatal("SIGKILLed hapod exited 0")
			}
			if !hn.HasAddr(vip.Addr()) {
				t.Fatalf("SIGKILLed hapod's VIP is gone from %s: the restart below would prove nothing", hn.Name)
			}
			reachVIP(t, l, vip.Addr(), kn.Name, wait)

			// hapod restarted with the higher priority: it removes the VIP
			// its dead predecessor left, then takes the VIP back.
			hp = hn.Start(t, hapodBin, hapodArgs(150)...)
			lab.WaitFor(t, wait, "restarted hapod removes the stale VIP", func() bool {
				return strings.Contains(hp.Log(), "removed the VIP left on the interface by a previous holder")
			})
			waitHolder(t, l, vip.Addr(), hn, wait)
			reachVIP(t, l, vip.Addr(), "", wait)

			// Soak, second half: hapod holds alone at every look.
			soakHolder(t, l, vip.Addr(), hn, soak/2)
		})
	}
}

// soakHolder checks, every 50 ms for d, that want and nobody else holds vip.
func soakHolder(t *testing.T, l *lab.Lab, vip netip.Addr, want *lab.Node, d time.Duration) {
	t.Helper()
	looks := 0
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if h := l.Holders(vip); len(h) != 1 || h[0] != want {
			t.Fatalf("after %d looks: holders %s, want only %s", looks, names(h), want.Name)
		}
		looks++
	}
	t.Logf("soak: %d looks over %v, one holder (%s) each time", looks, d, want.Name)
}

// reachVIP connects from the client to vip's frontend port until a server
// greets, and checks the greeting is from node want (any node when want is
// empty: hapod's proxy picks a backend).
func reachVIP(t *testing.T, l *lab.Lab, vip netip.Addr, want string, timeout time.Duration) {
	t.Helper()
	target := netip.AddrPortFrom(vip, frontendPort)
	var got string
	var err error
	lab.WaitFor(t, timeout, "the client to reach "+target.String(), func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		got, err = l.Client.WhoServes(ctx, target)
		return err == nil
	})
	if want != "" && got != want {
		t.Fatalf("the client reached %s, served by %s; want %s", target, got, want)
	}
}

// waitHolder waits until want, and only want, holds vip.
func waitHolder(t *testing.T, l *lab.Lab, vip netip.Addr, want *lab.Node, timeout time.Duration) {
	t.Helper()
	lab.WaitFor(t, timeout, want.Name+" alone holds "+vip.String(), func() bool {
		h := l.Holders(vip)
		return len(h) == 1 && h[0] == want
	})
}
