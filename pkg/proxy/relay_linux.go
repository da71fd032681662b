package proxy

import "golang.org/x/sys/unix"

const (
	// scratchSize is the loop's read buffer; data stays in it only until
	// written, unless the write is partial (see keep). One read takes what
	// a socket holds, up to its 1 MiB receive buffer (Config.RecvBuffer).
	// Copying through 1 MiB beat splicing, and beat copying through
	// 64 KiB, for every case but one fast stream
	// (docs/proxy-tuning.md#read-buffer).
	scratchSize = 1 << 20
	// keepCopy is the largest unwritten rest that keep copies into a
	// buffer of its own size rather than keeping the scratch buffer: a
	// slow reader left a little holds 64 KiB, not 1 MiB.
	keepCopy = 64 << 10
	// maxHeld is how many scratch-size buffers a loop lets unwritten
	// rests hold. While they are out, its reads take keepCopy at most, so
	// many slow readers of bulk data hold 64 KiB each, not 1 MiB
	// (docs/proxy-tuning.md#held-buffers).
	maxHeld = 8
	// bulkRead is the smallest read counted as bulk (loop.bulk): an
	// exchange of small messages never reaches it.
	bulkRead = 64 << 10
	// maxSpare is how many pending-data buffers of each size, and empty
	// pipes, a loop keeps for reuse.
	maxSpare = maxHeld
	// spliceAfter is how many bytes of bulk reads (bulkRead or more) a
	// direction takes before it is spliced, with Config.Splice.
	spliceAfter = 16 << 20
	// pipeSize is the capacity asked for each splice pipe (F_SETPIPE_SZ),
	// so one splice pair moves up to 1 MiB instead of the default 64 KiB.
	// Only page references sit in it (docs/proxy-tuning.md#splice-pipes).
	pipeSize = 1 << 20
)

// relay moves what it can both ways and finishes c when both directions
// are done.
func (l *loop) relay(c *conn) {
	if !l.pump(&c.cl, &c.be) || !l.pump(&c.be, &c.cl) {
		l.finish(c)
		return
	}
	if c.cl.eof && c.be.eof && c.cl.shut && c.be.shut {
		l.finish(c)
	}
}

// pump copies src to dst until src would block, dst is full, or src
// ended (then dst gets a FIN: half-close passes through). It returns
// false when the connection must be torn down.
//
// Reads go through the loop's scratch buffer with read(2) and write(2);
// see scratchSize for why by default. With Config.Splice, a direction
// that has read spliceAfter bytes in bulk reads is spliced through a pipe
// from then on: the kernel moves page references and the proxy copies
// nothing.
func (l *loop) pump(src, dst *side) bool {
	for {
		if !l.flush(dst) {
			return false
		}
		if dst.pipeN > 0 || len(dst.pending) > 0 {
			return true // dst is full; its EPOLLOUT resumes us
		}
		if src.eof {
			if !dst.shut {
				dst.shut = true
				if dst.eof && src.pipeN == 0 && len(src.pending) == 0 {
					// The other direction is over too: close(2) sends
					// this FIN, without a shutdown call and, towards a
					// peer that already closed, without its RST.
					return true
				}
				if err := rawShutdown(dst.fd, unix.SHUT_WR); err != 0 && err != unix.ENOTCONN {
					return false
				}
			}
			return true
		}
		if !src.readable {
			return true
		}
		if src.bulk >= spliceAfter && l.takePipe(dst) {
			// The pipe is empty here, so EAGAIN means the socket is.
			n, err := rawSplice(src.fd, dst.pipeW, pipeSize)
			if err != 0 {
				if err == unix.EAGAIN {
					src.readable = false
					l.dropPipe(dst)
					return true
				}
				return false
			}
			if n == 0 {
				src.eof = true
				l.dropPipe(dst)
				continue
			}
			dst.pipeN = n
			l.bulk += int64(n)
			continue
		}
		buf := l.scratch
		if l.held >= maxHeld {
			buf = buf[:keepCopy]
		}
		n, err := rawRead(src.fd, buf)
		if err != 0 {
			if err == unix.EAGAIN {
				src.readable = false
				return true
			}
			return false
		}
		if n == 0 {
			src.eof = true
			continue
		}
		if n >= bulkRead {
			l.bulk += int64(n)
			if l.p.cfg.Splice {
				src.bulk += n
			}
		}
		if n < len(buf) {
			if src.fin {
				// A short read drained the socket, and nothing comes
				// after the peer's FIN: skip the read that would return 0.
				src.eof = true
			} else if !src.hup {
				// A short read drained the socket: with edge-triggered
				// epoll the next arrival raises a new event, so skip the
				// read that would only say EAGAIN. Not after a reset was
				// signalled: that event may already be consumed.
				src.readable = false
			}
		}
		w := 0
		if dst.writable {
			// The last data before a FIN that this call passes on goes
			// out corked (MSG_MORE): the shutdown or close that follows
			// sends data and FIN in one segment, as haproxy does, instead
			// of two segments and two wake-ups of the peer.
			w, err = rawSend(dst.fd, l.scratch[:n], src.eof && !dst.shut)
			if err != 0 {
				if err != unix.EAGAIN {
					return false
				}
				dst.writable = false
				w = 0
			}
		}
		if w > 0 {
			dst.count.Add(int64(w))
		}
		if w < n {
			l.keep(dst, l.scratch[w:n])
		}
	}
}

// keep makes rest, unwritten, s's pending data. A small rest is copied
// into a keepCopy buffer; a larger one keeps the scratch buffer, and the
// loop takes a spare.
func (l *loop) keep(s *side, rest []byte) {
	if len(rest) <= keepCopy {
		s.pbuf = l.getSpare(&l.small, keepCopy)
		s.pending = s.pbuf[:copy(s.pbuf, rest)]
		return
	}
	s.pbuf, s.pending = l.scratch, rest
	l.scratch = l.getSpare(&l.spare, scratchSize)
	l.held++
}

// flush writes what is pending for s. Only EAGAIN clears writable: with
// edge-triggered epoll, EPOLLOUT comes only after the socket was full.
func (l *loop) flush(s *side) bool {
	for s.pipeN > 0 && s.writable {
		n, err := rawSplice(s.pipeR, s.fd, s.pipeN)
		if err != 0 {
			if err == unix.EAGAIN {
				s.writable = false
				return true
			}
			return false
		}
		s.count.Add(int64(n))
		s.pipeN -= n
	}
	for len(s.pending) > 0 && s.writable {
		n, err := rawWrite(s.fd, s.pending)
		if err != 0 {
			if err == unix.EAGAIN {
				s.writable = false
				return true
			}
			return false
		}
		s.count.Add(int64(n))
		s.pending = s.pending[n:]
		if len(s.pending) == 0 {
			l.putSpare(s.pbuf)
			s.pbuf, s.pending = nil, nil
		}
	}
	return true
}

// takePipe gives s a pipe for spliced data, from the loop's spares or
// new; false if none can be had (out of descriptors: read/write then).
func (l *loop) takePipe(s *side) bool {
	if s.pipeR >= 0 {
		return true
	}
	if n := len(l.pipes); n > 0 {
		s.pipeR, s.pipeW = l.pipes[n-1][0], l.pipes[n-1][1]
		l.pipes = l.pipes[:n-1]
		return true
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		s.peer.bulk = 0
		return false
	}
	// Without room for it (fs.pipe-max-size, or the user's pipe pages
	// over fs.pipe-user-pages-soft) the pipe keeps its default size.
	unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, pipeSize)
	s.pipeR, s.pipeW = fds[0], fds[1]
	return true
}

// dropPipe returns s's pipe to the spares when empty, or closes it.
func (l *loop) dropPipe(s *side) {
	if s.pipeR < 0 {
		return
	}
	if s.pipeN == 0 && len(l.pipes) < maxSpare {
		l.pipes = append(l.pipes, [2]int{s.pipeR, s.pipeW})
	} else {
		unix.Close(s.pipeR)
		unix.Close(s.pipeW)
	}
	s.pipeR, s.pipeW, s.pipeN = -1, -1, 0
}

// getSpare takes a buffer of size bytes from pool, or makes one.
func (l *loop) getSpare(pool *[][]byte, size int) []byte {
	if n := len(*pool); n > 0 {
		b := (*pool)[n-1]
		*pool = (*pool)[:n-1]
		return b
	}
	return make([]byte, size)
}

// putSpare keeps b, a drained pending buffer, for reuse in the pool for
// its size; a scratch-size one is no longer held (see maxHeld).
func (l *loop) putSpare(b []byte) {
	pool := &l.spare
	if cap(b) == keepCopy {
		pool = &l.small
	} else {
		l.held--
	}
	if len(*pool) < maxSpare {
		*pool = append(*pool, b[:cap(b)])
	}
}
