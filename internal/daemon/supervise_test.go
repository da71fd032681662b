package daemon

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// fakeSpeaker stands in for Speaker.Run: it returns ret once stopped.
type fakeSpeaker struct {
	errs    chan error
	stopped bool
	ret     error
}

func newFakeSpeaker(ret error) *fakeSpeaker {
	return &fakeSpeaker{errs: make(chan error, 1), ret: ret}
}

func (f *fakeSpeaker) stop() {
	f.stopped = true
	f.errs <- f.ret
}

func TestSupervise(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	speakerFailed := errors.New("vrrp: socket closed")
	releaseFailed := errors.New("vrrp: release VIP on exit: busy")
	for _, tc := range []struct {
		name        string
		speakerRet  error // what the speaker returns once stopped
		speakerEnds bool  // the speaker returns first, on its own
		proxyErr    error
		proxyEnds   bool
		linkLost    bool
		wantStop    bool     // supervise stopped the speaker
		want        []string // substrings of the error; none: nil
	}{
		{name: "clean stop", speakerEnds: true},
		{name: "speaker error", speakerEnds: true, speakerRet: speakerFailed, want: []string{"socket closed"}},
		{name: "proxy fails", proxyEnds: true, proxyErr: errors.New("epoll: bad fd"), wantStop: true,
			want: []string{"proxy: epoll: bad fd"}},
		{name: "proxy returns nil unasked", proxyEnds: true, wantStop: true, want: []string{"proxy: proxy stopped"}},
		{name: "link watch lost", linkLost: true, wantStop: true, want: []string{"link state"}},
		{name: "link lost and the release fails", linkLost: true, speakerRet: releaseFailed, wantStop: true,
			want: []string{"link state", "release VIP"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := newFakeSpeaker(tc.speakerRet)
			proxyErr := make(chan error, 1)
			linkLost := make(chan struct{})
			switch {
			case tc.speakerEnds:
				sp.errs <- tc.speakerRet
			case tc.proxyEnds:
				proxyErr <- tc.proxyErr
			case tc.linkLost:
				close(linkLost)
			}
			err := supervise(sp.errs, proxyErr, linkLost, sp.stop, quiet)
			if sp.stopped != tc.wantStop {
				t.Errorf("speaker stopped = %v, want %v", sp.stopped, tc.wantStop)
			}
			if len(tc.want) == 0 {
				if err != nil {
					t.Errorf("err = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("err = nil, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}
