package kubeadm

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var (
	vip4  = netip.MustParseAddr("198.18.0.10")
	node1 = netip.MustParseAddr("198.18.0.11")
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// withField fills in the EndpointField of an expected Settings: the tables
// name it only when the endpoint is not controlPlaneEndpoint.
func withField(s Settings) Settings {
	if (s.EndpointSet || s.EndpointName != "") && s.EndpointField == "" {
		s.EndpointField = fieldEndpoint
	}
	return s
}

// TestLoadFixtures reads every file in testdata: the files modelled on the
// kubeadm reference examples give Settings, the broken ones the right error.
func TestLoadFixtures(t *testing.T) {
	tests := []struct {
		file        string
		loadErr     error
		settingsErr error
		want        Settings // Source is filled in by the test
	}{
		{file: "v1beta3-init.yaml", want: Settings{
			Endpoint: ap("198.18.0.10:8443"), EndpointSet: true,
			AdvertiseAddress: node1, BindPort: 6443,
			CertSANs: []string{"198.18.0.10", "api.lab.example"},
			NodeIPs:  []netip.Addr{node1},
		}},
		{file: "v1beta3-join-controlplane.yaml", want: Settings{
			// The VIP and port from discovery.bootstrapToken.apiServerEndpoint.
			Endpoint: ap("198.18.0.10:8443"), EndpointSet: true, EndpointField: fieldDiscovery,
			AdvertiseAddress: netip.MustParseAddr("198.18.0.12"), BindPort: 6443,
			BindAddressUnknown: true, // no ClusterConfiguration
		}},
		{file: "v1beta4-init.yaml", want: Settings{
			Endpoint: ap("198.18.0.10:6443"), EndpointSet: true,
			AdvertiseAddress: node1, BindPort: 6443,
			BindAddress: node1, // the second of two bind-address entries
			CertSANs:    []string{"198.18.0.10"},
			NodeIPs:     []netip.Addr{node1},
		}},
		{file: "v1beta4-join.yaml", want: Settings{
			Endpoint: ap("198.18.0.10:8443"), EndpointSet: true, EndpointField: fieldDiscovery,
			AdvertiseAddress: netip.MustParseAddr("198.18.0.13"), BindPort: 7443,
			BindAddressUnknown: true,
		}},
		{file: "with-component-configs.yaml", want: Settings{
			Endpoint: ap("198.18.0.10:8443"), EndpointSet: true,
			AdvertiseAddress: node1, BindPort: 6443,
		}},
		{file: "ipv6.yaml", want: Settings{
			Endpoint: ap("[2001:db8::10]:8443"), EndpointSet: true,
			AdvertiseAddress: netip.MustParseAddr("2001:db8::11"), BindPort: 6443,
			BindAddress: netip.IPv6Unspecified(),
		}},
		// Issue 22: the pairs say dual-stack; the endpoint stays one address.
		{file: "dual-stack-init.yaml", want: Settings{
			Endpoint: ap("198.18.0.10:6443"), EndpointSet: true,
			AdvertiseAddress: node1, BindPort: 6443,
			CertSANs:  []string{"198.18.0.10", "2001:db8::10"},
			NodeIPs:   []netip.Addr{node1, netip.MustParseAddr("2001:db8::11")},
			DualStack: `InitConfiguration.nodeRegistration.kubeletExtraArgs node-ip "198.18.0.11,2001:db8::11"`,
		}},
		{file: "dual-stack-join.yaml", want: Settings{
			Endpoint: ap("198.18.0.10:6443"), EndpointSet: true, EndpointField: fieldDiscovery,
			AdvertiseAddress: netip.MustParseAddr("198.18.0.12"), BindPort: 6443,
			BindAddressUnknown: true,
			NodeIPs:            []netip.Addr{netip.MustParseAddr("198.18.0.12"), netip.MustParseAddr("2001:db8::12")},
			DualStack:          `JoinConfiguration.nodeRegistration.kubeletExtraArgs node-ip "198.18.0.12,2001:db8::12"`,
		}},
		{file: "conflict-6443.yaml", want: Settings{
			// No port in controlPlaneEndpoint: kubeadm uses bindPort.
			Endpoint: ap("198.18.0.10:6443"), EndpointSet: true,
			AdvertiseAddress: node1, BindPort: 6443,
		}},
		{file: "bind-address-6443.yaml", want: Settings{
			Endpoint: ap("198.18.0.10:6443"), EndpointSet: true,
			AdvertiseAddress: node1, BindPort: 6443, BindAddress: node1,
		}},
		{file: "dns-endpoint.yaml", settingsErr: ErrDNSEndpoint, want: Settings{
			Endpoint: netip.AddrPortFrom(netip.Addr{}, 8443), EndpointName: "api.lab.example",
			BindPort: 6443,
		}},
		{file: "bad-yaml.yaml", loadErr: ErrSyntax},
		{file: "unknown-kind.yaml", loadErr: ErrUnknownKind},
		{file: "v1beta2.yaml", loadErr: ErrUnsupportedVersion},
		{file: "empty.yaml", loadErr: ErrNoConfiguration},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			f, err := Load(context.Background(), path)
			if tt.loadErr != nil {
				if !errors.Is(err, tt.loadErr) {
					t.Fatalf("Load: err = %v, want %v", err, tt.loadErr)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("Load error %q does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			got, err := f.Settings()
			if !errors.Is(err, tt.settingsErr) {
				t.Fatalf("Settings: err = %v, want %v", err, tt.settingsErr)
			}
			want := withField(tt.want)
			want.Source = path
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Settings:\n got %+v\nwant %+v", got, want)
			}
		})
	}
	// Every fixture must be in the table, so none rots unread.
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() && !covered[e.Name()] {
			t.Errorf("testdata/%s is not in the table", e.Name())
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(context.Background(), filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("err = %v, want a not-exist error naming the file", err)
	}
}

// TestParseErrors covers what the fixtures don't, one document shape per
// case, and checks that each message names the file and the field or
// document it is about.
func TestParseErrors(t *testing.T) {
	const (
		init4    = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
		cluster4 = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
		join4    = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n"
	)
	tests := []struct {
		name     string
		in       string
		parseErr error
		err      error    // from Settings, when Parse succeeds
		mention  []string // substrings the error must contain
	}{
		{name: "duplicate kind", in: cluster4 + "---\n" + init4 + "---\n" + cluster4,
			parseErr: ErrDuplicateKind, mention: []string{"document 3", "document 1"}},
		{name: "no kind", in: "apiVersion: kubeadm.k8s.io/v1beta4\n",
			parseErr: ErrSyntax, mention: []string{"document 1", "kind"}},
		{name: "no apiVersion", in: "kind: ClusterConfiguration\n",
			parseErr: ErrSyntax, mention: []string{"apiVersion"}},
		{name: "document is a list", in: "- a\n- b\n", parseErr: ErrSyntax},
		{name: "v1beta2 lists supported", in: "apiVersion: kubeadm.k8s.io/v1beta2\nkind: InitConfiguration\n",
			parseErr: ErrUnsupportedVersion, mention: []string{"kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"}},
		{name: "version without group separator is skipped, leaving nothing", in: "apiVersion: v1\nkind: ConfigMap\n",
			parseErr: ErrNoConfiguration},
		{name: "only component configs", in: "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n",
			parseErr: ErrNoConfiguration},
		{name: "ResetConfiguration is not v1beta3", in: "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ResetConfiguration\n",
			parseErr: ErrUnknownKind, mention: []string{"ResetConfiguration"}},
		{name: "bindPort wrong type", in: init4 + "localAPIEndpoint:\n  bindPort: abc\n",
			parseErr: ErrSyntax, mention: []string{"InitConfiguration", "bindPort"}},
		{name: "certSANs wrong type", in: cluster4 + "apiServer:\n  certSANs: 198.18.0.10\n",
			parseErr: ErrSyntax, mention: []string{"certSANs"}},
		{name: "extraArgs map value not a string", in: cluster4 + "apiServer:\n  extraArgs:\n    anonymous-auth: false\n    z: 1\n",
			parseErr: ErrSyntax, mention: []string{"extraArgs anonymous-auth", "quote it"}},
		{name: "bad YAML in the second document names its first line", in: cluster4 + "---\napiVersion: [\n",
			parseErr: ErrSyntax, mention: []string{"document 2 (from line 4)"}},
		{name: "extraArgs list item without name", in: cluster4 + "apiServer:\n  extraArgs:\n  - value: x\n",
			parseErr: ErrSyntax, mention: []string{"name is empty"}},
		{name: "extraArgs scalar", in: cluster4 + "apiServer:\n  extraArgs: bind-address\n",
			parseErr: ErrSyntax, mention: []string{"extraArgs"}},
		{name: "bindPort out of range", in: init4 + "localAPIEndpoint:\n  bindPort: 70000\n",
			err: ErrBadPort, mention: []string{"InitConfiguration.localAPIEndpoint.bindPort"}},
		{name: "join bindPort negative", in: join4 + "controlPlane:\n  localAPIEndpoint:\n    bindPort: -1\n",
			err: ErrBadPort, mention: []string{"JoinConfiguration.controlPlane.localAPIEndpoint.bindPort"}},
		{name: "advertiseAddress not an IP", in: init4 + "localAPIEndpoint:\n  advertiseAddress: cp-1\n",
			err: ErrBadAddress, mention: []string{"InitConfiguration.localAPIEndpoint.advertiseAddress"}},
		{name: "bind-address not an IP", in: cluster4 + "apiServer:\n  extraArgs:\n    bind-address: eth0\n",
			err: ErrBadAddress, mention: []string{"apiServer.extraArgs bind-address", `"eth0"`}},
		{name: "endpoint port zero", in: cluster4 + "controlPlaneEndpoint: 198.18.0.10:0\n",
			err: ErrBadEndpoint, mention: []string{"ClusterConfiguration.controlPlaneEndpoint"}},
		{name: "endpoint port too big", in: cluster4 + "controlPlaneEndpoint: 198.18.0.10:65536\n", err: ErrBadEndpoint},
		{name: "endpoint port not a number", in: cluster4 + "controlPlaneEndpoint: 198.18.0.10:https\n", err: ErrBadEndpoint},
		{name: "endpoint mistyped IPv4", in: cluster4 + "controlPlaneEndpoint: 198.18.0.300:8443\n", err: ErrBadEndpoint},
		{name: "endpoint IPv6 zone", in: cluster4 + "controlPlaneEndpoint: \"[fe80::1%eth0]:8443\"\n", err: ErrBadEndpoint},
		{name: "endpoint IPv6 brackets without port", in: cluster4 + "controlPlaneEndpoint: \"[2001:db8::10]\"\n", err: ErrBadEndpoint},
		{name: "endpoint URL", in: cluster4 + "controlPlaneEndpoint: https://198.18.0.10:8443\n", err: ErrBadEndpoint},
		{name: "endpoint DNS without port", in: cluster4 + "controlPlaneEndpoint: API.lab.example\n",
			err: ErrDNSEndpoint, mention: []string{"--vip", "API.lab.example"}},
		{name: "join discovery endpoint without port", in: join4 + "discovery:\n  bootstrapToken:\n    apiServerEndpoint: 198.18.0.10\n",
			err: ErrBadEndpoint, mention: []string{"JoinConfiguration.discovery.bootstrapToken.apiServerEndpoint", "HOST:PORT"}},
		{name: "join discovery endpoint with empty port", in: join4 + "discovery:\n  bootstrapToken:\n    apiServerEndpoint: \"198.18.0.10:\"\n",
			err: ErrBadEndpoint},
		{name: "join discovery endpoint port zero", in: join4 + "discovery:\n  bootstrapToken:\n    apiServerEndpoint: 198.18.0.10:0\n",
			err: ErrBadEndpoint, mention: []string{"apiServerEndpoint"}},
		{name: "join discovery endpoint is a DNS name", in: join4 + "discovery:\n  bootstrapToken:\n    apiServerEndpoint: api.lab.example:8443\n",
			err: ErrDNSEndpoint, mention: []string{"--vip", "put the VIP in JoinConfiguration.discovery.bootstrapToken.apiServerEndpoint"}},
		{name: "endpoints agree, DNS name case aside", in: cluster4 + "controlPlaneEndpoint: API.lab.example:8443\n---\n" +
			join4 + "discovery:\n  bootstrapToken:\n    apiServerEndpoint: api.lab.example:8443\n",
			err: ErrDNSEndpoint, mention: []string{"ClusterConfiguration.controlPlaneEndpoint"}},
		{name: "endpoints disagree", in: cluster4 + "controlPlaneEndpoint: 198.18.0.10:8443\n---\n" +
			join4 + "discovery:\n  bootstrapToken:\n    apiServerEndpoint: 198.18.0.11:6443\n",
			err: ErrEndpointMismatch, mention: []string{`"198.18.0.10:8443"`, `"198.18.0.11:6443"`}},
		{name: "endpoints disagree on the port", in: cluster4 + "controlPlaneEndpoint: 198.18.0.10\n---\n" +
			join4 + "discovery:\n  bootstrapToken:\n    apiServerEndpoint: 198.18.0.10:8443\n",
			err: ErrEndpointMismatch},
		{name: "init and join disagree", in: init4 + "localAPIEndpoint:\n  advertiseAddress: 198.18.0.11\n---\n" +
			join4 + "controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: 198.18.0.12\n",
			err: ErrInitJoinMismatch, mention: []string{"198.18.0.11:6443", "198.18.0.12:6443"}},
		// Issue 22: node-ip and the subnets as kubelet and kubeadm take them.
		{name: "node-ip not an IP", in: init4 + "nodeRegistration:\n  kubeletExtraArgs:\n  - name: node-ip\n    value: 198.18.0.11,eth0\n",
			err: ErrBadAddress, mention: []string{"InitConfiguration.nodeRegistration.kubeletExtraArgs node-ip", `"198.18.0.11,eth0"`}},
		{name: "node-ip pair of one family", in: join4 + "nodeRegistration:\n  kubeletExtraArgs:\n  - name: node-ip\n    value: 198.18.0.12,198.18.0.13\n",
			err: ErrBadAddress, mention: []string{"JoinConfiguration.nodeRegistration.kubeletExtraArgs node-ip", "one IPv4 and one IPv6"}},
		{name: "node-ip of three", in: init4 + "nodeRegistration:\n  kubeletExtraArgs:\n  - name: node-ip\n    value: 198.18.0.11,2001:db8::11,2001:db8::12\n",
			err: ErrBadAddress, mention: []string{"one IPv4 and one IPv6"}},
		{name: "node-ip with an empty part", in: init4 + "nodeRegistration:\n  kubeletExtraArgs:\n  - name: node-ip\n    value: 198.18.0.11,\n",
			err: ErrBadAddress},
		{name: "init and join disagree on node-ip", in: init4 + "nodeRegistration:\n  kubeletExtraArgs:\n  - name: node-ip\n    value: 198.18.0.11\n---\n" +
			join4 + "nodeRegistration:\n  kubeletExtraArgs:\n  - name: node-ip\n    value: 198.18.0.11,2001:db8::11\n",
			err: ErrInitJoinMismatch, mention: []string{`"198.18.0.11"`, `"198.18.0.11,2001:db8::11"`}},
		{name: "podSubnet not a CIDR", in: cluster4 + "networking:\n  podSubnet: \"198.19.0.0/16,2001:db8:42::\"\n",
			err: ErrBadSubnet, mention: []string{"ClusterConfiguration.networking.podSubnet", `"198.19.0.0/16,2001:db8:42::"`}},
		{name: "init and join ports disagree", in: init4 + "localAPIEndpoint:\n  bindPort: 6443\n---\n" +
			join4 + "controlPlane:\n  localAPIEndpoint:\n    bindPort: 7443\n",
			err: ErrInitJoinMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(tt.in), "test.yaml")
			if tt.parseErr != nil || err != nil {
				if !errors.Is(err, tt.parseErr) {
					t.Fatalf("Parse: err = %v, want %v", err, tt.parseErr)
				}
			} else {
				_, err = f.Settings()
				if !errors.Is(err, tt.err) {
					t.Fatalf("Settings: err = %v, want %v", err, tt.err)
				}
			}
			for _, m := range append([]string{"test.yaml"}, tt.mention...) {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

// TestParseSettings covers accepted variants of the fields hapod reads.
func TestParseSettings(t *testing.T) {
	const (
		init3    = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n"
		cluster3 = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n"
		cluster4 = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
		join4    = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n"
	)
	tests := []struct {
		name string
		in   string
		want Settings // Source "t" and BindPort 6443 unless set
	}{
		{name: "endpoint without port takes bindPort",
			in:   init3 + "localAPIEndpoint:\n  bindPort: 7443\n---\n" + cluster3 + "controlPlaneEndpoint: 198.18.0.10\n",
			want: Settings{Endpoint: ap("198.18.0.10:7443"), EndpointSet: true, BindPort: 7443}},
		{name: "bare IPv6 endpoint", in: cluster4 + "controlPlaneEndpoint: \"2001:db8::10\"\n",
			want: Settings{Endpoint: ap("[2001:db8::10]:6443"), EndpointSet: true}},
		{name: "trailing colon means default port", in: cluster4 + "controlPlaneEndpoint: \"198.18.0.10:\"\n",
			want: Settings{Endpoint: ap("198.18.0.10:6443"), EndpointSet: true}},
		{name: "IPv4-mapped endpoint is unmapped", in: cluster4 + "controlPlaneEndpoint: \"[::ffff:198.18.0.10]:8443\"\n",
			want: Settings{Endpoint: ap("198.18.0.10:8443"), EndpointSet: true}},
		{name: "unspecified advertiseAddress means kubeadm's default",
			in:   init3 + "localAPIEndpoint:\n  advertiseAddress: 0.0.0.0\n",
			want: Settings{BindAddressUnknown: true}},
		{name: "list extraArgs in v1beta3",
			in:   cluster3 + "apiServer:\n  extraArgs:\n  - name: bind-address\n    value: 198.18.0.11\n",
			want: Settings{BindAddress: node1}},
		{name: "map extraArgs in v1beta4",
			in:   cluster4 + "apiServer:\n  extraArgs:\n    bind-address: 198.18.0.11\n",
			want: Settings{BindAddress: node1}},
		{name: "empty bind-address is unset", in: cluster4 + "apiServer:\n  extraArgs:\n    bind-address: \"\"\n",
			want: Settings{}},
		{name: "null extraArgs", in: cluster4 + "apiServer:\n  extraArgs: null\n", want: Settings{}},
		{name: "unknown fields ignored", in: cluster4 + "futureField: {a: [1, 2]}\napiServer:\n  timeoutForControlPlane: 4m0s\n",
			want: Settings{}},
		{name: "worker join has no local endpoint", in: join4 + "discovery:\n  bootstrapToken:\n    apiServerEndpoint: 198.18.0.10:8443\n",
			want: Settings{Endpoint: ap("198.18.0.10:8443"), EndpointSet: true, EndpointField: fieldDiscovery, BindAddressUnknown: true}},
		{name: "join discovery IPv6 endpoint", in: join4 + "discovery:\n  bootstrapToken:\n    apiServerEndpoint: \"[2001:db8::10]:8443\"\n",
			want: Settings{Endpoint: ap("[2001:db8::10]:8443"), EndpointSet: true, EndpointField: fieldDiscovery, BindAddressUnknown: true}},
		{name: "join discovery file: no endpoint", in: join4 + "discovery:\n  file:\n    kubeConfigPath: /etc/kubernetes/discovery.conf\n",
			want: Settings{BindAddressUnknown: true}},
		{name: "init and join files agree on the endpoint", in: cluster4 + "controlPlaneEndpoint: 198.18.0.10:8443\n---\n" +
			join4 + "discovery:\n  bootstrapToken:\n    apiServerEndpoint: \"[::ffff:198.18.0.10]:8443\"\n",
			want: Settings{Endpoint: ap("198.18.0.10:8443"), EndpointSet: true}},

		{name: "init and join agree", in: init3 + "localAPIEndpoint:\n  advertiseAddress: 198.18.0.11\n---\n" +
			"apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\ncontrolPlane:\n  localAPIEndpoint:\n    advertiseAddress: 198.18.0.11\n    bindPort: 6443\n",
			want: Settings{AdvertiseAddress: node1, BindAddressUnknown: true}},
		{name: "v1beta4 ResetConfiguration skipped", in: "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\nforce: true\n---\n" +
			cluster4 + "controlPlaneEndpoint: 198.18.0.10:8443\n",
			want: Settings{Endpoint: ap("198.18.0.10:8443"), EndpointSet: true}},
		{name: "CRLF line endings", in: strings.ReplaceAll(init3+"localAPIEndpoint:\n  advertiseAddress: 198.18.0.11\n---\n"+
			cluster3+"controlPlaneEndpoint: 198.18.0.10:8443\n", "\n", "\r\n"),
			want: Settings{Endpoint: ap("198.18.0.10:8443"), EndpointSet: true, AdvertiseAddress: node1}},
		{name: "dual-stack subnets, IPv6 first", in: cluster4 + "networking:\n  podSubnet: 2001:db8:42::/56, 198.19.0.0/16\n",
			want: Settings{DualStack: `ClusterConfiguration.networking.podSubnet "2001:db8:42::/56, 198.19.0.0/16"`}},
		{name: "dual-stack service subnets only", in: cluster4 + "networking:\n  podSubnet: 198.19.0.0/16\n  serviceSubnet: 198.18.128.0/20,2001:db8:43::/112\n",
			want: Settings{DualStack: `ClusterConfiguration.networking.serviceSubnet "198.18.128.0/20,2001:db8:43::/112"`}},
		{name: "single-stack subnets", in: cluster4 + "networking:\n  podSubnet: 198.19.0.0/16\n  serviceSubnet: 198.18.128.0/20\n",
			want: Settings{}},
		{name: "node-ip pair in the map form, IPv6 first",
			in: init3 + "nodeRegistration:\n  kubeletExtraArgs:\n    node-ip: 2001:db8::11,198.18.0.11\n",
			want: Settings{BindAddressUnknown: true, NodeIPs: []netip.Addr{netip.MustParseAddr("2001:db8::11"), node1},
				DualStack: `InitConfiguration.nodeRegistration.kubeletExtraArgs node-ip "2001:db8::11,198.18.0.11"`}},
		{name: "unspecified node-ip is kubelet's choice", in: init3 + "nodeRegistration:\n  kubeletExtraArgs:\n    node-ip: \"::\"\n",
			want: Settings{BindAddressUnknown: true}},
		{name: "init and join agree on node-ip", in: init3 + "nodeRegistration:\n  kubeletExtraArgs:\n    node-ip: 198.18.0.11\n---\n" +
			"apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\nnodeRegistration:\n  kubeletExtraArgs:\n    node-ip: 198.18.0.11\n",
			want: Settings{BindAddressUnknown: true, NodeIPs: []netip.Addr{node1}}},
		{name: "leading separator and no final newline", in: "---\n" + cluster4 + "controlPlaneEndpoint: 198.18.0.10:8443",
			want: Settings{Endpoint: ap("198.18.0.10:8443"), EndpointSet: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(tt.in), "t")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, err := f.Settings()
			if err != nil {
				t.Fatalf("Settings: %v", err)
			}
			want := withField(tt.want)
			want.Source = "t"
			if want.BindPort == 0 {
				want.BindPort = DefaultBindPort
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Settings:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestEndpointString(t *testing.T) {
	for _, tc := range []struct {
		s    Settings
		want string
	}{
		{Settings{}, ""},
		{Settings{Endpoint: ap("198.18.0.10:8443"), EndpointSet: true}, "198.18.0.10:8443"},
		{Settings{Endpoint: ap("[2001:db8::10]:8443"), EndpointSet: true}, "[2001:db8::10]:8443"},
		{Settings{Endpoint: netip.AddrPortFrom(netip.Addr{}, 8443), EndpointName: "api.lab.example"}, "api.lab.example:8443"},
	} {
		if got := tc.s.EndpointString(); got != tc.want {
			t.Errorf("%+v: EndpointString() = %q, want %q", tc.s, got, tc.want)
		}
	}
}

func TestArgs(t *testing.T) {
	tests := []struct {
		name, in string
		want     Args
	}{
		{"map sorted by name", `{"z": "1", "bind-address": "198.18.0.11"}`,
			Args{{"bind-address", "198.18.0.11"}, {"z", "1"}}},
		{"list keeps order and repeats", `[{"name": "b", "value": "1"}, {"name": "b", "value": "2"}]`,
			Args{{"b", "1"}, {"b", "2"}}},
		{"null", `null`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Args
			if err := got.UnmarshalJSON([]byte(tt.in)); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	a := Args{{"b", "1"}, {"c", "x"}, {"b", "2"}}
	if v, ok := a.Get("b"); !ok || v != "2" {
		t.Errorf(`Get("b") = %q, %v; want the last value "2"`, v, ok)
	}
	if _, ok := a.Get("bind-address"); ok {
		t.Error(`Get of an absent name reports it present`)
	}
}

func TestCheckPortConflict(t *testing.T) {
	tests := []struct {
		name     string
		frontend uint16
		s        Settings
		conflict bool
	}{
		{"6443 without bind-address", 6443, Settings{BindPort: 6443}, true},
		{"zero Settings means kubeadm defaults", 6443, Settings{}, true},
		{"bind-address 0.0.0.0", 6443, Settings{BindPort: 6443, BindAddress: netip.IPv4Unspecified()}, true},
		{"bind-address ::", 6443, Settings{BindPort: 6443, BindAddress: netip.IPv6Unspecified()}, true},
		{"moved bindPort", 7443, Settings{BindPort: 7443}, true},
		{"frontend 8443", 8443, Settings{BindPort: 6443}, false},
		{"bind-address set", 6443, Settings{BindPort: 6443, BindAddress: node1}, false},
		{"IPv6 bind-address set", 6443, Settings{BindPort: 6443, BindAddress: netip.MustParseAddr("2001:db8::11")}, false},
		{"bindPort moved away from frontend", 6443, Settings{BindPort: 7443}, false},
		// A JoinConfiguration cannot carry apiServer extraArgs: a per-node
		// patch may bind the node's address.
		{"join file: bind unknown", 6443, Settings{BindPort: 6443, BindAddressUnknown: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.s.Source = "kubeadm.yaml"
			err := CheckPortConflict(tt.frontend, tt.s)
			if !tt.conflict {
				if err != nil {
					t.Fatalf("unexpected conflict: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrPortConflict) {
				t.Fatalf("err = %v, want ErrPortConflict", err)
			}
			// One message naming the file once, first, and both ways out.
			if !strings.HasPrefix(err.Error(), "kubeadm.yaml: ") || strings.Count(err.Error(), "kubeadm.yaml") != 1 {
				t.Errorf("error %q does not start with the file name, once", err)
			}
			for _, m := range []string{"leave --listen-port out", "nftables redirect", "--port 8443", "controlPlaneEndpoint VIP:8443", "cluster-wide", "Port-6443"} {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

// TestCheckPortConflictFixtures ties the check to the fixtures named for it.
func TestCheckPortConflictFixtures(t *testing.T) {
	for file, conflict := range map[string]bool{
		"conflict-6443.yaml":     true,
		"bind-address-6443.yaml": false,
		"v1beta3-init.yaml":      false, // frontend 8443
		"v1beta4-init.yaml":      false, // 6443, but bind-address is the node's
	} {
		f, err := Load(context.Background(), filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		s, err := f.Settings()
		if err != nil {
			t.Fatal(err)
		}
		err = CheckPortConflict(s.Endpoint.Port(), s)
		if got := errors.Is(err, ErrPortConflict); got != conflict {
			t.Errorf("%s: conflict = %v (%v), want %v", file, got, err, conflict)
		}
	}
}

func TestCheckVIP(t *testing.T) {
	withEndpoint := Settings{Source: "k.yaml", Endpoint: ap("198.18.0.10:8443"), EndpointSet: true, AdvertiseAddress: node1}
	vip6 := netip.MustParseAddr("2001:db8::10")
	tests := []struct {
		name    string
		vips    []netip.Addr
		s       Settings
		err     error
		mention []string
	}{
		{name: "same", vips: []netip.Addr{vip4}, s: withEndpoint},
		{name: "IPv4-mapped --vip matches", vips: []netip.Addr{netip.MustParseAddr("::ffff:198.18.0.10")}, s: withEndpoint},
		{name: "no --vip", s: withEndpoint},
		{name: "no endpoint", vips: []netip.Addr{vip4}, s: Settings{AdvertiseAddress: node1}},
		{name: "nothing", s: Settings{}},
		{name: "differ", vips: []netip.Addr{netip.MustParseAddr("198.18.0.20")}, s: withEndpoint, err: ErrVIPMismatch,
			mention: []string{"k.yaml", "198.18.0.20", "198.18.0.10:8443", "ClusterConfiguration.controlPlaneEndpoint"}},
		{name: "differ from the join endpoint", vips: []netip.Addr{netip.MustParseAddr("198.18.0.20")},
			s:   Settings{Source: "j.yaml", Endpoint: ap("198.18.0.10:8443"), EndpointSet: true, EndpointField: fieldDiscovery},
			err: ErrVIPMismatch, mention: []string{"JoinConfiguration.discovery.bootstrapToken.apiServerEndpoint is 198.18.0.10:8443"}},
		// Issue 22: the endpoint's VIP and another family's beside it.
		{name: "the endpoint's VIP among several", vips: []netip.Addr{vip6, vip4}, s: withEndpoint},
		{name: "several, none the endpoint's", vips: []netip.Addr{vip6, netip.MustParseAddr("198.18.0.20")}, s: withEndpoint, err: ErrVIPMismatch,
			mention: []string{"ClusterConfiguration.controlPlaneEndpoint is 198.18.0.10:8443, and no --vip is 198.18.0.10 (--vip 2001:db8::10, 198.18.0.20)"}},
		{name: "one --vip, of the other family", vips: []netip.Addr{vip6}, s: withEndpoint, err: ErrVIPMismatch,
			mention: []string{"ClusterConfiguration.controlPlaneEndpoint is 198.18.0.10:8443, and no --vip is 198.18.0.10 (--vip 2001:db8::10); give it as one of them"}},
		{name: "--vip is the advertiseAddress", vips: []netip.Addr{node1}, s: Settings{AdvertiseAddress: node1}, err: ErrVIPIsNodeAddress,
			mention: []string{"advertiseAddress"}},
		{name: "endpoint is the advertiseAddress", s: Settings{Endpoint: ap("198.18.0.11:6443"), EndpointSet: true, AdvertiseAddress: node1},
			err: ErrVIPIsNodeAddress},
		{name: "the other VIP is this node's node-ip", vips: []netip.Addr{vip4, netip.MustParseAddr("2001:db8::11")},
			s:   Settings{Source: "k.yaml", Endpoint: ap("198.18.0.10:8443"), EndpointSet: true, NodeIPs: []netip.Addr{node1, netip.MustParseAddr("2001:db8::11")}},
			err: ErrVIPIsNodeAddress, mention: []string{"VIP 2001:db8::11 is this node's kubelet node-ip"}},
		{name: "bind-address is the VIP", vips: []netip.Addr{vip4}, s: Settings{BindAddress: vip4}, err: ErrVIPIsNodeAddress,
			mention: []string{"bind-address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckVIP(tt.vips, tt.s)
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			for _, m := range tt.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			if err != nil && tt.s.Source != "" && strings.Count(err.Error(), tt.s.Source) != 1 {
				t.Errorf("error %q does not name %s exactly once", err, tt.s.Source)
			}
		})
	}
}

// TestCertSANsLack: the VIPs besides the endpoint's need to be in
// apiServer.certSANs (as IPs, IPv4-mapped or not); a file without a
// ClusterConfiguration has no say.
func TestCertSANsLack(t *testing.T) {
	vip6, vip4b := netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("198.18.0.20")
	s := Settings{Endpoint: ap("198.18.0.10:6443"), EndpointSet: true, CertSANs: []string{"api.lab.example", "2001:db8:0::10"}}
	if got := CertSANsLack([]netip.Addr{vip4, vip6, vip4b}, s); !reflect.DeepEqual(got, []netip.Addr{vip4b}) {
		t.Errorf("lacking %v, want [198.18.0.20]", got)
	}
	s.CertSANs = append(s.CertSANs, "::ffff:198.18.0.20")
	if got := CertSANsLack([]netip.Addr{vip4, vip6, vip4b}, s); got != nil {
		t.Errorf("lacking %v, want none", got)
	}
	if got := CertSANsLack([]netip.Addr{vip4, vip6}, Settings{Endpoint: ap("198.18.0.10:6443"), EndpointSet: true, BindAddressUnknown: true}); got != nil {
		t.Errorf("a JoinConfiguration alone: lacking %v, want none", got)
	}
}

// FuzzParse: Parse and Settings never panic, and what they accept obeys
// the documented invariants.
func FuzzParse(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if data, err := os.ReadFile(filepath.Join("testdata", e.Name())); err == nil && !e.IsDir() {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data, "fuzz")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz: ") {
				t.Fatalf("error does not start with the file name: %v", err)
			}
			return
		}
		if file.Init == nil && file.Cluster == nil && file.Join == nil {
			t.Fatal("Parse succeeded with no kubeadm document")
		}
		s, err := file.Settings()
		if err != nil && !errors.Is(err, ErrDNSEndpoint) {
			return
		}
		if s.BindPort == 0 {
			t.Fatalf("BindPort 0 in %+v", s)
		}
		if s.EndpointSet && (!s.Endpoint.IsValid() || s.Endpoint.Port() == 0 || s.Endpoint.Addr().Zone() != "" || s.Endpoint.Addr().Is4In6()) {
			t.Fatalf("bad Endpoint in %+v", s)
		}
		if errors.Is(err, ErrDNSEndpoint) && (s.EndpointSet || s.EndpointName == "" || s.Endpoint.Port() == 0) {
			t.Fatalf("DNS endpoint settings inconsistent: %+v", s)
		}
		if s.AdvertiseAddress.IsValid() && s.AdvertiseAddress.IsUnspecified() {
			t.Fatalf("unspecified AdvertiseAddress kept: %+v", s)
		}
		if len(s.NodeIPs) > 2 || len(s.NodeIPs) == 2 && (s.NodeIPs[0].Is4() == s.NodeIPs[1].Is4() || s.DualStack == "") ||
			slices.ContainsFunc(s.NodeIPs, func(a netip.Addr) bool { return !a.IsValid() || a.IsUnspecified() || a.Zone() != "" }) {
			t.Fatalf("bad NodeIPs in %+v", s)
		}
		_ = CheckPortConflict(s.Endpoint.Port(), s)
		_ = CheckVIP([]netip.Addr{s.Endpoint.Addr()}, s)
		_ = CertSANsLack(s.NodeIPs, s)
	})
}

// TestCRISocket: nodeRegistration.criSocket of the InitConfiguration, else
// of the JoinConfiguration, in both API versions; none given is "".
func TestCRISocket(t *testing.T) {
	const crio = "unix:///var/run/crio/crio.sock"
	for _, tc := range []struct{ name, doc, want string }{
		{"init v1beta4", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  criSocket: " + crio + "\n", crio},
		{"join v1beta3", "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\nnodeRegistration:\n  criSocket: " + crio + "\n" +
			"discovery:\n  bootstrapToken:\n    apiServerEndpoint: 198.18.0.10:8443\n", crio},
		{"init first", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  criSocket: " + crio + "\n---\n" +
			"apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nnodeRegistration:\n  criSocket: unix:///other.sock\n", crio},
		{"none", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: 198.18.0.10:8443\n", ""},
	} {
		f, err := Parse([]byte(tc.doc), tc.name)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := f.CRISocket(); got != tc.want {
			t.Errorf("%s: CRISocket() = %q, want %q", tc.name, got, tc.want)
		}
	}
}
