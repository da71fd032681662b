package vrrp

import (
	"net/netip"
	"time"
)

// Config is one virtual router as a program runs it: the single source
// of its Conn's and its Machine's configuration, so that the VRID, the
// version, the interval, the primary address, the virtual addresses and
// the password are written once.
type Config struct {
	// Interface is the link the adverts are sent and received on.
	Interface string
	// Primary is this node's address on Interface: the source of its
	// adverts and the priority tie-breaker (see ConnConfig.Source).
	Primary netip.Addr
	// Peers switches to unicast mode when non-empty (see ConnConfig.Peers).
	Peers []netip.Addr
	// VRID is the virtual router identifier, 1..255.
	VRID uint8
	// Version is the VRRP version spoken.
	Version Version
	// Priority is the base priority, 1..254.
	Priority uint8
	// Interval is the advertisement interval.
	Interval time.Duration
	// Preempt lets a stronger backup take over from a working active
	// router (see MachineConfig.Preempt).
	Preempt bool
	// Password turns on VRRPv2 simple authentication; empty means none.
	Password string
	// Addrs are the virtual addresses, carried in every advert.
	Addrs []netip.Addr
}

// ConnConfig is the configuration of the router's Conn. OnDrop is left
// for the caller.
func (c Config) ConnConfig() ConnConfig {
	return ConnConfig{
		Interface: c.Interface,
		Source:    c.Primary,
		Peers:     c.Peers,
		VRID:      c.VRID,
		Version:   c.Version,
		Password:  c.Password,
		Interval:  c.Interval,
		Addrs:     c.Addrs,
	}
}

// MachineConfig is the configuration of the router's Machine, with the
// TieBreakDelay of its primary address. HandoverTimeout is left to
// NewSpeaker's default.
func (c Config) MachineConfig() MachineConfig {
	return MachineConfig{
		VRID:     c.VRID,
		Priority: c.Priority,
		Interval: c.Interval,
		Version:  c.Version,
		Preempt:  c.Preempt,
		Primary:  c.Primary,
		TieBreak: TieBreakDelay(c.Primary, c.Interval),
	}
}
