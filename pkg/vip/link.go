package vip

// Link flags (linux/if.h) and operational states (RFC 2863, IF_OPER_*),
// spelled out here so the decision below is pure and builds on any OS.
const (
	iffUp      = 0x1
	iffRunning = 0x40
	iffLowerUp = 0x10000

	operUnknown        = 0
	operNotPresent     = 1
	operDown           = 2
	operLowerLayerDown = 3
	operTesting        = 4
	operDormant        = 5
	operUp             = 6
)

// usable reports whether a link with these raw flags and operational state
// can carry the VIP's traffic: administratively up (IFF_UP), with carrier
// (IFF_LOWER_UP), and operationally up. Drivers that never report an
// operational state leave it "unknown" (dummy, some tunnels); for those
// carrier decides.
func usable(flags uint32, oper uint8) bool {
	if flags&iffUp == 0 || flags&iffLowerUp == 0 {
		return false
	}
	return oper == operUp || oper == operUnknown
}
