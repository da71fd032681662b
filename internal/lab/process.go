package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// ErrWaitTimeout is returned by Process.Wait when the process is still
// running at the timeout.
var ErrWaitTimeout = errors.New("lab: process still running")

// Process is a command running in the background inside a node's namespace.
// Its stdout and stderr go to a log file in the test's temporary directory.
type Process struct {
	name    string
	node    *Node
	pid     int
	proc    *os.Process
	logPath string
	done    chan struct{}
	err     error // valid once done is closed
}

// logTailLines is how much of a process's log is printed when a test fails.
const logTailLines = 60

// Start starts name inside the node's namespace. In t.Cleanup the process is
// killed by PID with SIGKILL and waited for; when the test failed, the tail
// of its log is printed. The process also gets SIGKILL if the thread that
// started it dies (Pdeathsig), so a crashed or timed-out test binary doesn't
// leave a daemon holding a VIP.
func (n *Node) Start(t T, name string, args ...string) *Process {
	t.Helper()
	return n.start(t, name, n.Command(context.Background(), name, args...))
}

// StartNetOnly is Start entering only the node's network namespace
// (nsenter --net), so the process sees the host's /sys and its cgroup
// tree, which a container runtime needs (`ip netns exec` remounts /sys).
func (n *Node) StartNetOnly(t T, name string, args ...string) *Process {
	t.Helper()
	return n.start(t, name, exec.Command("nsenter", append([]string{"--net=" + n.NetNSPath(), name}, args...)...))
}

func (n *Node) start(t T, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), n.Name+"-"+logName(name)+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	defer f.Close()
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: start %s: %v", n.Name, name, err)
	}
	p := &Process{name: name, node: n, pid: cmd.Process.Pid, proc: cmd.Process, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.proc.Kill()
		if err := p.Wait(10 * time.Second); errors.Is(err, ErrWaitTimeout) {
			t.Errorf("%s: %s (pid %d) survived SIGKILL", n.Name, name, p.pid)
		}
		if t.Failed() {
			t.Logf("%s: last lines of %s log (%s):\n%s", n.Name, name, logPath, tail(p.Log(), logTailLines))
		}
	})
	return p
}

// Pid is the process's ID.
func (p *Process) Pid() int { return p.pid }

// Signal sends sig to the process; os.ErrProcessDone once it has exited.
// It goes through os.Process (a pidfd on Linux), so a reaped process's
// recycled PID is never hit.
func (p *Process) Signal(sig os.Signal) error { return p.proc.Signal(sig) }

// Wait waits up to timeout for the process to exit and returns its exit
// error (nil for status 0), or ErrWaitTimeout.
func (p *Process) Wait(timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.err
	case <-timer.C:
		return fmt.Errorf("%s: %s (pid %d): %w after %v", p.node.Name, p.name, p.pid, ErrWaitTimeout, timeout)
	}
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Log is everything the process wrote to stdout and stderr so far.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(log %s: %v)", p.logPath, err)
	}
	return string(b)
}

// LogPath is the process's log file.
func (p *Process) LogPath() string { return p.logPath }

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// logName makes a file name from a command name (which may be a path).
func logName(cmd string) string {
	return unsafeName.ReplaceAllString(filepath.Base(cmd), "_")
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
