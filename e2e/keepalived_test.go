package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hapod/hapod/e2e/lab"
)

// soak is how long a mixed group must keep exactly one holder.
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
			hapodArgs := func(prio int) []string {
				args := []string{"run", "--vip=" + vip.String(), "--interface=" + hn.Iface,
					fmt.Sprintf("--vrid=%d", vrid), fmt.Sprintf("--priority=%d", prio),
					fmt.Sprintf("--vrrp-version=%d", tc.version), "--advert-interval=" + tc.interval.String(),
					fmt.Sprintf("--port=%d", frontendPort), "--health-check=tcp",
					fmt.Sprintf("--backend=%s", netip.AddrPortFrom(hn.IPv4, backendPort)),
					fmt.Sprintf("--backend=%s", netip.AddrPortFrom(kn.IPv4, backendPort))}
				if tc.unicast {
					args = append(args, "--peer="+kn.IPv4.String())
				}
				if tc.password != "" {
					f := filepath.Join(t.TempDir(), "pass")
					if err := os.WriteFile(f, []byte(tc.password+"\n"), 0o600); err != nil {
						t.Fatal(err)
					}
					args = append(args, "--auth-pass-file="+f)
				}
				return args
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
			hn.Start(t, hapodBin, hapodArgs(100)...)
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
			// holder at every look for the whole soak.
			ka = kn.StartKeepalived(t, kaConfig(150))
			waitHolder(t, l, vip.Addr(), kn, wait)
			end := time.Now().Add(soak)
			looks := 0
			for time.Now().Before(end) {
				if h := l.Holders(vip.Addr()); len(h) != 1 || h[0] != kn {
					t.Fatalf("after %d looks: holders %s, want only %s", looks, names(h), kn.Name)
				}
				looks++
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("soak: %d looks over %v, one holder (keepalived) each time", looks, soak)
		})
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
