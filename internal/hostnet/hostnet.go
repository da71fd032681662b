// Package hostnet answers the questions `hapod init` and `hapod reset` ask
// about the host's network: which interface leads to the VIP, which
// addresses the host already has, whether a process listens on one; and it
// removes an address left behind.
package hostnet

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// Addr is an address configured on one of the host's interfaces.
type Addr struct {
	Prefix    netip.Prefix
	Interface string
	// Secondary: an IPv4 address added where another address of the
	// interface already covers its subnet (IFA_F_SECONDARY), as a VIP is
	// next to the node's own address.
	Secondary bool
	// Deprecated marks an IPv6 address the kernel never picks as a source
	// (preferred lifetime 0, IFA_F_DEPRECATED), as hapod adds its VIP.
	// (Not a "Deprecated:" doc paragraph: the field itself is current.)
	Deprecated bool
}

// tcpListen is the state of a listening socket in /proc/net/tcp{,6}.
const tcpListen = "0A"

// ParseProcNetTCP returns the local addresses of the listening sockets in
// a /proc/net/tcp or /proc/net/tcp6 listing. The kernel prints an address
// as 32-bit words in host byte order, each as 8 hex digits.
func ParseProcNetTCP(r io.Reader) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// sl local_address rem_address st ...
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[3] != tcpListen {
			continue
		}
		hexAddr, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		raw, err := hex.DecodeString(hexAddr)
		if err != nil || (len(raw) != 4 && len(raw) != 16) {
			return nil, fmt.Errorf("bad local address %q", f[1])
		}
		for i := 0; i < len(raw); i += 4 { // each word back to network order
			binary.BigEndian.PutUint32(raw[i:], binary.NativeEndian.Uint32(raw[i:]))
		}
		port, err := hex.DecodeString(hexPort)
		if err != nil || len(port) != 2 {
			return nil, fmt.Errorf("bad local port %q", f[1])
		}
		a, _ := netip.AddrFromSlice(raw)
		out = append(out, netip.AddrPortFrom(a.Unmap(), binary.BigEndian.Uint16(port)))
	}
	return out, sc.Err()
}
