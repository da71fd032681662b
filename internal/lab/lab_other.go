//go:build !linux

package lab

import (
	"context"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// New ends the test with Unavailable: the lab needs Linux network
// namespaces.
func New(t T, nodes int) *Lab {
	t.Helper()
	return NewWith(t, Options{Nodes: nodes})
}

// NewWith ends the test with Unavailable, as New does.
func NewWith(t T, o Options) *Lab {
	t.Helper()
	Unavailable(t, "lab: network namespaces need Linux")
	return nil
}

// Addrs is unimplemented outside Linux.
func (n *Node) Addrs() ([]netip.Prefix, error) { return nil, ErrUnsupported }

// HasAddr is always false outside Linux.
func (n *Node) HasAddr(a netip.Addr) bool { return false }

// Dial is unimplemented outside Linux.
func (n *Node) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, ErrUnsupported
}

// Listen is unimplemented outside Linux.
func (n *Node) Listen(network, addr string) (net.Listener, error) {
	return nil, ErrUnsupported
}

type echoer struct{}

func newEchoer(*Node, netip.Addr, time.Duration) (*echoer, error) { return nil, ErrUnsupported }
func (*echoer) send(time.Time)                                    {}
func (*echoer) stop() []Sample                                    { return nil }

func sysProcAttr() *syscall.SysProcAttr { return nil }

// Do runs fn inside the node's namespace.
func (n *Node) Do(fn func() error) error { return ErrUnsupported }

func (n *Node) createLink() error { return ErrUnsupported }
