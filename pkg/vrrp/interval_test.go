package vrrp

import (
	"net/netip"
	"testing"
	"time"
)

// TestIntervalBoundsMatchTheWire: every exported bound encodes and the
// next step beyond it does not, so config's validation (which uses these
// constants) accepts exactly what Marshal can put on the wire.
func TestIntervalBoundsMatchTheWire(t *testing.T) {
	src, dst := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("224.0.0.18")
	for _, tc := range []struct {
		version         Version
		unit            time.Duration
		lowest, highest time.Duration
	}{
		{Version3, IntervalUnitV3, MinIntervalV3, MaxIntervalV3},
		{Version2, IntervalUnitV2, MinIntervalV2, MaxIntervalV2},
	} {
		for interval, ok := range map[time.Duration]bool{
			tc.lowest: true, tc.highest: true,
			tc.lowest - tc.unit: false, tc.highest + tc.unit: false, tc.lowest + tc.unit/2: false,
		} {
			p := Packet{Version: tc.version, VRID: 1, Priority: 100, Interval: interval, Addrs: []netip.Addr{src}}
			if _, err := p.Marshal(src, dst); (err == nil) != ok {
				t.Errorf("v%d interval %v: Marshal error %v, want ok=%v", tc.version, interval, err, ok)
			}
		}
	}
}
