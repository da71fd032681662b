package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TCPServer is a tiny TCP server in a node's namespace that answers every
// connection with the node's name and a newline, then closes it. A listener
// on a VIP on every node shows a client who holds the VIP.
type TCPServer struct {
	node     *Node
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
}

// ServeTCP starts a TCPServer on addr inside the node's namespace, closed in
// t.Cleanup. The listener uses IP_FREEBIND, so addr may be a VIP the node
// doesn't hold yet; connections arrive once it does. Port 0 picks a port
// (see Addr).
func (n *Node) ServeTCP(t T, addr netip.AddrPort) *TCPServer {
	t.Helper()
	network := "tcp4"
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		network = "tcp6"
	}
	ln, err := n.Listen(network, addr.String())
	if err != nil {
		t.Fatalf("ServeTCP: %v", err)
	}
	s := &TCPServer{node: n, ln: ln}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

// Addr is the address the server listens on.
func (s *TCPServer) Addr() netip.AddrPort {
	return s.ln.Addr().(*net.TCPAddr).AddrPort()
}

// Accepted is the number of connections the server has accepted.
func (s *TCPServer) Accepted() int64 { return s.accepted.Load() }

// Close stops the server and waits for its goroutines.
func (s *TCPServer) Close() {
	_ = s.ln.Close()
	s.wg.Wait()
}

func (s *TCPServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient accept error (EMFILE, a connection reset while
			// queued) must not end the server a test relies on.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.accepted.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = fmt.Fprintf(c, "%s\n", s.node.Name)
		}()
	}
}

// WhoServes connects from the node to addr and returns the name a TCPServer
// greets with: which node holds that address right now.
func (n *Node) WhoServes(ctx context.Context, addr netip.AddrPort) (string, error) {
	c, err := n.Dial(ctx, "tcp", addr.String())
	if err != nil {
		return "", err
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetReadDeadline(d)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("%s: read greeting from %s: %w", n.Name, addr, err)
	}
	return strings.TrimSuffix(line, "\n"), nil
}
