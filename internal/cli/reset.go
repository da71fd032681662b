package cli

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/hapod/hapod/internal/hostnet"
	"github.com/hapod/hapod/internal/instance"
	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/redirect"
)

const flagResetTimeout = "timeout"

func resetCommand(host Host) *cli.Command {
	return &cli.Command{
		Name:  "reset",
		Usage: "take hapod off this node gracefully, before 'kubeadm reset'",
		Description: `'kubeadm reset' stops pods without a grace period: hapod is killed and the VIP
stays on this node, answering ARP next to the new holder. Run 'hapod reset'
first. It removes <manifest-dir>/hapod.yaml (so kubelet does not start hapod
again), asks the running hapod to hand the VIP over as on SIGTERM (priority 0,
serve until a successor has it, release it) and waits until it has exited. With
no hapod running, it removes the VIPs that a killed one left on an interface.
The VIPs are the manifest's, or --vip. Running it again says there is nothing
to do.

Example:
   hapod reset
   kubeadm reset`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: flagManifestDir, Aliases: []string{"manifests-dir"}, Value: DefaultManifestDir, TakesFile: true,
				Usage: "directory kubelet watches for static pods"},
			&cli.StringSliceFlag{Name: "vip", Usage: "the VIPs, repeated as for init, when no manifest names them any more (default: the manifest's, and any hapod running on this host)"},
			&cli.DurationFlag{Name: flagResetTimeout, Value: 10 * time.Second,
				Usage: "give up waiting for the running hapod to hand over and exit after this long"},
		},
		Action: func(c *cli.Context) error { return reset(c, host) },
	}
}

// resetState is what `hapod reset` observes on the host.
type resetState struct {
	// Manifest is hapod.yaml's path when it exists, else "".
	Manifest string
	// Instances are the hapods it looks after, each with what it found.
	Instances []resetInstance
	// RedirectErr is why nftables could not be asked about a redirect
	// table (no CAP_NET_ADMIN, say, in a container): reset goes on and
	// says so; a table left without its VIP matches nothing, and the
	// next hapod replaces it.
	RedirectErr error
}

// resetInstance is one hapod as `hapod reset` found it: the one of a set
// of VIPs, running or not.
type resetInstance struct {
	// VIP is its primary VIP (config.VIP.Primary), which names its
	// instance lock and its redirect table.
	VIP netip.Addr
	// VIPs are all its VIPs, the primary one included.
	VIPs []netip.Addr
	// Running: a hapod holds the instance lock; PID is its process (0: in
	// another PID namespace).
	Running bool
	PID     int
	// Listening: a process listens on one of the VIPs without holding
	// the lock: a hapod built before `hapod reset` existed.
	Listening bool
	// On are its VIPs found on an interface.
	On []hostnet.Addr
	// Redirect: hapod's nftables table for the VIP is there.
	Redirect bool
}

// vipSet is the VIPs of one hapod: its primary VIP and all of them.
type vipSet struct {
	Primary netip.Addr
	All     []netip.Addr
}

// addVIPSet adds v to sets, merged into the set of the same primary VIP.
func addVIPSet(sets []vipSet, v vipSet) []vipSet {
	for i := range sets {
		if sets[i].Primary == v.Primary {
			for _, a := range v.All {
				if !slices.Contains(sets[i].All, a) {
					sets[i].All = append(sets[i].All, a)
				}
			}
			return sets
		}
	}
	return append(sets, vipSet{Primary: v.Primary, All: slices.Clone(v.All)})
}

// setOf is the vipSet of a Config's VIPs.
func setOf(v config.VIP) vipSet {
	return vipSet{Primary: v.Primary().Addr(), All: v.Addrs()}
}

// resetAction is one step of `hapod reset`.
type resetAction interface{ isResetAction() }

// removeManifest deletes hapod.yaml first, so that kubelet does not start
// hapod again (and, when kubelet runs, stops it gracefully itself).
type removeManifest struct{ Path string }

// requestHandover asks the running hapod to hand over and exit.
type requestHandover struct {
	VIP netip.Addr
	PID int
}

// awaitExit waits for a hapod without the instance lock to stop: it
// cannot be asked, but kubelet stops it once its manifest is gone.
type awaitExit struct{ VIP netip.Addr }

// removeStaleVIP removes a VIP no hapod serves any more.
type removeStaleVIP struct{ Addr hostnet.Addr }

// removeStaleRedirect removes the nftables table of a VIP no hapod
// serves any more.
type removeStaleRedirect struct{ VIP netip.Addr }

func (removeManifest) isResetAction()      {}
func (requestHandover) isResetAction()     {}
func (awaitExit) isResetAction()           {}
func (removeStaleVIP) isResetAction()      {}
func (removeStaleRedirect) isResetAction() {}

// planReset decides the next steps from what is observed. A running hapod
// keeps its VIP until it hands it over; a VIP nobody serves is removed.
// An empty plan means done; reset observes again after each plan, so
// that a VIP still there after its hapod exited is removed next.
func planReset(s resetState) []resetAction {
	var acts []resetAction
	if s.Manifest != "" {
		acts = append(acts, removeManifest{Path: s.Manifest})
	}
	for _, v := range s.Instances {
		switch {
		case v.Running:
			acts = append(acts, requestHandover{VIP: v.VIP, PID: v.PID})
		case v.Listening:
			acts = append(acts, awaitExit{VIP: v.VIP})
		default:
			for _, a := range v.On {
				acts = append(acts, removeStaleVIP{Addr: a})
			}
		}
		if v.Redirect && !v.Running && !v.Listening {
			acts = append(acts, removeStaleRedirect{VIP: v.VIP})
		}
	}
	return acts
}

// maxResetRounds bounds observe-plan-act: the manifest and the handover,
// then a VIP left behind, then nothing; more when kubelet restarted hapod
// once as it exited, before it saw the manifest go.
const maxResetRounds = 6

func reset(c *cli.Context, host Host) error {
	if err := noArgs(c); err != nil {
		return err
	}
	path := manifestPath(c.String(flagManifestDir))
	// The VIPs seen so far stay watched after the manifest that named
	// them is gone and their hapod has exited.
	var known []vipSet
	explicit := c.IsSet("vip")
	if explicit {
		var given config.VIP
		for _, s := range c.StringSlice("vip") {
			a, err := parseVIPFlag(s)
			if err != nil {
				return err
			}
			given.Prefixes = append(given.Prefixes, netip.PrefixFrom(a, a.BitLen()))
		}
		known = append(known, setOf(given))
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration(flagResetTimeout))
	defer cancel()
	did, noted := false, false
	var s resetState
	for range maxResetRounds {
		var err error
		s, err = observeReset(c.Context, host, path, known, explicit)
		if err != nil {
			return err
		}
		for _, v := range s.Instances {
			known = addVIPSet(known, vipSet{Primary: v.VIP, All: v.VIPs})
		}
		if s.RedirectErr != nil && !noted {
			fmt.Fprintf(c.App.ErrWriter, "hapod: could not check for a redirect table left behind: %v\n", s.RedirectErr)
			noted = true
		}
		acts := planReset(s)
		if len(acts) == 0 {
			if !did {
				fmt.Fprintf(c.App.Writer, "hapod: nothing to do: no %s, no hapod running, no VIP left on an interface\n", path)
			}
			return nil
		}
		did = true
		for _, a := range acts {
			if err := doReset(ctx, c, host, a, c.Duration(flagResetTimeout)); err != nil {
				return err
			}
		}
	}
	return stuckError(s)
}

// stuckError says what is left after maxResetRounds rounds.
func stuckError(s resetState) error {
	for _, v := range s.Instances {
		if v.Running || v.Listening {
			return fmt.Errorf("a hapod for VIP %s was started again %d times as it stopped: something starts it (hapod.yaml, or a copy, in a directory kubelet watches?)", v.VIP, maxResetRounds)
		}
		if len(v.On) > 0 {
			return fmt.Errorf("VIP %s is still on %s after %d attempts to remove it", v.On[0].Prefix.Addr(), v.On[0].Interface, maxResetRounds)
		}
	}
	return fmt.Errorf("%s came back %d times: something writes it again", s.Manifest, maxResetRounds)
}

// parseVIPFlag reads --vip as an address, with or without a prefix length.
func parseVIPFlag(s string) (netip.Addr, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--vip %q: not an IP address", s)
	}
	return a.Unmap(), nil
}

// observeReset finds the manifest, the hapods' VIPs (known, and unless
// explicit (--vip) the manifest's and every running instance's) and, for
// each hapod, whether it runs and where its VIPs are.
func observeReset(ctx context.Context, host Host, path string, known []vipSet, explicit bool) (resetState, error) {
	var s resetState
	sets := slices.Clone(known)
	v, ok, err := manifestVIPs(ctx, path)
	if ok {
		s.Manifest = path
	}
	if !explicit {
		if err != nil {
			return s, fmt.Errorf("%w (pass --vip)", err)
		}
		if ok {
			sets = addVIPSet(sets, setOf(v))
		}
		running, err := host.Instances()
		if err != nil {
			return s, fmt.Errorf("list running hapod instances: %w", err)
		}
		for _, p := range running {
			sets = addVIPSet(sets, vipSet{Primary: p, All: []netip.Addr{p}})
		}
	}
	addrs, err := host.Addrs()
	if err != nil {
		return s, err
	}
	for _, set := range sets {
		v := resetInstance{VIP: set.Primary, VIPs: set.All}
		pid, err := host.Instance(set.Primary)
		switch {
		case err == nil:
			v.Running, v.PID = true, pid
		case !errors.Is(err, instance.ErrNotRunning):
			return s, fmt.Errorf("is a hapod running for VIP %s: %w", set.Primary, err)
		}
		for _, vip := range set.All {
			if !v.Running && !v.Listening {
				if v.Listening, err = host.Listening(vip); err != nil {
					return s, fmt.Errorf("does a process listen on VIP %s: %w", vip, err)
				}
			}
			if a, ok := findAddr(addrs, vip); ok {
				v.On = append(v.On, a)
			}
		}
		if v.Redirect, err = host.Redirect(set.Primary); err != nil && s.RedirectErr == nil {
			s.RedirectErr = fmt.Errorf("is there a redirect table for VIP %s: %w", set.Primary, err)
		}
		s.Instances = append(s.Instances, v)
	}
	return s, nil
}

// doReset performs one step and says what it did.
func doReset(ctx context.Context, c *cli.Context, host Host, a resetAction, timeout time.Duration) error {
	out := c.App.Writer
	switch a := a.(type) {
	case removeManifest:
		if err := os.Remove(a.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		fmt.Fprintf(out, "hapod: removed %s: kubelet will not start hapod again\n", a.Path)
	case requestHandover:
		start := time.Now()
		state, outcome, err := host.Handover(ctx, a.VIP)
		if errors.Is(err, instance.ErrNotRunning) {
			// Exited meanwhile; a VIP it left is seen in the next round.
			fmt.Fprintf(out, "hapod: %s for VIP %s had exited already (kubelet stops it once hapod.yaml is gone)\n", instance.Describe(a.PID), a.VIP)
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s for VIP %s did not hand over and exit within --%s %v", instance.Describe(a.PID), a.VIP, flagResetTimeout, timeout)
			}
			return fmt.Errorf("%s for VIP %s: %w", instance.Describe(a.PID), a.VIP, err)
		}
		if state != "" {
			state = " (" + state + ")"
		}
		fmt.Fprintf(out, "hapod: %s for VIP %s%s %s, and exited after %v\n",
			instance.Describe(a.PID), a.VIP, state, outcome, time.Since(start).Round(time.Millisecond))
	case awaitExit:
		fmt.Fprintf(out, "hapod: a hapod without the instance lock (an older version) serves VIP %s: waiting for kubelet to stop it\n", a.VIP)
		for {
			busy, err := host.Listening(a.VIP)
			if err != nil {
				return err
			}
			if !busy {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("the hapod serving VIP %s did not stop within --%s %v (is kubelet running? stop that hapod, then run 'hapod reset' again)", a.VIP, flagResetTimeout, timeout)
			case <-time.After(50 * time.Millisecond):
			}
		}
	case removeStaleVIP:
		if err := host.RemoveAddr(a.Addr); err != nil {
			return fmt.Errorf("remove the stale VIP: %w", err)
		}
		fmt.Fprintf(out, "hapod: removed the stale VIP %s from %s: no hapod was running to release it\n", a.Addr.Prefix, a.Addr.Interface)
	case removeStaleRedirect:
		if err := host.RemoveRedirect(a.VIP); err != nil {
			return fmt.Errorf("remove the stale redirect table: %w", err)
		}
		fmt.Fprintf(out, "hapod: removed the nftables table %s (the redirect of VIP:--port): no hapod was running to remove it\n", redirect.TableName(a.VIP))
	}
	return nil
}
