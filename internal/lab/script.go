package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
)

// T is what the lab needs from its caller: a *testing.T (any testing.TB)
// satisfies it, and so does a Script, for programs such as the demo.
// The methods mean what they mean in package testing: Fatalf and Skipf
// don't return, Cleanup functions run last-in first-out at the end, and
// Context is canceled just before they run.
type T interface {
	Helper()
	Cleanup(f func())
	TempDir() string
	Context() context.Context
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Failed() bool
}

var _ T = (*Script)(nil)

// Script implements T for a program (`go run`), which has no testing.T:
// a stack of cleanups that Close runs, temporary directories removed at
// the end, and messages written to one writer. Like `go test` without -v,
// it keeps Logf lines to itself until something fails (then they explain
// the failure) unless Verbose is set. SIGINT and SIGTERM run the cleanups
// too, so Ctrl-C leaves no namespace or process behind.
//
// Fatalf and Skipf run the cleanups and end the program with status 1
// (Skipf too: a program that couldn't do its job must not exit 0).
type Script struct {
	// Verbose prints Logf lines as they come instead of only on failure.
	Verbose bool

	w    io.Writer
	exit func(code int) // os.Exit; tests replace it

	ctx    context.Context
	cancel context.CancelFunc
	sigs   chan os.Signal
	done   chan struct{} // closed by Close: ends the signal watcher

	mu       sync.Mutex
	cleanups []func()
	closing  bool // Close has started
	closed   bool // every cleanup has run; later ones run at once
	failed   bool
	logs     []string // Logf lines held back until a failure
	tempRoot string
	code     int // exit status of the first shutdown
	stopping bool
	// interrupted: a signal is ending the script. Failures from then on
	// are its echo (a command killed by the same Ctrl-C) and go unprinted.
	interrupted bool

	closeOnce sync.Once
}

// NewScript returns a Script writing its messages to w. It catches SIGINT
// and SIGTERM until Close: either one runs the cleanups and exits with
// 128 plus the signal's number, as a shell reports a killed command.
func NewScript(w io.Writer) *Script {
	return newScript(w, os.Exit).catchSignals()
}

// newScript is NewScript without the signal handler, with exit injected.
func newScript(w io.Writer, exit func(int)) *Script {
	ctx, cancel := context.WithCancel(context.Background())
	return &Script{w: w, exit: exit, ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// catchSignals starts the SIGINT and SIGTERM handler.
func (s *Script) catchSignals() *Script {
	s.sigs = make(chan os.Signal, 1)
	signal.Notify(s.sigs, syscall.SIGINT, syscall.SIGTERM)
	go s.watchSignals()
	return s
}

func (s *Script) watchSignals() {
	select {
	case sig := <-s.sigs:
		s.printf("\n%v: cleaning up", sig)
		s.mu.Lock()
		s.interrupted = true
		s.mu.Unlock()
		code := 1
		if n, ok := sig.(syscall.Signal); ok {
			code = 128 + int(n)
		}
		s.shutdown(code)
	case <-s.done:
	}
}

// Helper does nothing: a Script reports no file and line.
func (s *Script) Helper() {}

// Cleanup registers f to run at Close, after the functions registered
// later. Once Close has run, f runs at once, so nothing registered late
// (by a goroutine racing an interrupt) is left behind.
func (s *Script) Cleanup(f func()) {
	s.mu.Lock()
	if !s.closed {
		s.cleanups = append(s.cleanups, f)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.run(f)
}

// Close cancels Context, runs the cleanups last-in first-out, removes the
// temporary directories and stops catching signals. Concurrent and later
// calls wait for the first to finish; a cleanup must not call it.
func (s *Script) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		s.cancel()
		for {
			s.mu.Lock()
			if len(s.cleanups) == 0 {
				s.closed = true
				s.mu.Unlock()
				break
			}
			f := s.cleanups[len(s.cleanups)-1]
			s.cleanups = s.cleanups[:len(s.cleanups)-1]
			s.mu.Unlock()
			s.run(f)
		}
		if s.sigs != nil {
			signal.Stop(s.sigs)
		}
		close(s.done)
	})
}

// run calls a cleanup on a goroutine of its own, so that a Fatalf in it
// ends only that cleanup (as in package testing), and a panic in it must
// not skip the others either (the lab's namespaces would stay behind).
func (s *Script) run(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				if s.fail() {
					s.printf("cleanup panicked: %v", r)
				}
			}
		}()
		f()
	}()
	<-done
}

// TempDir makes a new directory under the script's own temporary
// directory, which Close removes after the cleanups (processes writing
// logs there are stopped by then).
func (s *Script) TempDir() string {
	s.mu.Lock()
	root := s.tempRoot
	s.mu.Unlock()
	if root == "" {
		var err error
		if root, err = os.MkdirTemp("", "hapod-lab-"); err != nil {
			s.Fatalf("TempDir: %v", err)
		}
		s.mu.Lock()
		s.tempRoot = root
		s.mu.Unlock()
		s.Cleanup(func() { _ = os.RemoveAll(root) })
	}
	dir, err := os.MkdirTemp(root, "")
	if err != nil {
		s.Fatalf("TempDir: %v", err)
	}
	return dir
}

// Context is canceled when Close starts, before the cleanups run.
func (s *Script) Context() context.Context { return s.ctx }

// Logf prints a line when Verbose or after a failure; otherwise it keeps
// the line for the failure report.
func (s *Script) Logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	s.mu.Lock()
	hold := !s.Verbose && !s.failed
	if hold {
		s.logs = append(s.logs, line)
	}
	quiet := s.interrupted
	s.mu.Unlock()
	if !hold && !quiet {
		s.printf("%s", line)
	}
}

// Errorf prints the message and marks the script failed; it goes on.
// After an interrupt it prints nothing.
func (s *Script) Errorf(format string, args ...any) {
	if s.fail() {
		s.printf(format, args...)
	}
}

// Fatalf prints the message, marks the script failed, runs the cleanups
// and exits with status 1. It does not return.
func (s *Script) Fatalf(format string, args ...any) {
	s.Errorf(format, args...)
	s.shutdown(1)
}

// Skipf prints why the program can't run, runs the cleanups and exits with
// status 1. It does not return.
func (s *Script) Skipf(format string, args ...any) {
	s.printf(format, args...)
	s.shutdown(1)
}

// Failed reports whether Errorf or Fatalf was called.
func (s *Script) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// fail marks the script failed and prints the Logf lines held back so far:
// they tell what led to the failure. It reports whether the failure is
// worth printing: not when an interrupt caused it.
func (s *Script) fail() bool {
	s.mu.Lock()
	held := s.logs
	s.logs = nil
	s.failed = true
	show := !s.interrupted
	s.mu.Unlock()
	if !show {
		return false
	}
	for _, l := range held {
		s.printf("%s", l)
	}
	return true
}

// shutdown runs the cleanups and exits. The first caller's status wins, so
// an interrupt and a Fatalf it provokes (a namespace vanished under the
// program) exit alike. While a Close is under way, the caller only ends its
// goroutine: it is a cleanup that failed, or the program's goroutine racing
// an interrupt, whose handler exits when the cleanups are done. When exit
// returns (a test's), the caller's goroutine ends as after t.FailNow.
func (s *Script) shutdown(code int) {
	s.mu.Lock()
	if !s.stopping {
		s.stopping = true
		s.code = code
	}
	underWay := s.closing && !s.closed
	s.mu.Unlock()
	if underWay {
		runtime.Goexit()
	}
	s.Close()
	s.mu.Lock()
	code = s.code
	s.mu.Unlock()
	s.exit(code)
	runtime.Goexit()
}

// printf writes one line to the script's writer.
func (s *Script) printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = io.WriteString(s.w, msg)
}
