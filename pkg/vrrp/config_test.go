package vrrp

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// Every field of Config reaches the conn or the machine, and the values
// the two share are the same.
func TestConfigFeedsConnAndMachine(t *testing.T) {
	c := Config{
		Interface: "eth0",
		Primary:   netip.MustParseAddr("198.18.0.11"),
		Peers:     []netip.Addr{netip.MustParseAddr("198.18.0.12")},
		VRID:      51,
		Version:   Version2,
		Priority:  120,
		Interval:  2 * time.Second,
		Preempt:   true,
		Password:  "s3cret",
		Addrs:     []netip.Addr{netip.MustParseAddr("198.18.0.100")},
	}
	wantConn := ConnConfig{Interface: "eth0", Source: c.Primary, Peers: c.Peers, VRID: 51, Version: Version2,
		Password: "s3cret", Interval: 2 * time.Second, Addrs: c.Addrs}
	if got := c.ConnConfig(); !reflect.DeepEqual(got, wantConn) {
		t.Errorf("ConnConfig() = %+v, want %+v", got, wantConn)
	}
	wantMachine := MachineConfig{VRID: 51, Priority: 120, Interval: 2 * time.Second, Version: Version2, Preempt: true,
		Primary: c.Primary, TieBreak: TieBreakDelay(c.Primary, 2*time.Second)}
	if got := c.MachineConfig(); got != wantMachine {
		t.Errorf("MachineConfig() = %+v, want %+v", got, wantMachine)
	}
	if wantMachine.TieBreak == 0 {
		t.Error("the test address should have a tie-break delay")
	}
	if err := c.MachineConfig().Validate(); err != nil {
		t.Error(err)
	}
	cc := c.ConnConfig()
	if err := cc.validate(); err != nil {
		t.Error(err)
	}
}
