package dhcpvip

import (
	"bytes"
	"fmt"
	"net"
	"testing"
)

func TestVirtualMACProperties(t *testing.T) {
	seen := map[string]string{}
	for _, cluster := range []string{"", "kubernetes", "prod", "prod-2", "Prod"} {
		for vrid := 1; vrid <= 255; vrid++ {
			mac := VirtualMAC(uint8(vrid), cluster)
			if len(mac) != 6 {
				t.Fatalf("%q/%d: %d bytes", cluster, vrid, len(mac))
			}
			if mac[0] != 0x02 {
				t.Fatalf("%q/%d: %s is not 02:... (locally administered unicast)", cluster, vrid, mac)
			}
			if mac[5] != uint8(vrid) {
				t.Fatalf("%q/%d: %s does not end in the VRID", cluster, vrid, mac)
			}
			if bytes.Equal(mac[:5], []byte{0x00, 0x00, 0x5e, 0x00, 0x01}) {
				t.Fatalf("%q/%d: %s is the IANA VRRP MAC", cluster, vrid, mac)
			}
			key := mac.String()
			if prev, dup := seen[key]; dup {
				t.Fatalf("%s for both %s and %q/%d", key, prev, cluster, vrid)
			}
			seen[key] = fmt.Sprintf("%q/%d", cluster, vrid)
		}
	}
}

// TestVirtualMACStable pins the derivation: a change orphans every lease
// in the field (the server would see a new client and the VIP would move).
// The expected values were computed apart from this code, with Python's
// hashlib over the documented input.
func TestVirtualMACStable(t *testing.T) {
	for _, tc := range []struct {
		vrid    uint8
		cluster string
		want    string
	}{
		{51, "kubernetes", "02:8b:4f:12:05:33"},
		{1, "", "02:c2:f5:f2:75:01"},
		{200, "prod", "02:a7:e2:02:9a:c8"},
	} {
		if got := VirtualMAC(tc.vrid, tc.cluster).String(); got != tc.want {
			t.Errorf("VirtualMAC(%d, %q) = %s, want %s", tc.vrid, tc.cluster, got, tc.want)
		}
		if !bytes.Equal(VirtualMAC(tc.vrid, tc.cluster), VirtualMAC(tc.vrid, tc.cluster)) {
			t.Errorf("VirtualMAC(%d, %q) not deterministic", tc.vrid, tc.cluster)
		}
	}
}

func TestClientID(t *testing.T) {
	id := NewIdentity(51, "kubernetes")
	want := append([]byte{1}, VirtualMAC(51, "kubernetes")...)
	if !bytes.Equal(id.ClientID, want) || !bytes.Equal(ClientID(51, "kubernetes"), want) {
		t.Fatalf("client ID %x, want %x", id.ClientID, want)
	}
	if !bytes.Equal(id.MAC, VirtualMAC(51, "kubernetes")) || id.String() != id.MAC.String() {
		t.Fatalf("identity %v", id)
	}
	if err := id.validate(); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]Identity{
		"short MAC":     {MAC: net.HardwareAddr{2, 0, 0}, ClientID: []byte{1, 2}},
		"multicast MAC": {MAC: net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}, ClientID: []byte{1, 2}},
		"no client ID":  {MAC: id.MAC},
	} {
		if err := bad.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
