package daemon

import (
	"log/slog"
	"sync"
	"time"

	"github.com/hapod/hapod/pkg/vrrp"
)

// misconfigWarnEvery bounds the warnings per drop reason: a peer with the
// wrong password sends ten adverts a second, and one line a minute says it.
const misconfigWarnEvery = time.Minute

// misconfigWarner turns drops that point at a differently configured peer
// (another password, version or interval, a sender missing from --peer)
// into a warning: those routers cannot hear each other and both end up
// active, which the drop counter alone leaves for someone to notice. It
// also warns about another virtual router on our VRID (addr_mismatch): a
// second cluster on the LAN whose VIP ends in the same byte, which would
// have merged with ours; both keep working, but one needs another --vrid.
type misconfigWarner struct {
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	last    map[vrrp.DropReason]time.Time // last warning per reason
	pending map[vrrp.DropReason]int       // drops since that warning
}

func newMisconfigWarner(log *slog.Logger, now func() time.Time) *misconfigWarner {
	return &misconfigWarner{log: log, now: now,
		last: map[vrrp.DropReason]time.Time{}, pending: map[vrrp.DropReason]int{}}
}

// drop is a vrrp.ConnConfig.OnDrop.
func (w *misconfigWarner) drop(de *vrrp.DropError) {
	if !de.Reason.Misconfigured() {
		return
	}
	w.mu.Lock()
	w.pending[de.Reason]++
	now := w.now()
	if last, ok := w.last[de.Reason]; ok && now.Sub(last) < misconfigWarnEvery {
		w.mu.Unlock()
		return
	}
	n := w.pending[de.Reason]
	w.pending[de.Reason] = 0
	w.last[de.Reason] = now
	w.mu.Unlock()
	args := []any{"reason", de.Reason.String(), "detail", de.Detail, "dropped", n}
	if h := dropHints[de.Reason]; h != "" {
		args = append(args, "hint", h)
	}
	w.log.Warn("VRRP advert from a differently configured router dropped", args...)
}

// dropHints say what to do where the detail alone does not.
var dropHints = map[vrrp.DropReason]string{
	vrrp.DropAddrMismatch: "another virtual router on this LAN uses our VRID (the default VRID is the VIP's last byte): give one of the clusters another --vrid, or make --vip agree if it is a node of ours",
}
