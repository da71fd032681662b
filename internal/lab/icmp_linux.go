package lab

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// echoer sends ICMP echo requests from a raw socket inside a node's namespace
// and matches replies by identifier and sequence number.
type echoer struct {
	conn    *icmp.PacketConn
	dst     net.Addr
	v6      bool
	id      int
	timeout time.Duration
	recv    sync.WaitGroup

	mu      sync.Mutex
	seq     int
	pending map[int]int // sequence number -> index in samples
	samples []Sample
}

func newEchoer(from *Node, target netip.Addr, timeout time.Duration) (*echoer, error) {
	network, laddr := "ip4:icmp", "0.0.0.0"
	v6 := target.Is6() && !target.Is4In6()
	if v6 {
		network, laddr = "ip6:ipv6-icmp", "::"
	}
	var conn *icmp.PacketConn
	err := inNS(from.NetNSPath(), func() error {
		var err error
		conn, err = icmp.ListenPacket(network, laddr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: icmp socket: %w", from.Name, err)
	}
	var b [2]byte
	_, _ = rand.Read(b[:])
	e := &echoer{
		conn:    conn,
		dst:     &net.IPAddr{IP: target.Unmap().AsSlice()},
		v6:      v6,
		id:      int(binary.BigEndian.Uint16(b[:])),
		timeout: timeout,
		pending: map[int]int{},
	}
	e.recv.Add(1)
	go e.receive()
	return e, nil
}

func (e *echoer) send(at time.Time) {
	e.mu.Lock()
	e.seq = (e.seq + 1) & 0xffff
	seq := e.seq
	e.pending[seq] = len(e.samples)
	e.samples = append(e.samples, Sample{At: at, Err: errors.New("no echo reply")})
	e.mu.Unlock()
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if e.v6 {
		typ = ipv6.ICMPTypeEchoRequest
	}
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: e.id, Seq: seq, Data: []byte("hapod-lab")}}
	// The IPv6 checksum needs the pseudo-header; the kernel fills it in for
	// raw ICMPv6 sockets, so Marshal's nil pseudo-header is fine.
	b, err := msg.Marshal(nil)
	if err == nil {
		_, err = e.conn.WriteTo(b, e.dst)
	}
	if err != nil {
		e.mu.Lock()
		e.samples[e.pending[seq]].Err = err
		delete(e.pending, seq)
		e.mu.Unlock()
	}
}

func (e *echoer) receive() {
	defer e.recv.Done()
	proto := 1 // ICMP
	if e.v6 {
		proto = 58 // ICMPv6
	}
	buf := make([]byte, 1500)
	for {
		n, _, err := e.conn.ReadFrom(buf)
		if err != nil {
			return // closed by stop
		}
		now := time.Now()
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || (m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply) {
			continue
		}
		echo, ok := m.Body.(*icmp.Echo)
		if !ok || echo.ID != e.id {
			continue
		}
		e.mu.Lock()
		if i, ok := e.pending[echo.Seq]; ok {
			delete(e.pending, echo.Seq)
			if rtt := now.Sub(e.samples[i].At); rtt <= e.timeout {
				e.samples[i].OK, e.samples[i].RTT, e.samples[i].Err = true, rtt, nil
			} else {
				e.samples[i].Err = fmt.Errorf("echo reply after %v", rtt)
			}
		}
		e.mu.Unlock()
	}
}

// stop waits one timeout for late replies, closes the socket and returns
// the samples.
func (e *echoer) stop() []Sample {
	time.Sleep(e.timeout)
	_ = e.conn.Close()
	e.recv.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.samples
}
