package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/redirect"
)

func TestRouteInterface(t *testing.T) {
	routes := map[string]string{"198.18.0.10": "eth0", "198.18.0.20": "eth0", "2001:db8::10": "eth0", "2001:db8:1::10": "eth1"}
	route := func(a netip.Addr) (string, error) {
		if ifname, ok := routes[a.String()]; ok {
			return ifname, nil
		}
		return "", errors.New("no route")
	}
	vips := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			a := netip.MustParseAddr(s)
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
		return out
	}
	if got, err := routeInterface(vips("198.18.0.10", "2001:db8::10", "198.18.0.20"), route); err != nil || got != "eth0" {
		t.Errorf("one interface: %q, %v", got, err)
	}
	for _, tc := range []struct {
		vips []netip.Prefix
		want string
	}{
		{vips("198.18.0.10", "2001:db8:1::10"), "the VIPs are routed to different interfaces: 198.18.0.10/32 to eth0, 2001:db8:1::10/128 to eth1; hapod holds every VIP on one interface: give --interface"},
		{vips("198.18.0.10", "198.18.9.9"), "--interface not given and not detected for the VIP 198.18.9.9/32: no route"},
	} {
		if _, err := routeInterface(tc.vips, route); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.vips, err, tc.want)
		}
	}
}

// One router failing stops the others (they hand their VIPs over) and
// the run ends with its error, naming the family.
func TestRunSpeakersStopsAllOnOneFailure(t *testing.T) {
	stop := make(chan struct{})
	routers := []*router{{}, {}}
	routers[0].spec.Family, routers[1].spec.Family = "ipv4", "ipv6"
	errc := runSpeakers(routers, func(r *router) error {
		if r.spec.Family == "ipv6" {
			return errors.New("receive: boom")
		}
		<-stop // the IPv4 speaker runs until stopped
		return nil
	}, func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
	})
	select {
	case err := <-errc:
		if err == nil || err.Error() != "ipv6 router: receive: boom" {
			t.Fatalf("run ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the IPv4 speaker was not stopped")
	}
}

// The redirect's table is named after the primary VIP, whatever the order
// of --vip: `hapod reset` and init/join find a killed hapod's table by
// that name.
func TestRedirectSpecNamesTheTableAfterThePrimaryVIP(t *testing.T) {
	cfg := config.Default()
	for _, v := range []string{"2001:db8::10/64", "198.18.0.20/24", "198.18.0.10/24"} {
		cfg.VIP.Prefixes = append(cfg.VIP.Prefixes, netip.MustParsePrefix(v))
	}
	cfg.Proxy.Backends = []netip.AddrPort{netip.MustParseAddrPort("198.18.0.11:6443")}
	cfg.Complete()
	spec := redirectSpec(cfg)
	rs, err := spec.Ruleset()
	if err != nil {
		t.Fatal(err)
	}
	if want := redirect.TableName(cfg.VIP.Primary().Addr()); rs.Table != want {
		t.Errorf("table %s, want %s (the primary VIP's)", rs.Table, want)
	}
	if got := fmt.Sprint(spec.VIPs); got != "[198.18.0.20 2001:db8::10 198.18.0.10]" {
		t.Errorf("VIPs %s: want every VIP once, the primary first", got)
	}
}
