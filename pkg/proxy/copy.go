package proxy

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// bufSize is the relay buffer. Buffers come from a pool and are held only
// while data is in hand: an idle connection (a quiet watch) holds none,
// so 20,000 idle connections cost no buffer memory.
const bufSize = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// halfRelay copies one direction with read(2)/write(2) through a pooled
// buffer. Reading goes through RawConn so the buffer can be taken after
// the socket is readable and returned when it would block.
type halfRelay struct {
	raw    syscall.RawConn
	dst    *net.TCPConn
	count  *atomic.Int64
	buf    *[]byte
	n      int
	err    error
	readFn func(fd uintptr) bool
}

// read is RawConn.Read's callback: false means "would block, wait".
func (h *halfRelay) read(fd uintptr) bool {
	if h.buf == nil {
		h.buf = bufPool.Get().(*[]byte)
	}
	for {
		n, err := syscall.Read(int(fd), *h.buf)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			bufPool.Put(h.buf)
			h.buf = nil
			return false
		}
		h.n, h.err = n, err
		return true
	}
}

func (h *halfRelay) release() {
	if h.buf != nil {
		bufPool.Put(h.buf)
		h.buf = nil
	}
}

// relay copies src to dst until src's EOF (nil) or an error.
func relay(src, dst *net.TCPConn, count *atomic.Int64) error {
	raw, err := src.SyscallConn()
	if err != nil {
		return err
	}
	h := &halfRelay{raw: raw, dst: dst, count: count}
	h.readFn = h.read
	defer h.release()
	for {
		if err := raw.Read(h.readFn); err != nil {
			return err
		}
		if h.err != nil {
			return os.NewSyscallError("read", h.err)
		}
		if h.n <= 0 {
			return nil
		}
		if _, err := dst.Write((*h.buf)[:h.n]); err != nil {
			return err
		}
		count.Add(int64(h.n))
	}
}
