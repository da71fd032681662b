package proxy

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// inNetns runs f on a thread switched into the named network namespace.
// Sockets f creates stay in that namespace for good.
func inNetns(t *testing.T, name string, f func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + name)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		f()
		// A thread that cannot go back stays locked and dies with the
		// goroutine.
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

// TestFreebind binds the proxy to an address that is on no interface of
// a fresh namespace (as every node does before VRRP gives it the VIP),
// then adds the address and connects through it.
func TestFreebind(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	ns := fmt.Sprintf("hpx%d-%04x", os.Getpid(), rand.N(0x10000))
	ip(t, "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ip(t, "-n", ns, "link", "set", "lo", "up")
	b := startBackend(t, echo)

	for _, tc := range []struct{ vip, prefix string }{
		{"198.18.0.10", "/32"},
		{"2001:db8::10", "/128"},
	} {
		t.Run(tc.vip, func(t *testing.T) {
			vip := netip.AddrPortFrom(netip.MustParseAddr(tc.vip), 8443)
			var p *Proxy
			var plainErr, listenErr error
			inNetns(t, ns, func() {
				// Without IP_FREEBIND the bind fails: the check is real.
				var ln net.Listener
				if ln, plainErr = net.Listen("tcp", vip.String()); plainErr == nil {
					ln.Close()
				}
				cfg := DefaultConfig(vip)
				if p, listenErr = New(cfg, NewPool([]netip.AddrPort{b.addr}, nil)); listenErr == nil {
					listenErr = p.Listen()
				}
			})
			if plainErr == nil {
				t.Fatalf("plain bind to %v succeeded: the address is not absent", vip)
			}
			if listenErr != nil {
				t.Fatalf("freebind listen on %v: %v", vip, listenErr)
			}
			go p.Serve(t.Context())
			t.Cleanup(func() { p.closeAll() })

			ip(t, "-n", ns, "addr", "add", tc.vip+tc.prefix, "dev", "lo", "nodad")
			// The kernel installs the local route of a new IPv6 address
			// asynchronously: "network is unreachable" for a moment.
			var c net.Conn
			var err error
			eventually(t, "a connection to "+vip.String(), func() bool {
				inNetns(t, ns, func() { c, err = net.Dial("tcp", vip.String()) })
				return err == nil
			})
			defer c.Close()
			roundTrip(t, c, "through the VIP")
		})
	}
}
