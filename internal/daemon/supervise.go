package daemon

import (
	"errors"
	"fmt"
	"log/slog"
)

// supervise waits for the speaker to return: after a clean stop (its
// context ended), or on its own error. When a part it depends on fails
// first, the proxy (proxyErr) or the link watch (linkLost closed: without
// it a link down would go unnoticed), it stops the speaker, which hands the
// VIP over, and returns that failure so the pod exits non-zero and kubelet
// restarts it.
func supervise(speakerErr, proxyErr <-chan error, linkLost <-chan struct{}, stopSpeaker func(), log *slog.Logger) error {
	var cause error
	select {
	case err := <-speakerErr:
		return err
	case cause = <-proxyErr:
		if cause == nil {
			cause = errors.New("proxy stopped")
		}
		cause = fmt.Errorf("proxy: %w", cause)
	case <-linkLost:
		cause = errors.New("lost track of the interface's link state (netlink subscription failed)")
	}
	log.Error("stopping: handing the VIP over", "err", cause)
	stopSpeaker()
	if err := <-speakerErr; err != nil {
		return errors.Join(cause, err)
	}
	return cause
}
