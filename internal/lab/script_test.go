package lab

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// A *testing.T is a T: the e2e tests pass theirs.
var _ T = (*testing.T)(nil)

// syncBuffer is a bytes.Buffer safe for the Script's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// exitRecorder stands in for os.Exit.
type exitRecorder struct {
	mu    sync.Mutex
	codes []int
}

func (e *exitRecorder) exit(code int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.codes = append(e.codes, code)
}

func (e *exitRecorder) got() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.codes)
}

// onOwnGoroutine runs f as a program's main goroutine would, and reports
// whether f returned (false when it ended with runtime.Goexit, as Fatalf
// makes it).
func onOwnGoroutine(f func()) (returned bool) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
		returned = true
	}()
	<-done
	return returned
}

func TestScriptCleanupOrder(t *testing.T) {
	var out syncBuffer
	var ex exitRecorder
	s := newScript(&out, ex.exit)
	var order []string
	dir := s.TempDir()
	s.Cleanup(func() { order = append(order, "first") })
	s.Cleanup(func() {
		if s.Context().Err() == nil {
			t.Error("Context not canceled before the cleanups")
		}
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("TempDir removed before a cleanup registered after it: %v", err)
		}
		order = append(order, "second")
	})
	s.Cleanup(func() { order = append(order, "third") })
	if s.Context().Err() != nil {
		t.Fatal("Context canceled before Close")
	}
	s.Close()
	if want := []string{"third", "second", "first"}; !slices.Equal(order, want) {
		t.Errorf("cleanups ran %v, want %v", order, want)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("TempDir %s still there after Close: %v", dir, err)
	}
	s.Close() // a second Close runs nothing again
	if len(order) != 3 {
		t.Errorf("second Close ran cleanups again: %v", order)
	}
	// Registered after Close (a goroutine racing an interrupt): runs at once.
	s.Cleanup(func() { order = append(order, "late") })
	if order[len(order)-1] != "late" {
		t.Errorf("a cleanup registered after Close didn't run: %v", order)
	}
	if s.Failed() || len(ex.got()) != 0 || out.String() != "" {
		t.Errorf("clean run: failed %v, exits %v, output %q", s.Failed(), ex.got(), out.String())
	}
}

func TestScriptTempDirsDistinct(t *testing.T) {
	s := newScript(&syncBuffer{}, (&exitRecorder{}).exit)
	defer s.Close()
	a, b := s.TempDir(), s.TempDir()
	if a == b {
		t.Fatalf("TempDir returned %s twice", a)
	}
	for _, d := range []string{a, b} {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			t.Errorf("TempDir %s: %v", d, err)
		}
	}
}

func TestScriptFatalf(t *testing.T) {
	var out syncBuffer
	var ex exitRecorder
	s := newScript(&out, ex.exit)
	var cleaned, exitedBeforeCleanup bool
	s.Cleanup(func() {
		cleaned = true
		exitedBeforeCleanup = len(ex.got()) != 0
	})
	s.Logf("held back until a failure")
	returned := onOwnGoroutine(func() { s.Fatalf("boom %d", 42) })
	if returned {
		t.Error("Fatalf returned")
	}
	if !cleaned || exitedBeforeCleanup {
		t.Errorf("cleanup ran: %v, after exit: %v; want it run before exit", cleaned, exitedBeforeCleanup)
	}
	if got := ex.got(); !slices.Equal(got, []int{1}) {
		t.Errorf("exit codes %v, want [1]", got)
	}
	if !s.Failed() {
		t.Error("Failed() = false after Fatalf")
	}
	if want := "held back until a failure\nboom 42\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

func TestScriptSkipf(t *testing.T) {
	var out syncBuffer
	var ex exitRecorder
	s := newScript(&out, ex.exit)
	s.Logf("not shown: skipping is no failure")
	cleaned := false
	s.Cleanup(func() { cleaned = true })
	if onOwnGoroutine(func() { s.Skipf("the demo needs root: sudo make demo") }) {
		t.Error("Skipf returned")
	}
	if got := ex.got(); !slices.Equal(got, []int{1}) || !cleaned || s.Failed() {
		t.Errorf("exit codes %v (want [1]), cleaned %v, failed %v", got, cleaned, s.Failed())
	}
	if want := "the demo needs root: sudo make demo\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

func TestScriptLogf(t *testing.T) {
	var out syncBuffer
	s := newScript(&out, (&exitRecorder{}).exit)
	s.Logf("one")
	if out.String() != "" {
		t.Errorf("Logf printed %q before any failure", out.String())
	}
	s.Errorf("two")
	s.Logf("three")
	if want := "one\ntwo\nthree\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}

	var vout syncBuffer
	v := newScript(&vout, (&exitRecorder{}).exit)
	v.Verbose = true
	v.Logf("at once")
	if want := "at once\n"; vout.String() != want {
		t.Errorf("verbose output %q, want %q", vout.String(), want)
	}
}

// A cleanup that panics or calls Fatalf ends only itself; the others run,
// and no exit happens from inside Close.
func TestScriptFailingCleanups(t *testing.T) {
	var out syncBuffer
	var ex exitRecorder
	s := newScript(&out, ex.exit)
	var ran []string
	s.Cleanup(func() { ran = append(ran, "last") })
	s.Cleanup(func() { panic("oops") })
	s.Cleanup(func() {
		s.Fatalf("cleanup failed")
		ran = append(ran, "after Fatalf")
	})
	s.Close()
	if want := []string{"last"}; !slices.Equal(ran, want) {
		t.Errorf("ran %v, want %v", ran, want)
	}
	if len(ex.got()) != 0 {
		t.Errorf("exit called from inside Close: %v", ex.got())
	}
	if !s.Failed() || !strings.Contains(out.String(), "cleanup failed") || !strings.Contains(out.String(), "panicked: oops") {
		t.Errorf("failed %v, output %q", s.Failed(), out.String())
	}
}

// SIGTERM runs the cleanups and exits 128+15, as a shell reports it.
func TestScriptSignal(t *testing.T) {
	var out syncBuffer
	exited := make(chan int, 1)
	s := newScript(&out, func(code int) { exited <- code }).catchSignals()
	cleaned := make(chan struct{})
	s.Cleanup(func() { close(cleaned) })
	// What the interrupt broke (a command killed by the same Ctrl-C) is
	// no news: it goes unprinted.
	s.Cleanup(func() { s.Errorf("echo of the interrupt") })
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := <-exited; code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit code %d, want %d", code, 128+int(syscall.SIGTERM))
	}
	select {
	case <-cleaned:
	default:
		t.Error("exited before the cleanups ran")
	}
	if out.String() != "\nterminated: cleaning up\n" {
		t.Errorf("output %q", out.String())
	}
}
