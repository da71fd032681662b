package daemon

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/hapod/hapod/pkg/vrrp"
)

func TestHandoverOutcome(t *testing.T) {
	at := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	peer := func(addr string, prio uint8, heard time.Duration) vrrp.Peer {
		return vrrp.Peer{Addr: netip.MustParseAddr(addr), Priority: prio, LastHeard: at.Add(heard)}
	}
	active := handoverRequest{At: at, WasActive: true}
	for _, tc := range []struct {
		name   string
		req    handoverRequest
		peers  []vrrp.Peer
		runErr error
		want   string
	}{
		{name: "no request", want: "stopped"},
		{name: "error", req: active, runErr: errors.New("vrrp: receive: boom"), want: "stopped with an error: vrrp: receive: boom"},
		{name: "backup", req: handoverRequest{At: at}, peers: []vrrp.Peer{peer("198.18.0.12", 100, time.Second)},
			want: "was a backup and stopped (the VIP stays with the active node)"},
		{name: "successor", req: active,
			peers: []vrrp.Peer{peer("198.18.0.12", 100, -time.Second), peer("198.18.0.13", 100, 80*time.Millisecond)},
			want:  "handed the VIP over to 198.18.0.13 in 85ms"},
		{name: "the last heard wins", req: active,
			peers: []vrrp.Peer{peer("198.18.0.12", 100, 70*time.Millisecond), peer("198.18.0.13", 100, 80*time.Millisecond)},
			want:  "handed the VIP over to 198.18.0.13 in 85ms"},
		{name: "heard before the request only", req: active, peers: []vrrp.Peer{peer("198.18.0.12", 100, -time.Millisecond)},
			want: "released the VIP after 85ms without hearing a successor (no other node runs hapod?)"},
		{name: "a leaving router is no successor", req: active, peers: []vrrp.Peer{peer("198.18.0.12", 0, 10*time.Millisecond)},
			want: "released the VIP after 85ms without hearing a successor (no other node runs hapod?)"},
	} {
		got := handoverOutcome(tc.req, vrrp.Status{Peers: tc.peers}, 85*time.Millisecond+300*time.Microsecond, tc.runErr)
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
