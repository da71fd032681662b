// Package discover reads the cluster's list of live kube-apiservers, the
// `default/kubernetes` Endpoints that the apiservers' lease reconciler
// keeps current, with the node's kubelet identity, and feeds it to a
// membership.Tracker.
//
// The Node authorizer lets a node identity `get` Endpoints but neither
// list nor watch them, and grants nothing on EndpointSlices
// (bootstrappolicy.NodeRules; checked on the real kubeadm harness), so
// the list is polled with a GET every Interval: one small request per
// node every few seconds.
//
// Nothing waits for it: the VIP and the proxy run from the static and
// persisted members. It waits for the kubeconfig (kubelet.conf exists
// only once `kubeadm init` or the kubelet's TLS bootstrap wrote it) and
// asks the local apiserver first, then every other known member, then
// the kubeconfig's own server.
package discover

//lint:file-ignore SA1019 the Node authorizer lets a node identity get Endpoints, and grants nothing on EndpointSlices (see above)

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"

	"github.com/hapod/hapod/pkg/membership"
)

// DefaultInterval is the time between two reads of the list: a member
// joining is used within about this long.
const DefaultInterval = 3 * time.Second

// readTimeout bounds one GET to one apiserver.
const readTimeout = 3 * time.Second

// serverName is the name the apiservers' certificates are checked for:
// kubeadm puts "kubernetes" in every apiserver's serving certificate,
// so any member can be reached by its IP address.
const serverName = "kubernetes"

// Sink is what receives the reads (*membership.Tracker).
type Sink interface {
	Observe(members []netip.AddrPort)
	Unreachable(err error)
	Members() []netip.AddrPort
}

// Config configures a Source.
type Config struct {
	// Kubeconfig is the node's kubelet.conf.
	Kubeconfig string
	// Interval between reads (default DefaultInterval).
	Interval time.Duration
	// UserAgent identifies hapod to the apiservers.
	UserAgent string
	// Local reports whether an address is this host's: the members on
	// it are asked first (default: the host's interface addresses).
	Local func(netip.Addr) bool
	// VIP is left out of what the API lists: an apiserver advertising
	// the VIP (a misconfigured node) would have the proxy dial itself.
	VIP netip.Addr
	// Clock paces the reads (default: real).
	Clock clock.Clock
	// Logger (default: discard).
	Logger *slog.Logger
}

// Source polls the list of live apiservers into a Sink.
type Source struct {
	cfg  Config
	sink Sink

	// newClient makes the Endpoints client for a host (s.restClient;
	// tests give their own).
	newClient func(host string) endpointsGetter

	// Run's own: no lock.
	creds   *Credentials
	clients map[string]endpointsGetter // by host
	denied  bool                       // logged the denial already
}

// New returns a Source feeding sink.
func New(cfg Config, sink Sink) *Source {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Local == nil {
		cfg.Local = hostAddr
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{cfg: cfg, sink: sink, clients: make(map[string]endpointsGetter)}
	s.newClient = s.restClient
	return s
}

// Run reads the list every Interval until ctx ends.
func (s *Source) Run(ctx context.Context) {
	waiting := false
	for {
		if err := s.load(); err != nil {
			// Before `kubeadm init` or the TLS bootstrap: nothing to
			// read with, and nothing wrong.
			if !waiting {
				s.cfg.Logger.Info("membership discovery waits for the kubelet's kubeconfig", "kubeconfig", s.cfg.Kubeconfig, "err", err)
				waiting = true
			}
		} else {
			if waiting {
				s.cfg.Logger.Info("membership discovery starts", "kubeconfig", s.cfg.Kubeconfig)
				waiting = false
			}
			s.readOnce(ctx)
		}
		t := s.cfg.Clock.NewTimer(s.cfg.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// load reads the kubeconfig before every read: the kubelet rewrites it
// (kubeadm's kubelet-finalize moves an init node from embedded
// credentials to the rotated certificate file), and a hapod started
// before that must not keep the first ones for a year. When they change,
// the clients made with the old ones go. A kubeconfig that cannot be read
// now keeps the last good one, if any.
func (s *Source) load() error {
	c, err := LoadKubeconfig(s.cfg.Kubeconfig)
	if err != nil {
		if s.creds != nil {
			return nil
		}
		return err
	}
	if s.creds == nil || !c.Equal(*s.creds) {
		s.creds = &c
		clear(s.clients)
	}
	return nil
}

// readOnce asks the candidates in order until one answers, and tells the
// sink what it said, or that none did.
func (s *Source) readOnce(ctx context.Context) {
	var errs []error
	hosts := Candidates(s.sink.Members(), s.cfg.Local, s.creds.Server)
	// Clients of members that left go with them: over years of rollouts
	// every machine ever seen would pile up.
	for h := range s.clients {
		if !slices.Contains(hosts, h) {
			delete(s.clients, h)
		}
	}
	for _, host := range hosts {
		ep, err := s.client(host).Get(ctx, "kubernetes")
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			s.denied = false
			members := Members(ep)
			if i := slices.IndexFunc(members, func(m netip.AddrPort) bool { return m.Addr() == s.cfg.VIP }); i >= 0 {
				s.cfg.Logger.Warn("an apiserver advertises the VIP as its address; left out of the backends and peers", "member", members[i], "server", host)
				members = slices.Delete(members, i, i+1)
			}
			s.sink.Observe(members)
			return
		}
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			// The same identity everywhere: asking others is no use.
			if !s.denied {
				s.cfg.Logger.Error("membership discovery: the node identity may not read the default/kubernetes Endpoints; backends and peers stay as they are",
					"kubeconfig", s.cfg.Kubeconfig, "server", host, "err", err)
				s.denied = true
			}
			s.sink.Unreachable(fmt.Errorf("%s: %w: %w", host, membership.ErrDenied, err))
			return
		}
		errs = append(errs, fmt.Errorf("%s: %w", host, err))
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no apiserver known"))
	}
	s.sink.Unreachable(errors.Join(errs...))
}

// client returns the Endpoints client for host, made once it can be:
// one that could not be made (a joining node's kubelet writes kubelet.conf
// before its client certificate exists) is made again on the next read.
func (s *Source) client(host string) endpointsGetter {
	c := s.clients[host]
	if c == nil {
		c = s.newClient(host)
		if _, failed := c.(failing); !failed {
			s.clients[host] = c
		}
	}
	return c
}

// restClient makes the Endpoints client for host.
func (s *Source) restClient(host string) endpointsGetter {
	cfg := &rest.Config{
		Host:      host,
		UserAgent: s.cfg.UserAgent,
		Timeout:   readTimeout,
		TLSClientConfig: rest.TLSClientConfig{
			ServerName: serverName,
			CAData:     s.creds.CAData,
			CertFile:   s.creds.CertFile, KeyFile: s.creds.KeyFile,
			CertData: s.creds.CertData, KeyData: s.creds.KeyData,
		},
		// Endpoints are deprecated in favour of EndpointSlices, which the
		// Node authorizer does not let a node read: the warning each
		// GET carries says nothing to act on.
		WarningHandler: rest.NoWarnings{},
		QPS:            -1, // the poll paces itself
	}
	c, err := newEndpointsClient(cfg)
	if err != nil {
		// A malformed host, bad TLS material, or a certificate file
		// not there yet; the GET through this client reports it.
		return failing{err}
	}
	return c
}

// endpointsGetter is the one call made: a GET of one Endpoints of the
// default namespace.
type endpointsGetter interface {
	Get(ctx context.Context, name string) (*corev1.Endpoints, error)
}

// restGetter GETs Endpoints with a REST client that knows core/v1 only.
// client-go's typed CoreV1 client would do the same, but it decodes
// through client-go's scheme of every API group: measured, it grows the
// static binary from 24.5 MB to 42.8 MB; this way it is 26.2 MB.
type restGetter struct {
	rc interface{ Get() *rest.Request }
}

// coreV1 is a codec for core/v1 and the meta types only.
var coreV1 = func() serializer.CodecFactory {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		panic(err) // static registration: cannot fail
	}
	metav1.AddToGroupVersion(s, corev1.SchemeGroupVersion)
	return serializer.NewCodecFactory(s)
}()

func newEndpointsClient(cfg *rest.Config) (restGetter, error) {
	cfg.APIPath = "/api"
	cfg.GroupVersion = &corev1.SchemeGroupVersion
	cfg.NegotiatedSerializer = coreV1.WithoutConversion()
	rc, err := rest.RESTClientFor(cfg)
	return restGetter{rc}, err
}

func (g restGetter) Get(ctx context.Context, name string) (*corev1.Endpoints, error) {
	ep := &corev1.Endpoints{}
	err := g.rc.Get().Namespace(metav1.NamespaceDefault).Resource("endpoints").Name(name).Do(ctx).Into(ep)
	return ep, err
}

// failing is a client that could not be made.
type failing struct{ err error }

func (f failing) Get(context.Context, string) (*corev1.Endpoints, error) { return nil, f.err }

// Candidates returns the API addresses to try, in order: the members on
// this host, then the others, then the kubeconfig's server (often the
// VIP) when it is not one of them. Members are asked directly rather
// than through the VIP, so discovery works on a node whose proxy has
// nothing healthy.
func Candidates(members []netip.AddrPort, local func(netip.Addr) bool, server string) []string {
	var first, rest []string
	for _, m := range members {
		h := "https://" + m.String()
		if local(m.Addr()) {
			first = append(first, h)
		} else {
			rest = append(rest, h)
		}
	}
	out := append(first, rest...)
	if server != "" && !slices.Contains(out, strings.TrimSuffix(server, "/")) {
		out = append(out, server)
	}
	return out
}

// Members returns the addresses of the live apiservers in ep: every
// ready address with the "https" port (the only port of the kubernetes
// Endpoints), or the only port when it has no name.
func Members(ep *corev1.Endpoints) []netip.AddrPort {
	var out []netip.AddrPort
	for _, ss := range ep.Subsets {
		var port int32
		for _, p := range ss.Ports {
			if p.Name == "https" || (p.Name == "" && len(ss.Ports) == 1) {
				port = p.Port
			}
		}
		if port <= 0 || port > 65535 {
			continue
		}
		for _, a := range ss.Addresses {
			ip, err := netip.ParseAddr(a.IP)
			if err != nil {
				continue
			}
			out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
		}
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return slices.Compact(out)
}

// hostAddr reports whether a is assigned to an interface of this host.
func hostAddr(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range addrs {
		if n, ok := ia.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a.Unmap() {
				return true
			}
		}
	}
	return false
}
