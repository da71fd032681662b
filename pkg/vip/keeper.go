package vip

import (
	"context"
	"net/netip"

	"github.com/hapod/hapod/pkg/vrrp"
)

// KeeperConfig configures a Keeper.
type KeeperConfig struct {
	// Config is the VIP and its interface, as for New.
	Config
	// Source is the node's own address on the interface, the source of
	// its VRRP adverts (and of its IPv6 probes). Required.
	Source netip.Addr
	// OnRebind is called, with the new index, when the interface was
	// created again: open the VRRP socket again there. An error is
	// retried on the next kernel change or after a second.
	OnRebind func(index int) error
}

// group is the one-VIP GroupConfig of cfg.
func (cfg KeeperConfig) group() GroupConfig {
	return GroupConfig{
		Interface:   cfg.Interface,
		Prefixes:    []netip.Prefix{cfg.Prefix},
		Source:      cfg.Source,
		OnRebind:    cfg.OnRebind,
		Label:       cfg.Label,
		BurstCount:  cfg.BurstCount,
		RepeatAfter: cfg.RepeatAfter,
		Clock:       cfg.Clock,
		Logger:      cfg.Logger,
	}
}

// Keeper is a Group of one VIP, with that VIP's Status and RemoveStale's
// answer as a bool: the API of a router that holds one address.
type Keeper struct{ g *Group }

var _ vrrp.VIP = (*Keeper)(nil)

// NewKeeper opens a Group of the one VIP in cfg (see NewGroup).
func NewKeeper(cfg KeeperConfig) (*Keeper, error) {
	g, err := NewGroup(cfg.group())
	if err != nil {
		return nil, err
	}
	return &Keeper{g: g}, nil
}

// Acquire puts the VIP on the interface and announces it (Group.Acquire).
func (k *Keeper) Acquire() error { return k.g.Acquire() }

// Release takes the VIP off the interface (Group.Release).
func (k *Keeper) Release() error { return k.g.Release() }

// RemoveStale removes a VIP left on the interface by a SIGKILLed
// predecessor and reports whether there was one (Group.RemoveStale).
func (k *Keeper) RemoveStale() (bool, error) {
	removed, err := k.g.RemoveStale()
	return len(removed) > 0, err
}

// Status returns what the kernel says about the VIP and what the Keeper
// did about it.
func (k *Keeper) Status() Status { return k.g.Status().VIPs[0] }

// Close closes the sockets; the address stays as it is.
func (k *Keeper) Close() error { return k.g.Close() }

// Run follows the kernel until ctx ends (Group.Run).
func (k *Keeper) Run(ctx context.Context, onLink func(up bool)) error { return k.g.Run(ctx, onLink) }
