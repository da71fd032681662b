package vrrp

import "time"

// Advertisement interval bounds per version, from the wire format: v3
// carries centiseconds in 12 bits, v2 whole seconds in 8 bits. An interval
// is a whole number of its version's unit between its Min and Max.
const (
	IntervalUnitV3 = centisecond
	MinIntervalV3  = centisecond
	MaxIntervalV3  = maxV3Centis * centisecond
	IntervalUnitV2 = time.Second
	MinIntervalV2  = time.Second
	MaxIntervalV2  = maxV2Seconds * time.Second
)
