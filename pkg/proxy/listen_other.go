//go:build !linux

package proxy

import (
	"errors"
	"net/netip"
)

// errUnimplemented: hapod's proxy runs on Linux only.
var errUnimplemented = errors.New("proxy: unimplemented on this OS")

// loop is Linux-only (epoll).
type loop struct {
	done chan struct{}
	err  error
}

func listenFD(netip.AddrPort, int) (int, netip.AddrPort, int, error) {
	return -1, netip.AddrPort{}, 0, errUnimplemented
}

func closeFD(int) {}

func (p *Proxy) startLoops() error { return errUnimplemented }

func (p *Proxy) postWait(func(*loop)) {}

func (l *loop) unlisten() {}

func (l *loop) closeAll() {}

func (l *loop) closeLocal([]netip.Addr) int { return 0 }

func (l *loop) post(func(*loop) bool) {}

func (c *conn) abort() { c.aborted.Store(true) }

// RaiseNoFile is Linux-only; elsewhere it returns an error.
func RaiseNoFile() (uint64, error) { return 0, errUnimplemented }

func noFileLimit() (uint64, error) { return 0, errUnimplemented }
