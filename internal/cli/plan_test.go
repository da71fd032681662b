package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hapod/hapod/internal/hostnet"
	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/manifest"
)

// TestMakePlanDecidesWithoutActing: on a node where a dead hapod left
// the VIP, the plan names the stale VIP, this node's source address and
// a manifest that reads back to the plan's Config; it removes nothing
// and writes nothing (the host's RemoveAddr fails the run if called).
func TestMakePlanDecidesWithoutActing(t *testing.T) {
	stale := hostnet.Addr{Prefix: netip.MustParsePrefix("198.18.0.10/24"), Interface: "eth0", Secondary: true}
	cfg := config.Default()
	cfg.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.18.0.10/24")}
	cfg.VRRP.Peers = []netip.Addr{netip.MustParseAddr("198.18.0.12"), netip.MustParseAddr("198.18.0.13")}
	for _, b := range []string{"198.18.0.11:6443", "198.18.0.12:6443", "198.18.0.13:6443"} {
		cfg.Proxy.Backends = append(cfg.Proxy.Backends, netip.MustParseAddrPort(b))
	}
	dir := t.TempDir()
	r := request{
		Mode: modeInit, Config: cfg, Image: "ghcr.io/hapod/hapod:v1.2.3", ManifestDir: dir,
		Given: func(flag string) bool {
			return flag == "vip" || flag == "peer" || flag == "backend" || flag == flagImage
		},
	}
	p, err := makePlan(context.Background(), fakeHost(stale), r)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Stale) != 1 || p.Stale[0] != stale {
		t.Errorf("stale = %v, want %v", p.Stale, stale)
	}
	if want := netip.MustParseAddr("198.18.0.11"); p.Sources[config.IPv4] != want {
		t.Errorf("source = %v, want %v (the node's own address on eth0)", p.Sources, want)
	}
	if p.Config.VIP.Interface != "eth0" {
		t.Errorf("interface = %q, want the stale VIP's eth0", p.Config.VIP.Interface)
	}
	got, image, err := manifest.Parse(p.Manifest)
	if err != nil || image != r.Image || !reflect.DeepEqual(got, p.Config) {
		t.Errorf("the plan's manifest reads back as %+v, %q, %v; want the plan's Config and image", got, image, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("makePlan wrote %d files", len(entries))
	}
}

// TestDecide: the decision from flags, kubeadm settings and host facts,
// with no host at all.
func TestDecide(t *testing.T) {
	vip := netip.MustParsePrefix("198.18.0.10/24")
	own := netip.MustParseAddr("198.18.0.11")
	peer := netip.MustParseAddr("198.18.0.12")
	image := "ghcr.io/hapod/hapod:v1.2.3"
	addrs := []hostnet.Addr{
		{Prefix: netip.MustParsePrefix("127.0.0.1/8"), Interface: "lo"},
		{Prefix: netip.MustParsePrefix("198.18.0.11/24"), Interface: "eth1"},
	}
	vipOn := func(secondary bool) hostnet.Addr {
		return hostnet.Addr{Prefix: vip, Interface: "eth1", Secondary: secondary}
	}
	errHost := errors.New("host said no")
	type want struct {
		err       string // a substring; "" for success
		iface     string
		stale     bool
		source    netip.Addr
		peers     []netip.Addr
		imageNote bool
	}
	ok := want{iface: "eth1", source: own, peers: []netip.Addr{peer}, imageNote: true}
	for _, tc := range []struct {
		name  string
		mode  mode
		peers []netip.Addr
		mod   func(*request, *hostFacts)
		want  want
	}{
		{"the route names the interface", modeInit, []netip.Addr{peer}, nil, ok},
		{"no route and no --interface", modeInit, nil, func(_ *request, f *hostFacts) { f.Routes[0].Err = errHost },
			want{err: "--interface: not given and not detected: host said no"}},
		{"addresses unreadable", modeInit, nil, func(_ *request, f *hostFacts) { f.AddrsErr = errHost },
			want{err: "host said no"}},
		{"the VIP held here names the interface", modeInit, []netip.Addr{peer}, func(_ *request, f *hostFacts) {
			f.Local, f.Routes = []localVIP{{Addr: vipOn(false), Running: true}}, nil
		}, ok},
		{"a stale VIP is to be removed", modeInit, []netip.Addr{peer}, func(_ *request, f *hostFacts) {
			f.Local, f.Routes = []localVIP{{Addr: vipOn(true)}}, nil
		}, want{iface: "eth1", stale: true, source: own, peers: []netip.Addr{peer}, imageNote: true}},
		{"the VIP is a node address", modeInit, nil, func(_ *request, f *hostFacts) {
			f.Local, f.Routes = []localVIP{{Addr: vipOn(false)}}, nil
		}, want{err: "--vip 198.18.0.10: already an address of eth1"}},
		{"the VIP's owner could not be asked", modeInit, nil, func(_ *request, f *hostFacts) {
			f.Local, f.LocalErr = []localVIP{{Addr: vipOn(true)}}, errHost
		}, want{err: "host said no"}},
		{"join drops the peer that is this node", modeJoin, []netip.Addr{own, peer}, nil, ok},
		{"init refuses a peer that is this node", modeInit, []netip.Addr{own, peer}, nil,
			want{err: "--peer 198.18.0.11: is this host's own address"}},
		{"a file named is unreadable", modeInit, nil, func(_ *request, f *hostFacts) { f.FilesErr = errHost },
			want{err: "host said no"}},
		{"the image is missing and --offline", modeInit, []netip.Addr{peer}, func(r *request, f *hostFacts) {
			r.Offline, f.Image.Present = true, false
		}, want{err: "--image " + image + ": not on this node"}},
		{"manifest looks at no files and no runtime", modePrint, []netip.Addr{peer}, func(_ *request, f *hostFacts) {
			f.FilesErr, f.Image = errHost, imageCheck{}
		}, want{iface: "eth1", peers: []netip.Addr{peer}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.VIP.Prefixes = []netip.Prefix{vip}
			cfg.VRRP.Peers = tc.peers
			cfg.Proxy.Backends = []netip.AddrPort{netip.MustParseAddrPort("198.18.0.11:6443")}
			r := request{Mode: tc.mode, Config: cfg, Image: image, Given: func(string) bool { return true }}
			f := hostFacts{Addrs: addrs, Routes: []vipRoute{{VIP: vip.Addr(), Interface: "eth1"}}, Image: imageCheck{Image: image, Endpoint: "unix:///run/containerd.sock", Present: true}}
			if tc.mod != nil {
				tc.mod(&r, &f)
			}
			p, err := decide(plan{Mode: tc.mode, Image: image}, r, inputs{Config: cfg}, f)
			if tc.want.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want.err) {
					t.Fatalf("err = %v, want one saying %q", err, tc.want.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Config.VIP.Interface != tc.want.iface || (len(p.Stale) == 1) != tc.want.stale || p.Sources[config.FamilyOf(tc.want.source)] != tc.want.source ||
				!slices.Equal(p.Config.VRRP.Peers, tc.want.peers) {
				t.Errorf("interface %q stale %v source %v peers %v; want %+v", p.Config.VIP.Interface, p.Stale, p.Sources, p.Config.VRRP.Peers, tc.want)
			}
			if got := slices.ContainsFunc(p.Notes, func(n string) bool { return strings.Contains(n, "is on this node") }); got != tc.want.imageNote {
				t.Errorf("notes %q: image note %v, want %v", p.Notes, got, tc.want.imageNote)
			}
			if len(p.Manifest) == 0 {
				t.Errorf("no manifest")
			}
		})
	}
}

// TestDecideOwnBackend: with no --backend, a node's first backend is its
// own kube-apiserver (--apiserver-advertise-address, else its address on
// the VIP's interface), and the printed join line names no backend, so
// that one command fits every node.
func TestDecideOwnBackend(t *testing.T) {
	image := "ghcr.io/hapod/hapod:v1.2.3"
	addrs := []hostnet.Addr{
		{Prefix: netip.MustParsePrefix("127.0.0.1/8"), Interface: "lo"},
		{Prefix: netip.MustParsePrefix("fe80::1/64"), Interface: "eth1"},
		{Prefix: netip.MustParsePrefix("198.18.0.11/24"), Interface: "eth1"},
		{Prefix: netip.MustParsePrefix("2001:db8::11/64"), Interface: "eth1"},
	}
	for _, tc := range []struct {
		name      string
		mode      mode
		vip       string
		advertise string
		discover  bool
		want      string // the backend; "" for none
		err       string
	}{
		{"init: the address on the VIP's interface", modeInit, "198.18.0.10/24", "", true, "198.18.0.11:6443", ""},
		{"join: the same", modeJoin, "198.18.0.10/24", "", true, "198.18.0.11:6443", ""},
		{"IPv6: the global address, not the link-local one", modeInit, "2001:db8::10/64", "", true, "[2001:db8::11]:6443", ""},
		{"--apiserver-advertise-address", modeInit, "198.18.0.10/24", "198.18.0.99", true, "198.18.0.99:6443", ""},
		{"manifest with --apiserver-advertise-address", modePrint, "198.18.0.10/24", "198.18.0.99", true, "198.18.0.99:6443", ""},
		{"manifest looks at no host", modePrint, "198.18.0.10/24", "", true, "", "--backend: at least one"},
		{"no discovery: no guess", modeInit, "198.18.0.10/24", "", false, "", "--backend: at least one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.VIP.Prefixes = []netip.Prefix{netip.MustParsePrefix(tc.vip)}
			cfg.Membership.Discover = tc.discover
			r := request{Mode: tc.mode, Config: cfg, Image: image, Given: func(string) bool { return true }, BindPort: 6443}
			if tc.advertise != "" {
				r.Advertise = netip.MustParseAddr(tc.advertise)
			}
			f := hostFacts{Addrs: addrs, Routes: []vipRoute{{VIP: cfg.VIP.Primary().Addr(), Interface: "eth1"}}, Image: imageCheck{Image: image, Endpoint: "unix:///run/containerd.sock", Present: true}}
			p, err := decide(plan{Mode: tc.mode, Image: image}, r, inputs{Config: cfg}, f)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Config.Proxy.Backends; len(got) != 1 || got[0].String() != tc.want || !p.OwnBackend {
				t.Fatalf("backends %v (own %v), want [%s]", got, p.OwnBackend, tc.want)
			}
			if !slices.ContainsFunc(p.Notes, func(n string) bool {
				return strings.Contains(n, "no --backend: the first backend is this node's kube-apiserver "+tc.want)
			}) {
				t.Errorf("notes %q", p.Notes)
			}
			if tc.mode != modeInit {
				return
			}
			var out strings.Builder
			printNextSteps(&out, p, applied{Outcome: manifest.Created, Path: "/etc/kubernetes/manifests/hapod.yaml"})
			if s := out.String(); strings.Contains(s, "--backend") || !strings.Contains(s, "hapod join --vip="+tc.vip) {
				t.Errorf("the join line names a backend, or no VIP:\n%s", s)
			}
		})
	}
}

// TestDecideDualStack: an IPv4 and an IPv6 VIP (issue 22) share one
// interface, found from the routes to both or from either VIP held
// here; each family's virtual router gets this node's source of its
// family; every VIP a dead hapod left is removed.
func TestDecideDualStack(t *testing.T) {
	vip4, vip6 := netip.MustParsePrefix("198.18.0.10/24"), netip.MustParsePrefix("2001:db8::10/64")
	own4, own6, ll := netip.MustParseAddr("198.18.0.11"), netip.MustParseAddr("2001:db8::11"), netip.MustParseAddr("fe80::11")
	peers := []netip.Addr{netip.MustParseAddr("198.18.0.12"), netip.MustParseAddr("2001:db8::12")}
	image := "ghcr.io/hapod/hapod:v1.2.3"
	addrs := []hostnet.Addr{
		{Prefix: netip.MustParsePrefix("127.0.0.1/8"), Interface: "lo"},
		{Prefix: netip.MustParsePrefix("198.18.0.11/24"), Interface: "eth1"},
		{Prefix: netip.MustParsePrefix("2001:db8::11/64"), Interface: "eth1"},
		{Prefix: netip.MustParsePrefix("fe80::11/64"), Interface: "eth1"},
		{Prefix: netip.MustParsePrefix("198.18.1.11/24"), Interface: "eth2"},
	}
	on := func(p netip.Prefix, ifname string) hostnet.Addr {
		return hostnet.Addr{Prefix: p, Interface: ifname, Secondary: p.Addr().Is4(), Deprecated: p.Addr().Is6()}
	}
	routes := func(if4, if6 string) []vipRoute {
		return []vipRoute{{VIP: vip4.Addr(), Interface: if4}, {VIP: vip6.Addr(), Interface: if6}}
	}
	errNoRoute := errors.New("network is unreachable")
	type want struct {
		err     string // the whole error; "" for success
		sources map[config.Family]netip.Addr
		stale   []hostnet.Addr
	}
	multicast := want{sources: map[config.Family]netip.Addr{config.IPv4: own4, config.IPv6: ll}}
	for _, tc := range []struct {
		name    string
		unicast bool
		addrs   []hostnet.Addr
		local   []localVIP
		routes  []vipRoute
		want    want
	}{
		{"both routed to eth1", false, addrs, nil, routes("eth1", "eth1"), multicast},
		{"unicast: global sources of both families", true, addrs, nil, routes("eth1", "eth1"),
			want{sources: map[config.Family]netip.Addr{config.IPv4: own4, config.IPv6: own6}}},
		{"the routes lead to different interfaces", false, addrs, nil, routes("eth1", "eth2"), want{err: "--interface: not given, and the VIPs are on different interfaces: " +
			"198.18.0.10 is routed to eth1, 2001:db8::10 is routed to eth2; hapod holds all its VIPs on one interface: pass --interface, one with an address of each VIP's family"}},
		{"the IPv6 VIP held here, the IPv4 one routed to its interface", false, addrs,
			[]localVIP{{Addr: on(vip6, "eth1"), Running: true}}, routes("eth1", "")[:1], multicast},
		{"a VIP held on eth1, the other routed to eth2", false, addrs,
			[]localVIP{{Addr: on(vip6, "eth1"), Running: true}}, routes("eth2", "")[:1], want{err: "--interface: not given, and the VIPs are on different interfaces: " +
				"2001:db8::10 is on eth1, 198.18.0.10 is routed to eth2; hapod holds all its VIPs on one interface: pass --interface, one with an address of each VIP's family"}},
		{"both left by a dead hapod: both removed", false, addrs,
			[]localVIP{{Addr: on(vip4, "eth1")}, {Addr: on(vip6, "eth1")}}, nil,
			want{sources: multicast.sources, stale: []hostnet.Addr{on(vip4, "eth1"), on(vip6, "eth1")}}},
		{"one left behind, the other a node's own address", false, addrs,
			[]localVIP{{Addr: on(vip4, "eth1")}, {Addr: hostnet.Addr{Prefix: vip6, Interface: "eth1"}}}, nil,
			want{err: "--vip 2001:db8::10: already an address of eth1 on this host: the VIP must be an address no node owns"}},
		{"no route to the IPv6 VIP: the IPv4 one's interface", false, addrs, nil,
			[]vipRoute{{VIP: vip4.Addr(), Interface: "eth1"}, {VIP: vip6.Addr(), Err: errNoRoute}}, multicast},
		{"no route to either", false, addrs, nil,
			[]vipRoute{{VIP: vip4.Addr(), Err: errNoRoute}, {VIP: vip6.Addr(), Err: errNoRoute}},
			want{err: "--interface: not given and not detected: network is unreachable"}},
		{"no IPv6 address on the interface", false, addrs[:2], nil, routes("eth1", "eth1"), want{err: "--interface eth1: has no IPv6 link-local address of its own to send VRRP adverts from, " +
			"for the VIP 2001:db8::10/64: each address family's virtual router sends from this node's own address of that family, on the one interface of all the VIPs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.VIP.Prefixes = []netip.Prefix{vip4, vip6}
			cfg.Proxy.Backends = []netip.AddrPort{netip.MustParseAddrPort("198.18.0.11:6443")}
			if tc.unicast {
				cfg.VRRP.Peers = peers
			}
			r := request{Mode: modeInit, Config: cfg, Image: image, Given: func(string) bool { return true }}
			f := hostFacts{Addrs: tc.addrs, Local: tc.local, Routes: tc.routes, Image: imageCheck{Image: image, Endpoint: "unix:///run/containerd.sock", Present: true}}
			p, err := decide(plan{Mode: modeInit, Image: image}, r, inputs{Config: cfg}, f)
			if tc.want.err != "" {
				if err == nil || err.Error() != tc.want.err {
					t.Fatalf("err:\n%v\nwant:\n%s", err, tc.want.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Config.VIP.Interface != "eth1" || !maps.Equal(p.Sources, tc.want.sources) || !slices.Equal(p.Stale, tc.want.stale) {
				t.Errorf("interface %q sources %v stale %v; want eth1, %v, %v", p.Config.VIP.Interface, p.Sources, p.Stale, tc.want.sources, tc.want.stale)
			}
		})
	}
}

// TestMakePlanDualStackKubeadm: `hapod init`/`join --kubeadm-config` on
// a dual-stack kubeadm config (node-ip and subnet pairs, the endpoint and
// advertiseAddress of one family; issue 22). The endpoint's VIP is the
// kubeadm endpoint's; --vip adds the other family's beside it; with the
// endpoint's family only, a note says what the other family's clients
// lack; this node's one backend is its advertiseAddress.
func TestMakePlanDualStackKubeadm(t *testing.T) {
	const image = "ghcr.io/hapod/hapod:v1.2.3"
	node2 := fakeHost()
	node2.Addrs = func() ([]hostnet.Addr, error) {
		return []hostnet.Addr{
			{Prefix: netip.MustParsePrefix("198.18.0.12/24"), Interface: "eth0"},
			{Prefix: netip.MustParsePrefix("2001:db8::12/64"), Interface: "eth0"},
			{Prefix: netip.MustParsePrefix("fe80::12/64"), Interface: "eth0"},
		}, nil
	}
	both := []string{"198.18.0.10/24", "2001:db8::10/64"}
	const oneFamily = "note: testdata/dual-stack-init.yaml is dual-stack (InitConfiguration.nodeRegistration.kubeletExtraArgs node-ip \"198.18.0.11,2001:db8::11\"), and hapod holds IPv4 VIPs only: " +
		"every kubeconfig kubeadm writes names controlPlaneEndpoint, so the cluster is highly available through it, but clients reaching the API over IPv6 get no HA endpoint; " +
		"for one, repeat --vip: controlPlaneEndpoint's VIP and an IPv6 VIP (and add that to apiServer.certSANs)"
	type want struct {
		err      string // the whole error; "" for success
		vips     string
		endpoint string
		backends string
		sources  string
		note     string // one of the notes, whole
	}
	for _, tc := range []struct {
		name string
		mode mode
		host Host
		file string
		vips []string
		want want
	}{
		{"init: the endpoint's VIP alone, with a note", modeInit, fakeHost(), "dual-stack-init.yaml", nil, want{
			vips: "[198.18.0.10/32]", endpoint: "198.18.0.10:6443", backends: "[198.18.0.11:6443]", sources: "map[ipv4:198.18.0.11]", note: oneFamily}},
		{"init: --vip adds the IPv6 VIP beside the endpoint's", modeInit, fakeHost(), "dual-stack-init.yaml", both, want{
			vips: "[198.18.0.10/24 2001:db8::10/64]", endpoint: "198.18.0.10:6443", backends: "[198.18.0.11:6443]", sources: "map[ipv4:198.18.0.11 ipv6:fe80::11]",
			note: "no --backend: the first backend is this node's kube-apiserver 198.18.0.11:6443 (localAPIEndpoint in testdata/dual-stack-init.yaml); the other kube-apiservers are discovered from the API once it answers (--discover)"}},
		{"init: an IPv6 endpoint stays the endpoint, the IPv4 VIP not in certSANs", modeInit, fakeHost(), "dual-stack-init-ipv6.yaml", both, want{
			vips: "[198.18.0.10/24 2001:db8::10/64]", endpoint: "[2001:db8::10]:6443", backends: "[[2001:db8::11]:6443]", sources: "map[ipv4:198.18.0.11 ipv6:fe80::11]",
			note: "warning: ClusterConfiguration.apiServer.certSANs of testdata/dual-stack-init-ipv6.yaml lacks 198.18.0.10: TLS clients connecting to a VIP that the kube-apiservers' certificates do not name fail to verify them; add it there before 'kubeadm init'"}},
		{"init: the other family's VIP alone", modeInit, fakeHost(), "dual-stack-init.yaml", both[1:], want{
			err: "testdata/dual-stack-init.yaml: VIP disagrees with the kubeadm endpoint: ClusterConfiguration.controlPlaneEndpoint is 198.18.0.10:6443, and no --vip is 198.18.0.10 (--vip 2001:db8::10); " +
				"give it as one of them: the other VIPs reach the same kube-apiservers beside it"}},
		{"init: a VIP is this node's node-ip", modeInit, fakeHost(), "dual-stack-init.yaml", []string{"198.18.0.10/24", "2001:db8::11/64"}, want{
			err: "testdata/dual-stack-init.yaml: VIP is also this node's own address: VIP 2001:db8::11 is this node's kubelet node-ip (nodeRegistration.kubeletExtraArgs); the VIP must be an unused address, distinct from every node's"}},
		{"join: the discovery endpoint's VIP and the IPv6 one", modeJoin, node2, "dual-stack-join.yaml", both, want{
			vips: "[198.18.0.10/24 2001:db8::10/64]", endpoint: "198.18.0.10:6443", backends: "[198.18.0.12:6443]", sources: "map[ipv4:198.18.0.12 ipv6:fe80::12]"}},
		{"join: the discovery endpoint's VIP alone", modeJoin, node2, "dual-stack-join.yaml", nil, want{
			vips: "[198.18.0.10/32]", endpoint: "198.18.0.10:6443", backends: "[198.18.0.12:6443]", sources: "map[ipv4:198.18.0.12]",
			note: strings.NewReplacer("init", "join", "Init", "Join", ".11", ".12", "::11", "::12").Replace(oneFamily)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			given := map[string]bool{flagImage: true}
			for _, v := range tc.vips {
				cfg.VIP.Prefixes = append(cfg.VIP.Prefixes, netip.MustParsePrefix(v))
				given["vip"] = true
			}
			r := request{Mode: tc.mode, Config: cfg, Image: image, KubeadmFile: filepath.Join("testdata", tc.file), ManifestDir: t.TempDir(),
				Given: func(flag string) bool { return given[flag] }, BindPort: 6443}
			p, err := makePlan(context.Background(), tc.host, r)
			if tc.want.err != "" {
				if err == nil || err.Error() != tc.want.err {
					t.Fatalf("err:\n%v\nwant:\n%s", err, tc.want.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := want{vips: fmt.Sprint(p.Config.VIP.Prefixes), endpoint: p.Endpoint.String(), backends: fmt.Sprint(p.Config.Proxy.Backends), sources: fmt.Sprint(p.Sources), note: tc.want.note}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if tc.want.note != "" && !slices.Contains(p.Notes, tc.want.note) {
				t.Errorf("notes lack\n%s\nnotes:\n%s", tc.want.note, strings.Join(p.Notes, "\n"))
			}
			if !p.OwnBackend {
				t.Errorf("the backend is this node's own, but the join line would name it")
			}
		})
	}
}
