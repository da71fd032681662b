package vip

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/hapod/hapod/internal/lab"
)

// The tests below need root: they build a lab (internal/lab) with hosts A
// and B on one bridge, put the VIP on A's eth0 and watch from B.

// failGuard bounds every wait; reaching it is a failure, never a measure.
const failGuard = 15 * time.Second

// twoHosts is a lab of two nodes, a and b, on fixed subnets
// (198.18.0.0/24, 2001:db8::/64), so expected frames can name addresses:
// a is .1, b is .2.
type twoHosts struct {
	a, b *lab.Node
	macA hwAddr
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newLab(t *testing.T) *twoHosts {
	t.Helper()
	l := lab.NewWith(t, lab.Options{Nodes: 2,
		Prefix4: netip.MustParsePrefix("198.18.0.0/24"), Prefix6: netip.MustParsePrefix("2001:db8::/64")})
	return &twoHosts{a: l.Nodes[0], b: l.Nodes[1], macA: hwAddr(l.Nodes[0].MAC)}
}

// inNS runs f on a thread inside n's namespace.
func inNS(t *testing.T, n *lab.Node, f func()) {
	t.Helper()
	if err := n.Do(func() error { f(); return nil }); err != nil {
		t.Fatalf("entering %s: %v", n.Name, err)
	}
}

// capture collects, on eth0 of a namespace, the frames from one MAC that
// match a predicate, through an AF_PACKET socket that is listening before
// the test acts (a tshark child reports "Capturing on" before it really
// captures, which lost frames). tshark then decodes the frames from a
// pcap file written here.
type capture struct {
	frames chan []byte
	file   string
}

func startCapture(t *testing.T, n *lab.Node, from hwAddr, match func(frame []byte) bool) *capture {
	t.Helper()
	c := &capture{frames: make(chan []byte, 64), file: filepath.Join(t.TempDir(), "cap.pcap")}
	var conn *packet.Conn
	var err error
	inNS(t, n, func() {
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName(n.Iface); err == nil {
			conn, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			f := buf[:n]
			if n >= ethHeaderLen && bytes.Equal(f[6:12], from[:]) && match(f) {
				select {
				case c.frames <- bytes.Clone(f):
				default:
				}
			}
		}
	}()
	return c
}

func isARP(f []byte) bool { return binary.BigEndian.Uint16(f[12:14]) == etherTypeARP }

func isNA(f []byte) bool {
	return binary.BigEndian.Uint16(f[12:14]) == etherTypeIPv6 && len(f) > ethHeaderLen+ipv6HeaderLen &&
		f[ethHeaderLen+6] == protoICMPv6 && f[ethHeaderLen+ipv6HeaderLen] == icmpv6NeighAdv
}

// wait collects n frames and writes them to the pcap file.
func (c *capture) wait(t *testing.T, n int) {
	t.Helper()
	var frames [][]byte
	for len(frames) < n {
		select {
		case f := <-c.frames:
			frames = append(frames, f)
		case <-time.After(failGuard):
			t.Fatalf("saw %d matching frames, want %d", len(frames), n)
		}
	}
	// pcap: global header, then a record header per frame; little endian.
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write(le.AppendUint32(nil, 0xa1b2c3d4))
	b.Write(le.AppendUint16(nil, 2))
	b.Write(le.AppendUint16(nil, 4))
	b.Write(make([]byte, 8)) // thiszone, sigfigs
	b.Write(le.AppendUint32(nil, 65535))
	b.Write(le.AppendUint32(nil, 1)) // LINKTYPE_ETHERNET
	for i, f := range frames {
		b.Write(le.AppendUint32(nil, uint32(i)))
		b.Write(le.AppendUint32(nil, 0))
		b.Write(le.AppendUint32(nil, uint32(len(f))))
		b.Write(le.AppendUint32(nil, uint32(len(f))))
		b.Write(f)
	}
	if err := os.WriteFile(c.file, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// fields decodes the capture with tshark and returns one map per frame.
func (c *capture) fields(t *testing.T, names ...string) []map[string]string {
	t.Helper()
	args := []string{"tshark", "-r", c.file, "-T", "fields", "-E", "separator=|"}
	for _, n := range names {
		args = append(args, "-e", n)
	}
	var frames []map[string]string
	for _, line := range strings.Split(strings.TrimSpace(run(t, args...)), "\n") {
		if strings.HasPrefix(line, "Running as user") {
			continue
		}
		vals := strings.Split(line, "|")
		m := map[string]string{}
		for i, n := range names {
			if i < len(vals) {
				m[n] = vals[i]
			}
		}
		frames = append(frames, m)
	}
	return frames
}

// neighMAC returns B's neighbour entry for ip, or "".
func neighMAC(t *testing.T, n *lab.Node, ip netip.Addr) string {
	var neigh []struct {
		LLAddr string `json:"lladdr"`
	}
	out := run(t, "ip", "-n", n.NS, "-j", "neigh", "show", "to", ip.String(), "dev", "eth0")
	if err := json.Unmarshal([]byte(out), &neigh); err != nil {
		t.Fatalf("ip neigh: %v: %s", err, out)
	}
	if len(neigh) == 0 {
		return ""
	}
	return neigh[0].LLAddr
}

func waitNeighMAC(t *testing.T, n *lab.Node, ip netip.Addr, want string) {
	t.Helper()
	deadline := time.Now().Add(failGuard)
	for neighMAC(t, n, ip) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s never learnt %s at %s (has %q)", n.Name, ip, want, neighMAC(t, n, ip))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type addrInfo struct {
	Local     string `json:"local"`
	PrefixLen int    `json:"prefixlen"`
	Broadcast string `json:"broadcast"`
	Label     string `json:"label"`
	Tentative bool   `json:"tentative"`
	NoDAD     bool   `json:"nodad"`
	Preferred uint64 `json:"preferred_life_time"`
	Valid     uint64 `json:"valid_life_time"`
}

func addrOn(t *testing.T, n *lab.Node, ip netip.Addr) (addrInfo, bool) {
	var links []struct {
		AddrInfo []addrInfo `json:"addr_info"`
	}
	out := run(t, "ip", "-n", n.NS, "-j", "addr", "show", "dev", "eth0")
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip addr: %v: %s", err, out)
	}
	for _, a := range links[0].AddrInfo {
		if a.Local == ip.String() {
			return a, true
		}
	}
	return addrInfo{}, false
}

func held(t *testing.T, n *lab.Node, ip netip.Addr) bool {
	t.Helper()
	var ok bool
	var err error
	inNS(t, n, func() { ok, err = Held("eth0", ip) })
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func macString(m hwAddr) string { return net.HardwareAddr(m[:]).String() }

const bogusMAC = "02:00:00:00:00:99"

func TestLabAcquireIPv4(t *testing.T) {
	l := newLab(t)
	vip := netip.MustParsePrefix("198.18.0.10/24")
	// B knows the VIP at another MAC, as after a failover.
	run(t, "ip", "-n", l.b.NS, "neigh", "replace", vip.Addr().String(), "lladdr", bogusMAC, "dev", "eth0", "nud", "stale")

	// 3 rounds of request + reply, twice.
	capt := startCapture(t, l.b, l.macA, isARP)
	fc := clocktesting.NewFakeClock(time.Now())
	var m *Manager
	var err error
	inNS(t, l.a, func() { m, err = New(Config{Interface: "eth0", Prefix: vip, Label: "eth0:vip", Clock: fc}) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	if err := m.Acquire(); err != nil {
		t.Fatal(err)
	}

	a, ok := addrOn(t, l.a, vip.Addr())
	if !ok || a.PrefixLen != 24 || a.Broadcast != "198.18.0.255" || a.Label != "eth0:vip" {
		t.Errorf("A's address = %+v (present %v), want 198.18.0.10/24 brd 198.18.0.255 label eth0:vip", a, ok)
	}
	if !held(t, l.a, vip.Addr()) {
		t.Error("Held = false after Acquire")
	}
	fc.Step(DefaultRepeatAfter)
	capt.wait(t, 12)
	frames := capt.fields(t, "eth.dst", "eth.src", "arp.opcode", "arp.src.hw_mac", "arp.src.proto_ipv4",
		"arp.dst.hw_mac", "arp.dst.proto_ipv4", "arp.isgratuitous", "_ws.malformed", "_ws.expert")
	if len(frames) != 12 {
		t.Fatalf("captured %d frames, want 12", len(frames))
	}
	for i, f := range frames {
		wantOp := "1"
		if i%2 == 1 {
			wantOp = "2"
		}
		want := map[string]string{
			"eth.dst": "ff:ff:ff:ff:ff:ff", "eth.src": macString(l.macA), "arp.opcode": wantOp,
			"arp.src.hw_mac": macString(l.macA), "arp.src.proto_ipv4": "198.18.0.10",
			"arp.dst.hw_mac": "ff:ff:ff:ff:ff:ff", "arp.dst.proto_ipv4": "198.18.0.10",
			"arp.isgratuitous": "1", "_ws.malformed": "", "_ws.expert": "",
		}
		for k, v := range want {
			if f[k] != v {
				t.Errorf("frame %d: %s = %q, want %q", i, k, f[k], v)
			}
		}
	}

	// The peer took the announcement: its stale entry now points at A.
	waitNeighMAC(t, l.b, vip.Addr(), macString(l.macA))

	if err := m.Release(); err != nil {
		t.Fatal(err)
	}
	if _, ok := addrOn(t, l.a, vip.Addr()); ok || held(t, l.a, vip.Addr()) {
		t.Error("address still on A after Release")
	}
	if err := m.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
	// Node address untouched.
	if _, ok := addrOn(t, l.a, netip.MustParseAddr("198.18.0.1")); !ok {
		t.Error("Release removed A's own address")
	}
}

func TestLabAcquireIPv6(t *testing.T) {
	l := newLab(t)
	vip := netip.MustParsePrefix("2001:db8::10/64")
	run(t, "ip", "-n", l.b.NS, "neigh", "replace", vip.Addr().String(), "lladdr", bogusMAC, "dev", "eth0", "nud", "stale")

	// ICMPv6 type 136 (NA) from A, 3 at once and 3 later.
	capt := startCapture(t, l.b, l.macA, isNA)
	fc := clocktesting.NewFakeClock(time.Now())
	var m *Manager
	var err error
	inNS(t, l.a, func() { m, err = New(Config{Interface: "eth0", Prefix: vip, Clock: fc}) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	if err := m.Acquire(); err != nil {
		t.Fatal(err)
	}

	a, ok := addrOn(t, l.a, vip.Addr())
	switch {
	case !ok:
		t.Fatal("VIP not on A after Acquire")
	case a.Tentative:
		t.Errorf("VIP is tentative: %+v", a)
	case !a.NoDAD || a.PrefixLen != 64:
		t.Errorf("VIP = %+v, want nodad /64", a)
	case a.Preferred != 0 || a.Valid != uint64(^uint32(0)):
		t.Errorf("VIP lifetimes preferred %d valid %d, want 0 and forever", a.Preferred, a.Valid)
	}
	fc.Step(DefaultRepeatAfter)
	capt.wait(t, 6)
	frames := capt.fields(t, "eth.dst", "ipv6.src", "ipv6.dst", "ipv6.hlim", "icmpv6.type", "icmpv6.code",
		"icmpv6.nd.na.flag.r", "icmpv6.nd.na.flag.s", "icmpv6.nd.na.flag.o", "icmpv6.nd.na.target_address",
		"icmpv6.opt.type", "icmpv6.opt.linkaddr", "icmpv6.checksum.status", "_ws.malformed", "_ws.expert")
	if len(frames) != 6 {
		t.Fatalf("captured %d frames, want 6", len(frames))
	}
	for i, f := range frames {
		want := map[string]string{
			"eth.dst": "33:33:00:00:00:01", "ipv6.src": "2001:db8::10", "ipv6.dst": "ff02::1", "ipv6.hlim": "255",
			"icmpv6.type": "136", "icmpv6.code": "0",
			"icmpv6.nd.na.flag.r": "0", "icmpv6.nd.na.flag.s": "0", "icmpv6.nd.na.flag.o": "1",
			"icmpv6.nd.na.target_address": "2001:db8::10", "icmpv6.opt.type": "2", "icmpv6.opt.linkaddr": macString(l.macA),
			"icmpv6.checksum.status": "1", "_ws.malformed": "", "_ws.expert": "",
		}
		for k, v := range want {
			if f[k] != v {
				t.Errorf("frame %d: %s = %q, want %q", i, k, f[k], v)
			}
		}
	}

	// The peer took the announcement: its stale entry now points at A.
	waitNeighMAC(t, l.b, vip.Addr(), macString(l.macA))

	if err := m.Release(); err != nil {
		t.Fatal(err)
	}
	if held(t, l.a, vip.Addr()) {
		t.Error("address still on A after Release")
	}
}

func TestLabRemoveStale(t *testing.T) {
	l := newLab(t)
	for _, tc := range []struct{ leftover, cfg string }{
		// The predecessor may have used another prefix length.
		{"198.18.0.10/32", "198.18.0.10/24"},
		{"2001:db8::10/128", "2001:db8::10/64"},
	} {
		vip := netip.MustParsePrefix(tc.cfg)
		run(t, "ip", "-n", l.a.NS, "addr", "add", tc.leftover, "dev", "eth0", "nodad")
		var m *Manager
		var err error
		inNS(t, l.a, func() { m, err = New(Config{Interface: "eth0", Prefix: vip}) })
		if err != nil {
			t.Fatal(err)
		}
		if removed, err := m.RemoveStale(); err != nil || !removed {
			t.Errorf("%s: RemoveStale = %v, %v; want true, nil", tc.leftover, removed, err)
		}
		if held(t, l.a, vip.Addr()) {
			t.Errorf("%s still on A after RemoveStale", tc.leftover)
		}
		if removed, err := m.RemoveStale(); err != nil || removed {
			t.Errorf("%s: second RemoveStale = %v, %v; want false, nil", tc.leftover, removed, err)
		}
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	}
}

func TestLabAcquireIsIdempotent(t *testing.T) {
	l := newLab(t)
	vip := netip.MustParsePrefix("198.18.0.10/24")
	run(t, "ip", "-n", l.a.NS, "addr", "add", vip.String(), "dev", "eth0")
	var m *Manager
	var err error
	inNS(t, l.a, func() { m, err = New(Config{Interface: "eth0", Prefix: vip, RepeatAfter: -1}) })
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for range 2 {
		if err := m.Acquire(); err != nil {
			t.Fatalf("Acquire with the address present: %v", err)
		}
	}
}

func TestNewUnknownInterface(t *testing.T) {
	lab.RequireRoot(t)
	_, err := New(Config{Interface: "hvip-nonexist", Prefix: netip.MustParsePrefix("198.18.0.10/24")})
	if err == nil || !strings.Contains(err.Error(), "hvip-nonexist") {
		t.Fatalf("New on a missing interface = %v, want an error naming it", err)
	}
}

func nextState(t *testing.T, ch <-chan bool, want bool, what string) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("%s: link up = %v, want %v", what, got, want)
		}
	case <-time.After(failGuard):
		t.Fatalf("%s: no link change reported", what)
	}
}

// A Group reports the link usable only while the interface is up, has
// carrier and carries the node's own address, and keeps the VIP on it
// exactly while wanted, whoever adds or removes it.
func TestLabGroupLink(t *testing.T) {
	l := newLab(t)
	vip := netip.MustParsePrefix("198.18.0.10/24")
	k, links, _ := startGroup(t, l.a, GroupConfig{
		Interface: "eth0", Prefixes: []netip.Prefix{vip},
		Source: netip.MustParseAddr("198.18.0.1"), RepeatAfter: -1,
	})
	nextState(t, links, true, "initial")
	run(t, "ip", "-n", l.a.NS, "link", "set", "eth0", "down")
	nextState(t, links, false, "eth0 down")
	run(t, "ip", "-n", l.a.NS, "link", "set", "eth0", "up")
	nextState(t, links, true, "eth0 up")
	l.a.CarrierDown(t)
	nextState(t, links, false, "peer veth down")
	l.a.CarrierUp(t)
	nextState(t, links, true, "peer veth up")
	run(t, "ip", "-n", l.a.NS, "addr", "del", "198.18.0.1/24", "dev", "eth0")
	nextState(t, links, false, "own address removed")
	run(t, "ip", "-n", l.a.NS, "addr", "add", "198.18.0.1/24", "dev", "eth0")
	nextState(t, links, true, "own address back")

	if err := k.Acquire(); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "-n", l.a.NS, "addr", "del", vip.String(), "dev", "eth0")
	waitHeld(t, l.a, "eth0", vip.Addr(), true, "VIP added back after ip addr del")
	// The kernel has it back; the Group's view follows with the netlink
	// notification of the add, a moment later.
	deadline := time.Now().Add(failGuard)
	for st := k.Status().VIPs[0]; !st.Held || !st.Wanted; st = k.Status().VIPs[0] {
		if time.Now().After(deadline) {
			t.Fatalf("Status %v after the VIP came back: %+v, want held and wanted", failGuard, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := k.Release(); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, l.a, "eth0", vip.Addr(), false, "VIP gone after Release")
	run(t, "ip", "-n", l.a.NS, "addr", "add", vip.String(), "dev", "eth0")
	waitHeld(t, l.a, "eth0", vip.Addr(), false, "VIP added by hand removed while not wanted")
}

func waitHeld(t *testing.T, n *lab.Node, ifname string, ip netip.Addr, want bool, what string) {
	t.Helper()
	deadline := time.Now().Add(failGuard)
	for {
		var ok bool
		var err error
		inNS(t, n, func() { ok, err = Held(ifname, ip) })
		if err != nil {
			t.Fatal(err)
		}
		if ok == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after %v", what, failGuard)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A bridge without ports reports no operational state ("unknown", like a
// dummy link; the dummy module is missing here): carrier decides. Deleted
// and created again, it has a new index, and a Group of one binds to it.
func TestLabGroupOfOneInterfaceRecreated(t *testing.T) {
	l := newLab(t)
	mk := func() {
		run(t, "ip", "-n", l.a.NS, "link", "add", "dm0", "type", "bridge")
		run(t, "ip", "-n", l.a.NS, "addr", "add", "198.18.1.1/24", "dev", "dm0")
	}
	mk()
	k, links, rebound := startGroup(t, l.a, GroupConfig{
		Interface: "dm0", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.1.10/24")},
		Source: netip.MustParseAddr("198.18.1.1"), RepeatAfter: -1,
	})
	nextState(t, links, false, "initial (down)")
	run(t, "ip", "-n", l.a.NS, "link", "set", "dm0", "up")
	nextState(t, links, true, "bridge up")
	if err := k.Acquire(); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "-n", l.a.NS, "link", "del", "dm0")
	nextState(t, links, false, "bridge deleted")
	if err := k.Release(); err != nil {
		t.Errorf("Release with the interface gone = %v, want nil", err)
	}
	mk()
	run(t, "ip", "-n", l.a.NS, "link", "set", "dm0", "up")
	select {
	case <-rebound:
	case <-time.After(failGuard):
		t.Fatal("not rebound to the new interface")
	}
	nextState(t, links, true, "bridge created again and up")
	if err := k.Acquire(); err != nil {
		t.Fatalf("Acquire on the new interface: %v", err)
	}
	waitHeld(t, l.a, "dm0", netip.MustParseAddr("198.18.1.10"), true, "VIP on the new interface")

	var missing error
	inNS(t, l.a, func() {
		_, missing = NewGroup(GroupConfig{Interface: "nothere0", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.1.10/24")},
			Source: netip.MustParseAddr("198.18.1.1")})
	})
	if missing == nil || !strings.Contains(missing.Error(), "nothere0") {
		t.Errorf("NewGroup on a missing interface = %v, want an error naming it", missing)
	}
}

// A node that forwards IPv6 (a Kubernetes node usually does) sets the
// Router flag, so peers keep treating it as a router.
func TestLabNARouterFlag(t *testing.T) {
	l := newLab(t)
	run(t, "ip", "netns", "exec", l.a.NS, "sysctl", "-q", "-w", "net.ipv6.conf.eth0.forwarding=1")
	capt := startCapture(t, l.b, l.macA, isNA)
	var m *Manager
	var err error
	inNS(t, l.a, func() {
		m, err = New(Config{Interface: "eth0", Prefix: netip.MustParsePrefix("2001:db8::10/64"), BurstCount: 1, RepeatAfter: -1})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Acquire(); err != nil {
		t.Fatal(err)
	}
	capt.wait(t, 1)
	f := capt.fields(t, "icmpv6.nd.na.flag.r", "icmpv6.nd.na.flag.o", "icmpv6.nd.na.flag.s", "icmpv6.checksum.status")
	if len(f) != 1 || f[0]["icmpv6.nd.na.flag.r"] != "1" || f[0]["icmpv6.nd.na.flag.o"] != "1" ||
		f[0]["icmpv6.nd.na.flag.s"] != "0" || f[0]["icmpv6.checksum.status"] != "1" {
		t.Errorf("NA from a forwarding node: %v, want R=1 O=1 S=0, checksum good", f)
	}
}

// On a link that is down the address still goes on (announcing fails and
// is logged): the VIP is ours, and the speaker re-announces on link up.
func TestLabAcquireOnDownLink(t *testing.T) {
	l := newLab(t)
	run(t, "ip", "-n", l.a.NS, "link", "set", "eth0", "down")
	for _, p := range []string{"198.18.0.10/24", "2001:db8::10/64"} {
		vip := netip.MustParsePrefix(p)
		var logs bytes.Buffer
		var m *Manager
		var err error
		inNS(t, l.a, func() {
			m, err = New(Config{Interface: "eth0", Prefix: vip, RepeatAfter: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Acquire(); err != nil {
			t.Errorf("%s: Acquire on a down link = %v, want nil", p, err)
		}
		if !held(t, l.a, vip.Addr()) {
			t.Errorf("%s: not on the down link after Acquire", p)
		}
		if !strings.Contains(logs.String(), "VIP announcement failed") {
			t.Errorf("%s: announce failure not logged:\n%s", p, logs.String())
		}
		if err := m.Release(); err != nil {
			t.Error(err)
		}
		m.Close()
	}
}
