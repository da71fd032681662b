package kubeadm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// The types below are the few fields of kubeadm's configuration API
// (kubeadm.k8s.io/v1beta3 and v1beta4) that hapod reads. They are our own
// small copies, as Cluster API keeps its own bootstrap types, because
// importing k8s.io/kubernetes needs dozens of replace directives. Decoding
// is lenient about fields that are not declared here (kubeadm has many) and
// strict about the types of the fields that are: a bindPort of "abc" is an
// error, not a silent zero.
//
// The two API versions agree on every field read here except the shape of
// extraArgs and kubeletExtraArgs, which Args accepts in both shapes.

// InitConfiguration is the node-local part of `kubeadm init --config`.
type InitConfiguration struct {
	// LocalAPIEndpoint is where this node's kube-apiserver advertises and
	// binds. Nil when the document does not set it.
	LocalAPIEndpoint *APIEndpoint `json:"localAPIEndpoint,omitempty"`
	// NodeRegistration is how this node registers with the cluster.
	NodeRegistration NodeRegistration `json:"nodeRegistration,omitempty"`
}

// NodeRegistration is nodeRegistration of an Init- or JoinConfiguration.
type NodeRegistration struct {
	// CRISocket is the container runtime kubeadm and kubelet use on this
	// node ("unix:///var/run/crio/crio.sock"); empty: kubeadm detects it.
	CRISocket string `json:"criSocket,omitempty"`
	// KubeletExtraArgs are extra kubelet flags for this node; hapod reads
	// node-ip, one address or a dual-stack pair ("198.18.0.11,2001:db8::11").
	KubeletExtraArgs Args `json:"kubeletExtraArgs,omitempty"`
}

// ClusterConfiguration is the cluster-wide part of `kubeadm init --config`.
type ClusterConfiguration struct {
	// ControlPlaneEndpoint is the stable "host[:port]" every component uses
	// to reach the API; with hapod it is VIP:frontend port.
	ControlPlaneEndpoint string `json:"controlPlaneEndpoint,omitempty"`
	// APIServer holds the kube-apiserver's extra flags and certificate SANs.
	APIServer APIServer `json:"apiServer,omitempty"`
	// Networking holds the cluster's pod and service subnets.
	Networking Networking `json:"networking,omitempty"`
}

// Networking is ClusterConfiguration.networking. A dual-stack cluster
// gives a pair of subnets, one of each family, comma-separated.
type Networking struct {
	// PodSubnet is the pods' CIDR(s), "10.244.0.0/16,2001:db8:42::/56".
	PodSubnet string `json:"podSubnet,omitempty"`
	// ServiceSubnet is the services' CIDR(s).
	ServiceSubnet string `json:"serviceSubnet,omitempty"`
}

// APIServer is ClusterConfiguration.apiServer.
type APIServer struct {
	// ExtraArgs are extra kube-apiserver flags; hapod reads bind-address.
	ExtraArgs Args `json:"extraArgs,omitempty"`
	// CertSANs are extra subject alternative names of the serving
	// certificate.
	CertSANs []string `json:"certSANs,omitempty"`
}

// JoinConfiguration is `kubeadm join --config`.
type JoinConfiguration struct {
	// ControlPlane is set when the node joins as a control-plane node; nil
	// for a worker.
	ControlPlane *JoinControlPlane `json:"controlPlane,omitempty"`
	// Discovery is how the node finds the cluster.
	Discovery Discovery `json:"discovery,omitempty"`
	// NodeRegistration is how this node registers with the cluster.
	NodeRegistration NodeRegistration `json:"nodeRegistration,omitempty"`
}

// Discovery is JoinConfiguration.discovery (the same shape in v1beta3 and
// v1beta4). hapod reads only token discovery: a discovery file (a
// kubeconfig) is not read.
type Discovery struct {
	// BootstrapToken is token-based discovery; nil when a file is used.
	BootstrapToken *BootstrapTokenDiscovery `json:"bootstrapToken,omitempty"`
}

// BootstrapTokenDiscovery is JoinConfiguration.discovery.bootstrapToken.
type BootstrapTokenDiscovery struct {
	// APIServerEndpoint is the "host:port" the joining node first talks
	// to: with hapod, the VIP and the frontend port, as in the
	// 'kubeadm join VIP:PORT' command kubeadm init prints.
	APIServerEndpoint string `json:"apiServerEndpoint,omitempty"`
}

// JoinControlPlane is JoinConfiguration.controlPlane.
type JoinControlPlane struct {
	// LocalAPIEndpoint is where the new kube-apiserver advertises and binds.
	LocalAPIEndpoint APIEndpoint `json:"localAPIEndpoint,omitempty"`
}

// APIEndpoint is a localAPIEndpoint. Both fields are optional: kubeadm
// picks the address of the default-route interface and port 6443.
type APIEndpoint struct {
	// AdvertiseAddress is the IP the kube-apiserver advertises.
	AdvertiseAddress string `json:"advertiseAddress,omitempty"`
	// BindPort is the kube-apiserver's secure port. int32 like kubeadm's
	// own field, so an out-of-range value is reported, not wrapped around.
	BindPort int32 `json:"bindPort,omitempty"`
}

// Arg is one extra flag of a control-plane component.
type Arg struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Args are extra flags in either shape kubeadm has used:
//
//	extraArgs: {bind-address: 198.18.0.1}                    # v1beta3: a map
//	extraArgs: [{name: bind-address, value: 198.18.0.1}]     # v1beta4: a list
//
// Both shapes are accepted in both API versions, because users migrating a
// file by hand often mix them. A map is kept sorted by name so decoding is
// deterministic. The list form may repeat a name; Get returns the last
// value, which is what the component sees: kubeadm passes the repeats in
// order and a single-valued flag keeps the last one.
type Args []Arg

// UnmarshalJSON decodes the map or the list form. Values must be strings,
// as in kubeadm (YAML `anonymous-auth: false` must be quoted there too).
func (a *Args) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case bytes.Equal(data, []byte("null")):
		*a = nil
		return nil
	case len(data) > 0 && data[0] == '{':
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("extraArgs: %w", err)
		}
		out := make(Args, 0, len(m))
		for _, name := range slices.Sorted(maps.Keys(m)) {
			var value string
			if err := json.Unmarshal(m[name], &value); err != nil {
				return fmt.Errorf("extraArgs %s: the value must be a string (quote it in YAML), not %.20s", name, m[name])
			}
			out = append(out, Arg{Name: name, Value: value})
		}
		*a = out
		return nil
	case len(data) > 0 && data[0] == '[':
		var list []Arg
		if err := json.Unmarshal(data, &list); err != nil {
			return fmt.Errorf("extraArgs list: every item must be {name: string, value: string}: %w", err)
		}
		for i, arg := range list {
			if arg.Name == "" {
				return fmt.Errorf("extraArgs list item %d: name is empty", i)
			}
		}
		*a = list
		return nil
	default:
		return fmt.Errorf("extraArgs must be a map of flag: value or a list of {name, value}, not %.20s", data)
	}
}

// Get returns the value of the last argument called name.
func (a Args) Get(name string) (string, bool) {
	for i := len(a) - 1; i >= 0; i-- {
		if a[i].Name == name {
			return a[i].Value, true
		}
	}
	return "", false
}
