package proxy

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Loops make only raw system calls (sys_linux.go) and wait for events in
// one of two ways, picked by their rates of new connections and bulk
// data (see pickWait):
//
// Parked in Go's netpoller (epfd nested in the runtime's epoll instance)
// is best for many small exchanges on long-lived connections, the API
// server's usual traffic: a spinning loop uses up its fair share of the
// CPU, and the kernel's scheduler then runs it after the client and
// server when it has work (docs/proxy-tuning.md#wait-modes).
//
// With many new connections, or bulk streams, epoll_wait with the spin
// wins: an event on a nested epoll instance wakes the runtime's poller
// thread, which hands the loop to whichever thread holds a free P, and
// the CPUs go idle between the hand-offs.
//
// A loop waits in epoll_wait once it accepts or reads bulk at rawAbove's
// rates over a waitWindow, and goes back to the netpoller when both fall
// under rawBelow's.
var (
	rawAbove = waitRates{accepts: 1000, bulk: 64 << 20}
	rawBelow = waitRates{accepts: 250, bulk: 16 << 20}
)

const waitWindow = int64(100 * time.Millisecond)

// holdWait is how long, in milliseconds, a loop waiting in epoll_wait
// keeps its P (rawEpollWait) before it waits on in an ordinary system
// call that gives the P back to the runtime. Under load every wait ends
// within it, without the runtime handing the P to another thread and
// back (docs/proxy-tuning.md#holding-the-p). An idle loop ends up in the
// ordinary call, where neither sysmon nor the garbage collector has to
// interrupt it. While every loop holds a P, another goroutine (the VRRP
// speaker in hapod run) waits for one about holdWait plus yieldAfter at
// most.
const holdWait = 2

// spinFor is how long a loop waiting in epoll_wait polls, yielding the
// CPU between polls (sched_yield), before it sleeps. Without it a loop
// slept about once per request and was woken, often onto a CPU that had
// gone idle meanwhile (docs/proxy-tuning.md#spin). It costs a loop at
// most spinFor per wake-up, and loops spin only at the rates that put
// them in epoll_wait (rawAbove).
const spinFor = 20 * time.Microsecond

// yieldAfter is how long a loop may keep finding events without parking
// before it yields (runtime.Gosched, which also wakes an idle P). Its
// system calls are raw, so a busy loop never enters the scheduler by
// itself, and whatever needs the scheduler waits until it parks: a
// goroutine queued behind it on its P (another loop, the VRRP speaker),
// or the other loop's wake-up from the netpoller while no idle thread is
// polling. The runtime's backstop is sysmon, which sleeps until the next
// timer once every P was idle: requests waited up to 750 ms for it
// (docs/proxy-tuning.md#yield).
const yieldAfter = int64(time.Millisecond)

// The spin, the yield and the rate window measure the loop's own running
// time, so they read the wall clock (time.Now); the loop's deadlines are
// on Config.Clock (timer_linux.go).

// waitRaw reports whether a loop working at rates got should wait in
// epoll_wait rather than in the netpoller; raw is how it waits now.
func waitRaw(raw bool, got, above, below waitRates) bool {
	limit := above
	if raw {
		limit = below
	}
	return got.accepts >= limit.accepts || got.bulk >= limit.bulk
}

// pickWait switches the loop's wait once per waitWindow (see rawAbove).
func (l *loop) pickWait(now int64) {
	el := now - l.winStart
	if el < waitWindow {
		return
	}
	raw := l.file == nil
	sec := float64(time.Second) / float64(el)
	got := waitRates{accepts: float64(l.accepts) * sec, bulk: float64(l.bulk) * sec}
	want := waitRaw(raw, got, l.p.rawAbove, l.p.rawBelow)
	l.accepts, l.bulk, l.winStart = 0, 0, now
	switch {
	case want && !raw:
		l.detach()
	case !want && raw:
		if err := l.attach(); err != nil {
			// Out of descriptors: epoll_wait serves as well.
			l.p.log.Debug("event loop stays out of the netpoller", "err", err)
		}
	}
}

// attach puts a duplicate of the epoll fd in the netpoller; the loop
// parks there from its next wait. The duplicate lets detach take it out
// again by closing it, while epfd stays open.
func (l *loop) attach() error {
	fd, err := unix.FcntlInt(uintptr(l.epfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("dup epoll fd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return err
	}
	l.file, l.rc, l.armed = f, rc, 0
	return nil
}

// detach takes the epoll fd out of the netpoller; the loop waits in
// epoll_wait from its next wait. Left registered, every event would also
// wake the runtime's poller thread.
func (l *loop) detach() {
	l.file.Close()
	l.file, l.rc = nil, nil
}

// wait returns the next batch of events; none when a timer is due or a
// signal interrupted the wait.
func (l *loop) wait(events []unix.EpollEvent) (int, error) {
	if l.file == nil {
		return l.rawWait(events)
	}
	if next := l.nextTimer(); next != l.armed {
		var want time.Time
		if next != 0 {
			want = time.Now().Add(l.untilTimer(next))
		}
		if err := l.file.SetReadDeadline(want); err != nil {
			return 0, err
		}
		l.armed = next
	}
	l.pollEvs = events
	if err := l.rc.Read(l.pollFn); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Expired deadlines stay expired until set again.
			l.armed = -1
			return 0, nil
		}
		return 0, err
	}
	return l.pollN, l.pollErr
}

// rawWait is wait in epoll_wait: a spin of polls (see spinFor), up to
// holdWait holding the P, then as an ordinary system call.
func (l *loop) rawWait(events []unix.EpollEvent) (int, error) {
	timeout := -1
	if next := l.nextTimer(); next != 0 {
		// Round up: waking a little late is harmless, early is a spin.
		timeout = int(max(0, (l.untilTimer(next)+time.Millisecond-1)/time.Millisecond))
	}
	if timeout != 0 {
		if n, err := l.spin(events); n != 0 || err != 0 {
			return epollResult(n, err)
		}
	}
	if timeout >= 0 && timeout <= holdWait {
		return epollResult(rawEpollWait(l.epfd, events, timeout))
	}
	if n, err := rawEpollWait(l.epfd, events, holdWait); n != 0 || err != 0 {
		return epollResult(n, err)
	}
	if timeout > 0 {
		timeout -= holdWait
	}
	n, err := unix.EpollWait(l.epfd, events, timeout)
	l.parked = true
	if err == unix.EINTR {
		return 0, nil
	}
	return n, err
}

// spin polls the epoll instance for up to spinFor, giving the CPU to
// whatever else is runnable on it between polls.
func (l *loop) spin(events []unix.EpollEvent) (int, unix.Errno) {
	end := time.Now().UnixNano() + int64(spinFor)
	for {
		if n, err := rawEpollWait(l.epfd, events, 0); n != 0 || err != 0 {
			return n, err
		}
		if time.Now().UnixNano() >= end {
			return 0, 0
		}
		rawSchedYield()
	}
}

func epollResult(n int, err unix.Errno) (int, error) {
	if err == unix.EINTR {
		return 0, nil
	}
	return n, errnoErr(err)
}

// poll is the RawConn callback: false parks the loop until the epoll fd
// is readable, i.e. some registered socket has an event.
func (l *loop) poll(uintptr) bool {
	n, err := rawEpollWait(l.epfd, l.pollEvs, 0)
	if err == unix.EINTR {
		l.pollN, l.pollErr = 0, nil
		return true
	}
	l.pollN, l.pollErr = n, errnoErr(err)
	if n == 0 && err == 0 {
		l.parked = true
		return false
	}
	return true
}

// yieldDue reports whether the loop has run for yieldAfter since it last
// parked or yielded, and if so starts counting again from now.
func (l *loop) yieldDue(now int64) bool {
	if l.parked {
		l.parked = false
		l.ranSince = now
		return false
	}
	if now-l.ranSince < yieldAfter {
		return false
	}
	l.ranSince = now
	return true
}
