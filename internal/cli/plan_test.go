package cli

import (
	"context"
	"net/netip"
	"os"
	"reflect"
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
	cfg.VIP.Prefix = netip.MustParsePrefix("198.18.0.10/24")
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
	if p.Stale == nil || *p.Stale != stale {
		t.Errorf("stale = %v, want %v", p.Stale, stale)
	}
	if want := netip.MustParseAddr("198.18.0.11"); p.Source != want {
		t.Errorf("source = %v, want %v (the node's own address on eth0)", p.Source, want)
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
