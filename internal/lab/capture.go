package lab

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Capture is tshark dissecting the frames on the lab's bridge as they pass,
// one line of fields per frame.
type Capture struct {
	fields []string
	cmd    *exec.Cmd
	done   chan struct{}
	err    error // valid once done is closed

	mu     sync.Mutex
	frames []map[string]string
	bad    []string // lines without one value per field
	stderr strings.Builder
}

// CaptureBridge starts tshark on the lab's bridge, in the hub namespace,
// with the BPF capture filter given (e.g. "ip proto 112 or ip6 proto 112"),
// printing the named fields of each frame (tshark -T fields -e NAME), and
// returns once tshark says it is capturing. Frames returns what it has
// dissected so far, so a test waits for the frames it needs instead of for
// a time; Stop ends it.
//
// The bridge sees every frame between the hosts, unicast included: the
// capture sets it promiscuous, and a promiscuous bridge passes each frame it
// forwards up to its own device too. A wire capture shows what the other
// hosts receive.
//
// t.Cleanup kills tshark by PID if the test ends first. A missing tshark
// ends the test with Unavailable.
func (l *Lab) CaptureBridge(t T, filter string, fields ...string) *Capture {
	t.Helper()
	Tool(t, "tshark", "tshark")
	c := &Capture{fields: fields, done: make(chan struct{})}
	// -l: flush each frame's line at once; -n: no name resolution.
	args := []string{"netns", "exec", l.Hub, "tshark", "-n", "-l", "-i", l.Bridge, "-f", filter,
		"-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	c.cmd = exec.Command("ip", args...)
	c.cmd.SysProcAttr = sysProcAttr()
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("tshark: %v", err)
	}
	ready := make(chan struct{})
	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() {
		defer pipes.Done()
		sc := bufio.NewScanner(stderr)
		seen := false
		for sc.Scan() {
			c.mu.Lock()
			c.stderr.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
			if !seen && strings.HasPrefix(sc.Text(), "Capturing on") {
				seen = true
				close(ready)
			}
		}
	}()
	go func() {
		defer pipes.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.add(sc.Text())
		}
	}()
	go func() {
		pipes.Wait() // exec wants the pipes read to their end before Wait
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
	})
	select {
	case <-ready:
	case <-c.done:
		t.Fatalf("tshark on %s exited before capturing: %v\n%s", l.Bridge, c.err, c.log())
	case <-time.After(20 * time.Second):
		t.Fatalf("tshark on %s: not capturing after 20s\n%s", l.Bridge, c.log())
	}
	return c
}

func (c *Capture) add(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	vals := strings.Split(line, "\t")
	if len(vals) != len(c.fields) {
		c.bad = append(c.bad, line)
		return
	}
	f := make(map[string]string, len(c.fields))
	for i, name := range c.fields {
		f[name] = vals[i]
	}
	c.frames = append(c.frames, f)
}

// Frames is every frame dissected so far, in capture order: each field's
// value, "" for a field the frame lacks, several occurrences joined by
// commas.
func (c *Capture) Frames() []map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]string(nil), c.frames...)
}

// Stop ends the capture (SIGTERM) and returns every frame dissected. It
// fails the test when tshark printed a line it could not split into the
// fields or failed otherwise.
func (c *Capture) Stop(t T) []map[string]string {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("tshark: %v", err)
	}
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("tshark still running 10s after SIGTERM\n%s", c.log())
	}
	// tshark exits 0 on SIGTERM; a "signal: terminated" from ip's child
	// is our own stop too.
	if ee, ok := errors.AsType[*exec.ExitError](c.err); c.err != nil && !(ok && ee.ProcessState.Sys().(syscall.WaitStatus).Signal() == syscall.SIGTERM) {
		t.Fatalf("tshark: %v\n%s", c.err, c.log())
	}
	c.mu.Lock()
	bad := c.bad
	c.mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("tshark printed %d lines without %d fields, first %q", len(bad), len(c.fields), bad[0])
	}
	return c.Frames()
}

func (c *Capture) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}
