package vrrp

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	// Named netlab here: speaker_test.go's simulated LAN is type lab.
	netlab "github.com/hapod/hapod/internal/lab"
)

var wUpdate = flag.Bool("update", false, "rewrite testdata/keepalived-*.bin from a live keepalived")

// The lab: two hosts, a and b, on fixed subnets (the pinned keepalived
// captures carry b's address): a is .1, b is .2 with a second address .12.
var (
	wLabA4  = netip.MustParseAddr("198.18.0.1")
	wLabB4  = netip.MustParseAddr("198.18.0.2")
	wLabB4x = netip.MustParseAddr("198.18.0.12") // a second address on b: not a peer
	wLabA6  = netip.MustParseAddr("2001:db8::1")
	wLabB6  = netip.MustParseAddr("2001:db8::2")
	wLabB6x = netip.MustParseAddr("2001:db8::12")
)

const wLabIf = "eth0"

type wLab struct {
	a, b *netlab.Node
}

func wNewLab(t *testing.T) *wLab {
	t.Helper()
	l := netlab.NewWith(t, netlab.Options{Nodes: 2,
		Prefix4: netip.MustParsePrefix("198.18.0.0/24"), Prefix6: netip.MustParsePrefix("2001:db8::/64")})
	w := &wLab{a: l.Nodes[0], b: l.Nodes[1]}
	if w.a.IPv4 != wLabA4 || w.b.IPv4 != wLabB4 || w.a.IPv6 != wLabA6 || w.b.IPv6 != wLabB6 {
		t.Fatalf("lab hosts %v %v %v %v, want %v %v %v %v", w.a.IPv4, w.b.IPv4, w.a.IPv6, w.b.IPv6, wLabA4, wLabB4, wLabA6, wLabB6)
	}
	w.b.Run(t, "ip", "addr", "add", netip.PrefixFrom(wLabB4x, 24).String(), "dev", wLabIf)
	w.b.Run(t, "ip", "addr", "add", netip.PrefixFrom(wLabB6x, 64).String(), "dev", wLabIf, "nodad")
	return w
}

// wInNS runs f on a thread switched into n's namespace: sockets opened by f
// stay there for good.
func wInNS(t *testing.T, n *netlab.Node, f func()) {
	t.Helper()
	if err := n.Do(func() error { f(); return nil }); err != nil {
		t.Fatal(err)
	}
}

func wDialIn(t *testing.T, n *netlab.Node, cfg ConnConfig) *RawConn {
	t.Helper()
	var c *RawConn
	var err error
	wInNS(t, n, func() { c, err = Dial(cfg) })
	if err != nil {
		t.Fatalf("Dial in %s: %v", n.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// receiver runs Receive in the background.
type wReceiver struct {
	ch chan Received
	mu sync.Mutex
	// err is the error that ended the loop.
	err error
}

func wStartReceiver(t *testing.T, c *RawConn) *wReceiver {
	r := &wReceiver{ch: make(chan Received, 16)}
	go func() {
		for {
			got, err := c.Receive()
			if err != nil {
				r.mu.Lock()
				r.err = err
				r.mu.Unlock()
				close(r.ch)
				return
			}
			r.ch <- got
		}
	}()
	return r
}

func (r *wReceiver) next(t *testing.T) Received {
	t.Helper()
	select {
	case got, ok := <-r.ch:
		if !ok {
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("receive loop ended: %v", r.err)
		}
		return got
	case <-time.After(10 * time.Second): // a hang guard, not a speed check
		t.Fatal("no advert received")
	}
	return Received{}
}

// sendTTL sends b from src to dst with a plain raw socket in n, with the
// given TTL / hop limit: what a forwarded or spoofed advert looks like.
func wSendTTL(t *testing.T, n *netlab.Node, src, dst netip.Addr, b []byte, ttl int) {
	t.Helper()
	if err := wSendRaw(n, src, dst, b, ttl); err != nil {
		t.Fatal(err)
	}
}

func wSendRaw(n *netlab.Node, src, dst netip.Addr, b []byte, ttl int) error {
	err := n.Do(func() error {
		ifi, err := net.InterfaceByName(wLabIf)
		if err != nil {
			return err
		}
		if src.Is4() {
			c, err := net.ListenPacket("ip4:112", "0.0.0.0")
			if err != nil {
				return err
			}
			defer c.Close()
			pc := ipv4.NewPacketConn(c)
			pc.SetTTL(ttl)
			pc.SetMulticastTTL(ttl)
			_, err = pc.WriteTo(b, &ipv4.ControlMessage{Src: src.AsSlice(), IfIndex: ifi.Index}, &net.IPAddr{IP: dst.AsSlice()})
			return err
		}
		c, err := net.ListenPacket("ip6:112", "::")
		if err != nil {
			return err
		}
		defer c.Close()
		pc := ipv6.NewPacketConn(c)
		_, err = pc.WriteTo(b, &ipv6.ControlMessage{Src: src.AsSlice(), IfIndex: ifi.Index, HopLimit: ttl},
			&net.IPAddr{IP: dst.AsSlice(), Zone: strconv.Itoa(ifi.Index)})
		return err
	})
	if err != nil {
		return fmt.Errorf("send with TTL %d: %w", ttl, err)
	}
	return nil
}

func TestRawConnLab(t *testing.T) {
	netlab.RequireRoot(t)
	tests := []struct {
		name      string
		version   Version
		a, b, bx  netip.Addr
		unicast   bool
		password  string
		interval  time.Duration
		vip       netip.Addr
		otherVers bool // also send an advert of the other version
	}{
		{"v3 IPv4 multicast", Version3, wLabA4, wLabB4, wLabB4x, false, "", 100 * time.Millisecond, netip.MustParseAddr("198.18.0.100"), true},
		{"v3 IPv4 unicast", Version3, wLabA4, wLabB4, wLabB4x, true, "", time.Second, netip.MustParseAddr("198.18.0.100"), true},
		{"v3 IPv6 multicast", Version3, wLabA6, wLabB6, wLabB6x, false, "", 100 * time.Millisecond, netip.MustParseAddr("2001:db8::100"), false},
		{"v3 IPv6 unicast", Version3, wLabA6, wLabB6, wLabB6x, true, "", time.Second, netip.MustParseAddr("2001:db8::100"), false},
		{"v2 IPv4 multicast password", Version2, wLabA4, wLabB4, wLabB4x, false, "secret", time.Second, netip.MustParseAddr("198.18.0.100"), true},
		{"v2 IPv4 unicast", Version2, wLabA4, wLabB4, wLabB4x, true, "", time.Second, netip.MustParseAddr("198.18.0.100"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := wNewLab(t)
			cfg := func(src netip.Addr, peer netip.Addr) ConnConfig {
				c := ConnConfig{Interface: wLabIf, Source: src, VRID: 51, Version: tt.version, Password: tt.password}
				if tt.unicast {
					c.Peers = []netip.Addr{peer}
				}
				return c
			}
			a := wDialIn(t, l.a, cfg(tt.a, tt.b))
			b := wDialIn(t, l.b, cfg(tt.b, tt.a))
			recv := wStartReceiver(t, a)
			advert := func(prio uint8) *Packet {
				return &Packet{Priority: prio, Interval: tt.interval, Addrs: []netip.Addr{tt.vip}}
			}

			if err := b.Send(advert(100)); err != nil {
				t.Fatal(err)
			}
			got := recv.next(t)
			if got.Src != tt.b || got.Packet.Priority != 100 || got.Packet.Interval != tt.interval ||
				got.Packet.Addrs[0] != tt.vip || got.Packet.Password != tt.password {
				t.Fatalf("got %v %+v", got.Src, *got.Packet)
			}

			// Each bad advert is sent before the next good one from the
			// same host and link, so it has been counted when that one
			// is returned.
			want := map[DropReason]uint64{}
			vrid := cfg(tt.b, tt.a)
			vrid.VRID = 52
			if err := wDialIn(t, l.b, vrid).Send(advert(100)); err != nil {
				t.Fatal(err)
			}
			want[DropVRID]++

			dst := GroupIPv4
			if !tt.a.Is4() {
				dst = GroupIPv6
			}
			if tt.unicast {
				dst = tt.a
			}
			q := *advert(100)
			q.Version, q.VRID = tt.version, 51
			if tt.password != "" {
				q.AuthType, q.Password = AuthSimple, tt.password
			}
			raw, err := q.Marshal(tt.b, dst)
			if err != nil {
				t.Fatal(err)
			}
			wSendTTL(t, l.b, tt.b, dst, raw, 64)
			if tt.unicast {
				// A configured peer's advert counts whatever its TTL, as
				// in keepalived (its IPv6 unicast hop limit is 64).
				if got := recv.next(t); got.Src != tt.b || got.Packet.Priority != 100 {
					t.Fatalf("got %v %+v, want the TTL 64 advert from the peer %v", got.Src, *got.Packet, tt.b)
				}
			} else {
				want[DropTTL]++
			}

			if tt.password != "" {
				pw := cfg(tt.b, tt.a)
				pw.Password = "wrong"
				if err := wDialIn(t, l.b, pw).Send(advert(100)); err != nil {
					t.Fatal(err)
				}
				want[DropAuth]++
			}
			if tt.unicast {
				if err := wDialIn(t, l.b, cfg(tt.bx, tt.a)).Send(advert(100)); err != nil {
					t.Fatal(err)
				}
				want[DropUnknownPeer]++
			}
			if tt.otherVers {
				ov := cfg(tt.b, tt.a)
				ov.Version, ov.Password = Version2, ""
				if tt.version == Version2 {
					ov.Version = Version3
				}
				p := advert(100)
				p.Interval = time.Second // valid in both versions
				if err := wDialIn(t, l.b, ov).Send(p); err != nil {
					t.Fatal(err)
				}
				want[DropVersion]++
			}

			if err := b.Send(advert(101)); err != nil {
				t.Fatal(err)
			}
			got = recv.next(t)
			if got.Src != tt.b || got.Packet.Priority != 101 {
				t.Fatalf("got %v %+v, want the priority 101 advert from %v", got.Src, *got.Packet, tt.b)
			}
			if d := a.Drops(); !maps.Equal(d, want) {
				t.Errorf("drops %v, want %v", d, want)
			}
			if d := b.Drops(); d[DropOwn] != 0 {
				t.Errorf("b saw its own adverts: %v", d)
			}

			// Close unblocks the receive loop with net.ErrClosed.
			a.Close()
			if _, ok := <-recv.ch; ok {
				t.Fatal("advert after Close")
			}
			if recv.err != net.ErrClosed {
				t.Errorf("Receive after Close: %v", recv.err)
			}
		})
	}
}

// tsharkFields are the fields TestTshark asks tshark for, in order.
var wTsharkFields = []string{
	"ip.ttl", "ip.dsfield.dscp", "ipv6.hlim", "ipv6.tclass.dscp",
	"vrrp.version", "vrrp.virt_rtr_id", "vrrp.prio", "vrrp.addr_count",
	"vrrp.adver_int", "vrrp.short_adver_int", "vrrp.ip_addr", "vrrp.ipv6_addr", "vrrp.auth_type", "vrrp.auth_string",
	"vrrp.checksum.status", "_ws.malformed", "_ws.expert",
}

// capture starts tshark in n and returns once it is capturing; wait
// returns the fields of the first packet matching filter.
func wCapture(t *testing.T, n *netlab.Node, filter string) (wait func() map[string]string) {
	t.Helper()
	args := []string{"-n", "-l", "-i", wLabIf, "-f", filter, "-c", "1",
		"-a", "duration:30", "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, f := range wTsharkFields {
		args = append(args, "-e", f)
	}
	cmd := n.Command(context.Background(), "tshark", args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	var errLog bytes.Buffer
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		errLog.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "Capturing on") {
			break
		}
	}
	done := make(chan struct{})
	go func() { // drain, so tshark never blocks on a full pipe
		for sc.Scan() {
			errLog.WriteString(sc.Text() + "\n")
		}
		close(done)
	}()
	return func() map[string]string {
		t.Helper()
		<-done
		if err := cmd.Wait(); err != nil {
			t.Fatalf("tshark: %v\n%s", err, errLog.String())
		}
		line := strings.TrimRight(out.String(), "\n")
		vals := strings.Split(line, "\t")
		if line == "" || len(vals) != len(wTsharkFields) {
			t.Fatalf("tshark captured nothing usable: %q\n%s", out.String(), errLog.String())
		}
		m := map[string]string{}
		for i, f := range wTsharkFields {
			m[f] = vals[i]
		}
		return m
	}
}

// TestTshark has tshark, an independent dissector, check our adverts on the
// wire: well formed, checksum good, fields as sent, TTL 255, DSCP CS6.
func TestTshark(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.Tool(t, "tshark", "tshark")
	l := wNewLab(t)
	tests := []struct {
		name     string
		cfg      ConnConfig
		p        Packet
		filter   string
		want     map[string]string
		wantAddr string
	}{
		{
			name:   "v2 password",
			cfg:    ConnConfig{Interface: wLabIf, Source: wLabB4, VRID: 21, Version: Version2, Password: "secret"},
			p:      Packet{Priority: 150, Interval: 3 * time.Second, Addrs: wAddrs("198.18.0.100", "198.18.0.101")},
			filter: "ip proto 112 and ip[21] == 21",
			want: map[string]string{"ip.ttl": "255", "ip.dsfield.dscp": "48", "vrrp.version": "2", "vrrp.virt_rtr_id": "21",
				"vrrp.prio": "150", "vrrp.addr_count": "2", "vrrp.adver_int": "3", "vrrp.ip_addr": "198.18.0.100,198.18.0.101",
				"vrrp.auth_type": "1", "vrrp.auth_string": "secret"},
		},
		{
			name:   "v3 IPv4",
			cfg:    ConnConfig{Interface: wLabIf, Source: wLabB4, VRID: 31, Version: Version3},
			p:      Packet{Priority: 200, Interval: 120 * time.Millisecond, Addrs: wAddrs("198.18.0.100")},
			filter: "ip proto 112 and ip[21] == 31",
			want: map[string]string{"ip.ttl": "255", "ip.dsfield.dscp": "48", "vrrp.version": "3", "vrrp.virt_rtr_id": "31",
				"vrrp.prio": "200", "vrrp.addr_count": "1", "vrrp.short_adver_int": "12", "vrrp.ip_addr": "198.18.0.100"},
		},
		{
			name:   "v3 IPv6",
			cfg:    ConnConfig{Interface: wLabIf, Source: wLabB6, VRID: 36, Version: Version3},
			p:      Packet{Priority: 1, Interval: 4095 * 10 * time.Millisecond, Addrs: wAddrs("2001:db8::100", "2001:db8::101")},
			filter: "ip6 proto 112 and ip6[41] == 36",
			want: map[string]string{"ipv6.hlim": "255", "ipv6.tclass.dscp": "48", "vrrp.version": "3", "vrrp.virt_rtr_id": "36",
				"vrrp.prio": "1", "vrrp.addr_count": "2", "vrrp.short_adver_int": "4095", "vrrp.ipv6_addr": "2001:db8::100,2001:db8::101"},
		},
		{
			name:   "v3 IPv4 unicast",
			cfg:    ConnConfig{Interface: wLabIf, Source: wLabB4, VRID: 41, Version: Version3, Peers: []netip.Addr{wLabA4}},
			p:      Packet{Priority: 200, Interval: time.Second, Addrs: wAddrs("198.18.0.100")},
			filter: "ip proto 112 and ip[21] == 41",
			want: map[string]string{"ip.ttl": "255", "ip.dsfield.dscp": "48", "vrrp.version": "3", "vrrp.virt_rtr_id": "41",
				"vrrp.prio": "200", "vrrp.addr_count": "1", "vrrp.short_adver_int": "100", "vrrp.ip_addr": "198.18.0.100"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := wDialIn(t, l.b, tt.cfg)
			wait := wCapture(t, l.a, tt.filter)
			// Send until tshark has its packet: dumpcap may still be
			// settling after it says it captures.
			stop := make(chan struct{})
			sent := make(chan error, 1)
			go func() {
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for {
					if err := c.Send(&tt.p); err != nil {
						sent <- err
						return
					}
					select {
					case <-stop:
						sent <- nil
						return
					case <-tick.C:
					}
				}
			}()
			var got map[string]string
			func() {
				defer close(stop) // also when wait fails the test
				got = wait()
			}()
			if err := <-sent; err != nil {
				t.Fatal(err)
			}
			t.Logf("tshark: %v", got)
			if got["_ws.malformed"] != "" {
				t.Errorf("tshark: malformed packet: %q", got["_ws.malformed"])
			}
			if got["_ws.expert"] != "" {
				t.Errorf("tshark expert info: %q", got["_ws.expert"])
			}
			// 1 is PROTO_CHECKSUM_E_GOOD.
			if s := got["vrrp.checksum.status"]; s != "1" && !strings.EqualFold(s, "Good") {
				t.Errorf("checksum status %q, want good", s)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// TestTsharkBadChecksum is the control for TestTshark: tshark does verify
// the checksums it reports good, for both the v2 and v3 (pseudo-header)
// kinds.
func TestTsharkBadChecksum(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.Tool(t, "tshark", "tshark")
	l := wNewLab(t)
	for _, tt := range []struct {
		name     string
		p        Packet
		src, dst netip.Addr
		filter   string
	}{
		{"v2", Packet{Version: Version2, VRID: 22, Priority: 1, Interval: time.Second, Addrs: wAddrs("198.18.0.100")},
			wLabB4, GroupIPv4, "ip proto 112 and ip[21] == 22"},
		// Correct for another destination: only a pseudo-header check sees it.
		{"v3 IPv4 pseudo-header", Packet{Version: Version3, VRID: 32, Priority: 1, Interval: time.Second, Addrs: wAddrs("198.18.0.100")},
			wLabB4, wLabA4, "ip proto 112 and ip[21] == 32"},
		{"v3 IPv6 pseudo-header", Packet{Version: Version3, VRID: 37, Priority: 1, Interval: time.Second, Addrs: wAddrs("2001:db8::100")},
			wLabB6, wLabA6, "ip6 proto 112 and ip6[41] == 37"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.p.Marshal(tt.src, tt.dst)
			if err != nil {
				t.Fatal(err)
			}
			group := GroupIPv4
			if tt.p.Version == Version2 {
				b[7] ^= 0x01
			} else if !tt.src.Is4() {
				group = GroupIPv6
			}
			wait := wCapture(t, l.a, tt.filter)
			stop := make(chan struct{})
			sent := make(chan error, 1)
			go func() {
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for {
					if err := wSendRaw(l.b, tt.src, group, b, 255); err != nil {
						sent <- err
						return
					}
					select {
					case <-stop:
						sent <- nil
						return
					case <-tick.C:
					}
				}
			}()
			var got map[string]string
			func() {
				defer close(stop) // also when wait fails the test
				got = wait()
			}()
			if err := <-sent; err != nil {
				t.Fatal(err)
			}
			if s := got["vrrp.checksum.status"]; s != "0" {
				t.Errorf("checksum status %q, want 0 (bad)", s)
			}
		})
	}
}

// keepalivedCapture is how to make keepalived send one of the reference
// adverts of keepalivedSamples.
type wKeepalivedCapture struct {
	wKeepalivedSample
	conf string     // the vrrp_instance body besides state, VRID, priority
	cfg  ConnConfig // the receiving side's config
}

var wKeepalivedCaptures = []wKeepalivedCapture{
	{
		wKeepalivedSample: wKeepalivedSamples[0],
		conf: `version 3
  advert_int 0.5
  virtual_ipaddress {
    198.18.0.100/24
    198.18.0.101/24
  }`,
		// We protect one of keepalived's two addresses: extra ones pass
		// the address check.
		cfg: ConnConfig{Interface: wLabIf, Source: wLabA4, VRID: 61, Version: Version3, Addrs: wAddrs("198.18.0.100")},
	},
	{
		wKeepalivedSample: wKeepalivedSamples[1],
		conf: `version 2
  advert_int 1
  authentication {
    auth_type PASS
    auth_pass secret
  }
  virtual_ipaddress {
    198.18.0.100/24
  }`,
		cfg: ConnConfig{Interface: wLabIf, Source: wLabA4, VRID: 61, Version: Version2, Password: "secret", Addrs: wAddrs("198.18.0.100")},
	},
}

// startKeepalived runs keepalived in n with one MASTER instance; the lab
// kills it at cleanup.
func wStartKeepalived(t *testing.T, n *netlab.Node, instance string) {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "keepalived.conf")
	text := fmt.Sprintf(`global_defs {
  router_id hapod_test
}
vrrp_instance VI_TEST {
  state MASTER
  interface %s
  virtual_router_id 61
  priority 200
  %s
}
`, wLabIf, instance)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	n.Start(t, "keepalived", "-n", "-l", "-D", "-P",
		"-f", conf, "-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid"))
}

// TestKeepalived checks that keepalived's adverts pass every check of ours
// and decode to what it was configured with, and pins their bytes in
// testdata (rewrite with -update).
func TestKeepalived(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.Tool(t, "keepalived", "keepalived")
	for _, kc := range wKeepalivedCaptures {
		t.Run(kc.file, func(t *testing.T) {
			l := wNewLab(t)
			// A plain socket sees the raw bytes; the RawConn's checks run
			// on them below.
			var pc *conn4
			var err error
			wInNS(t, l.a, func() {
				ifi, e := net.InterfaceByName(wLabIf)
				if e != nil {
					err = e
					return
				}
				pc, err = dial4(ifi, kc.cfg)
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pc.Close() })
			rc, err := newConn(kc.cfg, 0, &wFakePC{}) // only for its check()
			if err != nil {
				t.Fatal(err)
			}
			wStartKeepalived(t, l.b, kc.conf)

			pc.c.SetReadDeadline(time.Now().Add(30 * time.Second)) // hang guard
			buf := make([]byte, MaxLen)
			for {
				n, d, err := pc.ReadFrom(buf)
				if err != nil {
					t.Fatalf("no advert from keepalived: %v", err)
				}
				b := buf[:n]
				p, de := rc.check(b, d)
				if de != nil {
					t.Fatalf("keepalived advert %x from %v dropped: %v", b, d.Src, de)
				}
				if p.Priority != kc.want.Priority {
					continue // e.g. a priority 0 advert of a stepping down instance
				}
				if d.Src != kc.src || d.Dst != kc.dst {
					t.Errorf("advert %v -> %v, want %v -> %v", d.Src, d.Dst, kc.src, kc.dst)
				}
				if !reflect.DeepEqual(*p, kc.want) {
					t.Errorf("decoded %+v, want %+v", *p, kc.want)
				}
				path := filepath.Join("testdata", kc.file)
				if *wUpdate {
					if err := os.WriteFile(path, b, 0o644); err != nil {
						t.Fatal(err)
					}
				} else if old, err := os.ReadFile(path); err != nil {
					t.Errorf("no reference capture (run with -update): %v", err)
				} else if !bytes.Equal(old, b) {
					t.Errorf("keepalived now sends %x, testdata has %x", b, old)
				}
				// Our encoding of the same advert is byte for byte keepalived's.
				mine, err := kc.want.Marshal(kc.src, kc.dst)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(mine, b) {
					t.Errorf("we encode %x, keepalived %x", mine, b)
				}
				return
			}
		})
	}
}
