package cli

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/hapod/hapod/internal/hostnet"
	"github.com/hapod/hapod/internal/inputfile"
	"github.com/hapod/hapod/internal/instance"
	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/manifest"
)

// vipUse is what the VIP, found on one of this host's interfaces, is to
// `hapod init`/`join`.
type vipUse int

const (
	_ vipUse = iota // the zero value is no decision
	// vipHeld: a running hapod holds it, this node is the VRRP holder.
	// Keep it; its interface is the VIP's interface.
	vipHeld
	// vipStale: left behind by a hapod that died without releasing it
	// (SIGKILL, as `kubeadm reset` stops pods). Remove it, and say so.
	vipStale
	// vipNodeAddress: one of the node's own addresses. Refuse it.
	vipNodeAddress
)

// localVIP is what init/join observe about a VIP found on an interface.
type localVIP struct {
	// Addr is the VIP as configured on the interface.
	Addr hostnet.Addr
	// Running: a hapod holds the VIP's instance lock.
	Running bool
	// Listening: a process listens on the VIP (the proxy of a hapod
	// built before the instance lock listens there on every node).
	Listening bool
	// InManifest: the manifest directory's hapod.yaml has this VIP.
	InManifest bool
}

// classify decides what the VIP is. A hapod (with the lock or before it)
// serving the VIP makes it held. Otherwise it is hapod's own leftover when
// hapod's manifest names it or when it was added the way hapod adds a VIP
// (next to the node's address: IPv4 secondary; IPv6 deprecated, so the
// kernel never uses it as a source); any other address is the node's own,
// which no hapod command ever removes.
func (v localVIP) classify() vipUse {
	switch {
	case v.Running || v.Listening:
		return vipHeld
	case v.InManifest || v.Addr.Secondary || v.Addr.Deprecated:
		return vipStale
	default:
		return vipNodeAddress
	}
}

// observeLocalVIP gathers what classify needs about the VIP found at a,
// one of the VIPs of primary (config.VIP.Primary): a hapod's instance
// lock is named after its primary VIP, so the hapod holding a is the one
// running for primary.
func observeLocalVIP(host Host, a hostnet.Addr, primary netip.Addr, inManifest bool) (localVIP, error) {
	v := localVIP{Addr: a, InManifest: inManifest}
	vip := a.Prefix.Addr()
	_, err := host.Instance(primary)
	switch {
	case err == nil:
		v.Running = true
	case !errors.Is(err, instance.ErrNotRunning):
		return v, fmt.Errorf("is a hapod running for VIP %s: %w", primary, err)
	}
	if v.Listening, err = host.Listening(vip); err != nil {
		return v, fmt.Errorf("does a process listen on VIP %s: %w", vip, err)
	}
	return v, nil
}

// staleNote says that the stale VIP at a was (or would be) removed.
func staleNote(a hostnet.Addr) string {
	return fmt.Sprintf("removed the stale VIP %s from %s: no hapod holds it (a hapod killed without releasing it left it, as kubeadm reset does)", a.Prefix, a.Interface)
}

// manifestVIPs reads the VIPs (--vip) of the hapod manifest at path, read
// back through manifest.Parse; ok is false when the file does not exist.
func manifestVIPs(ctx context.Context, path string) (vips config.VIP, ok bool, err error) {
	data, err := inputfile.Read(ctx, path, 0)
	if errors.Is(err, os.ErrNotExist) {
		return config.VIP{}, false, nil
	}
	if err != nil {
		return config.VIP{}, true, err
	}
	cfg, _, err := manifest.Parse(data)
	if err != nil {
		return config.VIP{}, true, fmt.Errorf("%s: %w", path, err)
	}
	if !cfg.VIP.Primary().IsValid() {
		return config.VIP{}, true, fmt.Errorf("%s: %w: no --vip in the pod's args", path, manifest.ErrNotHapod)
	}
	return cfg.VIP, true, nil
}

// manifestPath is hapod.yaml in the directory of --manifest-dir; "" for a
// command without that flag.
func manifestPath(dir string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, manifest.FileName)
}
