package dhcpvip

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

var (
	testID  = NewIdentity(51, "kubernetes")
	testXID = dhcpv4.TransactionID{1, 2, 3, 4}
)

func TestBuildMessage(t *testing.T) {
	for _, tc := range []struct {
		name          string
		msg           Message
		wantType      dhcpv4.MessageType
		requested, sv netip.Addr
	}{
		{"discover", Message{Type: MessageDiscover}, dhcpv4.MessageTypeDiscover, netip.Addr{}, netip.Addr{}},
		{"discover with hint", Message{Type: MessageDiscover, Requested: vip}, dhcpv4.MessageTypeDiscover, vip, netip.Addr{}},
		{"selecting/renewing", Message{Type: MessageRequest, Requested: vip, Server: server}, dhcpv4.MessageTypeRequest, vip, server},
		{"rebinding", Message{Type: MessageRequest, Requested: vip}, dhcpv4.MessageTypeRequest, vip, netip.Addr{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := buildMessage(testID, tc.msg, testXID, "hapod-test")
			if err != nil {
				t.Fatal(err)
			}
			// What the server sees: decode the wire bytes.
			q, err := dhcpv4.FromBytes(p.ToBytes())
			if err != nil {
				t.Fatal(err)
			}
			if q.OpCode != dhcpv4.OpcodeBootRequest || q.MessageType() != tc.wantType || q.TransactionID != testXID {
				t.Fatalf("op %v type %v xid %v", q.OpCode, q.MessageType(), q.TransactionID)
			}
			if !q.IsBroadcast() {
				t.Fatal("broadcast flag not set: the reply would be unicast to a MAC/IP the client may not answer for")
			}
			if !q.ClientIPAddr.IsUnspecified() {
				t.Fatalf("ciaddr %v, want 0.0.0.0", q.ClientIPAddr)
			}
			if !bytes.Equal(q.ClientHWAddr, testID.MAC) {
				t.Fatalf("chaddr %v", q.ClientHWAddr)
			}
			if got := q.Options.Get(dhcpv4.OptionClientIdentifier); !bytes.Equal(got, testID.ClientID) {
				t.Fatalf("client ID %x, want %x", got, testID.ClientID)
			}
			if got, _ := addr4(q.Options.Get(dhcpv4.OptionRequestedIPAddress)); got != tc.requested {
				t.Fatalf("requested %v, want %v", got, tc.requested)
			}
			if got, _ := addr4(q.Options.Get(dhcpv4.OptionServerIdentifier)); got != tc.sv {
				t.Fatalf("server ID %v, want %v", got, tc.sv)
			}
			if q.HostName() != "hapod-test" {
				t.Fatalf("hostname %q", q.HostName())
			}
			if !q.IsOptionRequested(dhcpv4.OptionIPAddressLeaseTime) || !q.IsOptionRequested(dhcpv4.OptionRenewTimeValue) {
				t.Fatal("lease options not requested")
			}
		})
	}
	if _, err := buildMessage(testID, Message{Type: MessageRequest}, testXID, ""); err == nil {
		t.Fatal("a Request without an address was built")
	}
	if _, err := buildMessage(testID, Message{}, testXID, ""); err == nil {
		t.Fatal("an invalid message type was built")
	}
}

// reply builds a server reply to the test identity.
func reply(t testing.TB, mt dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	base := []dhcpv4.Modifier{
		dhcpv4.WithTransactionID(testXID),
		dhcpv4.WithHwAddr(testID.MAC),
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithYourIP(net.IP(vip.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(server.AsSlice()))),
	}
	p, err := dhcpv4.New(append(base, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	p.OpCode = dhcpv4.OpcodeBootReply
	return p
}

func TestDecodeReply(t *testing.T) {
	leaseOpt := dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(120 * time.Second))
	for _, tc := range []struct {
		name    string
		p       *dhcpv4.DHCPv4
		xids    []dhcpv4.TransactionID
		want    Input
		ok      bool
		wantErr error
	}{
		{"offer", reply(t, dhcpv4.MessageTypeOffer), nil, OfferReceived{Addr: vip, Server: server}, true, nil},
		{"ack with everything", reply(t, dhcpv4.MessageTypeAck, leaseOpt,
			dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(5*time.Second)),
			dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(8*time.Second)),
			dhcpv4.WithOption(dhcpv4.OptClientIdentifier(testID.ClientID))),
			nil, AckReceived{Addr: vip, PrefixLen: 24, Server: server, Lease: 120 * time.Second, T1: 5 * time.Second, T2: 8 * time.Second}, true, nil},
		{"ack, bare", reply(t, dhcpv4.MessageTypeAck, leaseOpt), nil,
			AckReceived{Addr: vip, PrefixLen: -1, Server: server, Lease: 120 * time.Second}, true, nil},
		{"ack, infinite", reply(t, dhcpv4.MessageTypeAck, dhcpv4.WithGeneric(dhcpv4.OptionIPAddressLeaseTime, []byte{0xff, 0xff, 0xff, 0xff})), nil,
			AckReceived{Addr: vip, PrefixLen: -1, Server: server, Lease: InfiniteLease}, true, nil},
		{"ack, non-contiguous mask", reply(t, dhcpv4.MessageTypeAck, leaseOpt, dhcpv4.WithGeneric(dhcpv4.OptionSubnetMask, []byte{255, 0, 255, 0})), nil,
			AckReceived{Addr: vip, PrefixLen: -1, Server: server, Lease: 120 * time.Second}, true, nil},
		{"ack without server ID uses siaddr", reply(t, dhcpv4.MessageTypeAck, leaseOpt, dhcpv4.WithoutOption(dhcpv4.OptionServerIdentifier), dhcpv4.WithServerIP(net.IP(server2.AsSlice()))), nil,
			AckReceived{Addr: vip, PrefixLen: -1, Server: server2, Lease: 120 * time.Second}, true, nil},
		{"nak", reply(t, dhcpv4.MessageTypeNak, dhcpv4.WithYourIP(net.IPv4zero), dhcpv4.WithOption(dhcpv4.OptMessage("wrong network"))), nil,
			NakReceived{Server: server, Message: "wrong network"}, true, nil},
		{"previous xid", reply(t, dhcpv4.MessageTypeOffer), []dhcpv4.TransactionID{{9, 9, 9, 9}, testXID}, OfferReceived{Addr: vip, Server: server}, true, nil},
		{"ack without lease time", reply(t, dhcpv4.MessageTypeAck), nil, nil, true, ErrMalformedReply},
		{"ack with zero lease time", reply(t, dhcpv4.MessageTypeAck, dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(0))), nil, nil, true, ErrMalformedReply},
		{"ack for 0.0.0.0", reply(t, dhcpv4.MessageTypeAck, leaseOpt, dhcpv4.WithYourIP(net.IPv4zero)), nil, nil, true, ErrMalformedReply},
		{"offer of a multicast address", reply(t, dhcpv4.MessageTypeOffer, dhcpv4.WithYourIP(net.IPv4(224, 0, 0, 1))), nil, nil, true, ErrMalformedReply},
		{"other client's MAC", reply(t, dhcpv4.MessageTypeOffer, dhcpv4.WithHwAddr(net.HardwareAddr{2, 1, 1, 1, 1, 1})), nil, nil, false, nil},
		{"other transaction", reply(t, dhcpv4.MessageTypeOffer, dhcpv4.WithTransactionID(dhcpv4.TransactionID{9, 9, 9, 9})), nil, nil, false, nil},
		{"other transaction's ACK for the VIP: the cluster's lease", reply(t, dhcpv4.MessageTypeAck, leaseOpt, dhcpv4.WithTransactionID(dhcpv4.TransactionID{9, 9, 9, 9})), nil,
			AckReceived{Addr: vip, PrefixLen: -1, Server: server, Lease: 120 * time.Second}, true, nil},
		{"other transaction's ACK for another address", reply(t, dhcpv4.MessageTypeAck, leaseOpt, dhcpv4.WithTransactionID(dhcpv4.TransactionID{9, 9, 9, 9}), dhcpv4.WithYourIP(net.IP(server2.AsSlice()))), nil, nil, false, nil},
		{"other transaction's NAK", reply(t, dhcpv4.MessageTypeNak, dhcpv4.WithYourIP(net.IPv4zero), dhcpv4.WithTransactionID(dhcpv4.TransactionID{9, 9, 9, 9})), nil, nil, false, nil},
		{"other client's ACK for the VIP", reply(t, dhcpv4.MessageTypeAck, leaseOpt, dhcpv4.WithTransactionID(dhcpv4.TransactionID{9, 9, 9, 9}), dhcpv4.WithHwAddr(net.HardwareAddr{2, 1, 1, 1, 1, 1})), nil, nil, false, nil},
		{"other client ID echoed", reply(t, dhcpv4.MessageTypeOffer, dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{1, 2, 3}))), nil, nil, false, nil},
		{"a request, not a reply", func() *dhcpv4.DHCPv4 {
			p := reply(t, dhcpv4.MessageTypeOffer)
			p.OpCode = dhcpv4.OpcodeBootRequest
			return p
		}(), nil, nil, false, nil},
		{"inform ack type ignored", reply(t, dhcpv4.MessageTypeInform), nil, nil, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			xids := tc.xids
			if xids == nil {
				xids = []dhcpv4.TransactionID{testXID}
			}
			// Through the wire format, as the Keeper receives it.
			p, err := dhcpv4.FromBytes(tc.p.ToBytes())
			if err != nil {
				t.Fatal(err)
			}
			in, ok, err := decodeReply(testID, xids, vip, p)
			if ok != tc.ok || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("ok %v err %v, want ok %v err %v", ok, err, tc.ok, tc.wantErr)
			}
			if in != tc.want {
				t.Fatalf("got %#v, want %#v", in, tc.want)
			}
		})
	}
}

func TestMaskLen(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want int
	}{
		{[]byte{255, 255, 255, 0}, 24},
		{[]byte{255, 255, 255, 255}, 32},
		{[]byte{255, 254, 0, 0}, 15},
		{[]byte{128, 0, 0, 0}, 1},
		{[]byte{0, 0, 0, 0}, -1},
		{[]byte{255, 0, 255, 0}, -1},
		{[]byte{255, 255, 255}, -1},
		{nil, -1},
	} {
		if got := maskLen(tc.b); got != tc.want {
			t.Errorf("maskLen(%v) = %d, want %d", tc.b, got, tc.want)
		}
	}
}

// FuzzDecodeReply feeds arbitrary packets, addressed to the test client so
// the decoder gets past its filters, through the decoder and a machine
// waiting for a reply: nothing may panic, and what is accepted is usable.
func FuzzDecodeReply(f *testing.F) {
	lease := dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(120 * time.Second))
	for _, p := range []*dhcpv4.DHCPv4{
		reply(f, dhcpv4.MessageTypeOffer),
		reply(f, dhcpv4.MessageTypeAck, lease, dhcpv4.WithNetmask(net.CIDRMask(24, 32))),
		reply(f, dhcpv4.MessageTypeAck, dhcpv4.WithGeneric(dhcpv4.OptionIPAddressLeaseTime, []byte{0xff, 0xff, 0xff, 0xff})),
		reply(f, dhcpv4.MessageTypeNak, dhcpv4.WithOption(dhcpv4.OptMessage("no"))),
	} {
		f.Add(p.ToBytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		// Make it ours, to reach the decoding of every message type.
		p.OpCode = dhcpv4.OpcodeBootReply
		p.ClientHWAddr = append(net.HardwareAddr(nil), testID.MAC...)
		p.TransactionID = testXID
		in, ok, err := decodeReply(testID, []dhcpv4.TransactionID{testXID}, vip, p)
		if !ok || err != nil {
			if in != nil {
				t.Fatalf("input %#v with ok %v err %v", in, ok, err)
			}
			return
		}
		switch in := in.(type) {
		case OfferReceived:
			if !in.Addr.Is4() || in.Addr.IsUnspecified() {
				t.Fatalf("offer of %v", in.Addr)
			}
		case AckReceived:
			if !in.Addr.Is4() || in.Lease <= 0 || in.PrefixLen < -1 || in.PrefixLen > 32 || in.PrefixLen == 0 {
				t.Fatalf("accepted %#v", in)
			}
		case NakReceived:
		default:
			t.Fatalf("unexpected input %T", in)
		}
		for _, want := range []netip.Addr{{}, vip} {
			m := NewMachine(MachineConfig{Want: want})
			m.Step(t0, Activate{})
			m.Step(t0, OfferReceived{Addr: vip, Server: server})
			m.Step(t0, in)
			if d := m.NextDeadline(); !d.IsZero() && !d.After(t0) {
				t.Fatalf("deadline %v not after now after %#v", d, in)
			}
		}
	})
}

// FuzzBuildMessage checks that every message the client can build reads
// back, as a server would, with the identity, flag and options intact.
func FuzzBuildMessage(f *testing.F) {
	f.Add(uint8(1), "kubernetes", true, []byte{198, 18, 0, 150}, []byte{198, 18, 0, 10}, "h")
	f.Add(uint8(255), "", false, []byte{}, []byte{}, "")
	f.Fuzz(func(t *testing.T, vrid uint8, cluster string, request bool, req, srv []byte, host string) {
		id := NewIdentity(vrid, cluster)
		msg := Message{Type: MessageDiscover}
		if request {
			msg.Type = MessageRequest
		}
		msg.Requested, _ = addr4(req)
		msg.Server, _ = addr4(srv)
		p, err := buildMessage(id, msg, testXID, host)
		if err != nil {
			if request && !msg.Requested.IsValid() {
				return
			}
			if len(host) > 255 {
				return // an option holds at most 255 bytes
			}
			t.Fatalf("build %v: %v", msg, err)
		}
		q, err := dhcpv4.FromBytes(p.ToBytes())
		if err != nil {
			if len(host) > 255 {
				return
			}
			t.Fatalf("read back %v: %v", msg, err)
		}
		if !q.IsBroadcast() || !bytes.Equal(q.ClientHWAddr, id.MAC) ||
			!bytes.Equal(q.Options.Get(dhcpv4.OptionClientIdentifier), id.ClientID) || !q.ClientIPAddr.IsUnspecified() {
			t.Fatalf("identity lost: %v", q)
		}
		if got, _ := addr4(q.Options.Get(dhcpv4.OptionRequestedIPAddress)); got != msg.Requested {
			t.Fatalf("requested %v, want %v", got, msg.Requested)
		}
	})
}
