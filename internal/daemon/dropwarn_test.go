package daemon

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hapod/hapod/pkg/vrrp"
)

func TestMisconfigWarner(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
	now := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	w := newMisconfigWarner(log, func() time.Time { return now })
	auth := &vrrp.DropError{Reason: vrrp.DropAuth, Detail: "wrong password from 198.18.0.12"}
	steps := []struct {
		after time.Duration
		de    *vrrp.DropError
	}{
		{0, auth},                      // warned at once
		{100 * time.Millisecond, auth}, // held back
		{0, &vrrp.DropError{Reason: vrrp.DropVRID, Detail: "VRID 9"}},                            // normal on a shared LAN: never warned
		{time.Second, &vrrp.DropError{Reason: vrrp.DropIntervalMismatch, Detail: "interval 3s"}}, // its own budget
		{30 * time.Second, auth}, // held back
		{30 * time.Second, auth}, // a minute after the first: warned, counting the held ones
		// Another cluster on our VRID: warned, with what to do about it.
		{0, &vrrp.DropError{Reason: vrrp.DropAddrMismatch, Detail: "VRID 200 from 198.18.0.12 lists [198.18.0.201], configured [198.18.0.200]"}},
		{time.Second, &vrrp.DropError{Reason: vrrp.DropAddrMismatch, Detail: "VRID 200 from 198.18.0.13 lists [198.18.0.201], configured [198.18.0.200]"}},
	}
	for _, s := range steps {
		now = now.Add(s.after)
		w.drop(s.de)
	}
	want := []string{
		`level=WARN msg="VRRP advert from a differently configured router dropped" reason=auth detail="wrong password from 198.18.0.12" dropped=1`,
		`level=WARN msg="VRRP advert from a differently configured router dropped" reason=interval_mismatch detail="interval 3s" dropped=1`,
		`level=WARN msg="VRRP advert from a differently configured router dropped" reason=auth detail="wrong password from 198.18.0.12" dropped=3`,
		`level=WARN msg="VRRP advert from a differently configured router dropped" reason=addr_mismatch detail="VRID 200 from 198.18.0.12 lists [198.18.0.201], configured [198.18.0.200]" dropped=1 hint="another virtual router on this LAN uses our VRID (the default VRID is the VIP's last byte): give one of the clusters another --vrid, or make --vip agree if it is a node of ours"`,
	}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
