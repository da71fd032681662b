package hostnet

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// Lines as the kernel writes them on a little-endian machine: listening
// sockets (state 0A) on 198.18.0.10:8443, 127.0.0.1:10270 and
// [2001:db8::10]:8443, and an established connection that must be skipped.
const procNetTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0A0012C6:20FB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41170 1 0000000000000000 100 0 0 10 0
   1: 0100007F:281E 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41171 1 0000000000000000 100 0 0 10 0
   2: 0B0012C6:C350 0A0012C6:20FB 01 00000000:00000000 00:00000000 00000000     0        0 41172 1 0000000000000000 20 4 30 10 -1
`

const procNetTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: B80D0120000000000000000010000000:20FB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41180 1 0000000000000000 100 0 0 10 0
`

func TestParseProcNetTCP(t *testing.T) {
	if !littleEndian() {
		t.Skip("the listings are from a little-endian machine")
	}
	got, err := ParseProcNetTCP(strings.NewReader(procNetTCP + procNetTCP6))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{
		netip.MustParseAddrPort("198.18.0.10:8443"),
		netip.MustParseAddrPort("127.0.0.1:10270"),
		netip.MustParseAddrPort("[2001:db8::10]:8443"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("listening %v, want %v", got, want)
	}
	if _, err := ParseProcNetTCP(strings.NewReader("   0: 0A0012:20FB 00000000:0000 0A\n")); err == nil {
		t.Error("a 3-byte address was accepted")
	}
}

func littleEndian() bool { return binary.NativeEndian.Uint16([]byte{1, 0}) == 1 }
