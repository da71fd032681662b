package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The helper processes (backends, proxies, load generators): ports, start
// and stop by PID, CPU time and RSS from /proc.

func (b *bench) build() error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	cmd := exec.Command("go", "build", "-trimpath", "-o", b.path("hapodproxy"), "./bench/proxy/hapodproxy")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build hapodproxy: %v: %s", err, out)
	}
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func freePorts(ps ...*int) error {
	for _, p := range ps {
		var err error
		if *p, err = freePort(); err != nil {
			return err
		}
	}
	return nil
}

// start runs a long-lived helper process, remembered for cleanup by PID.
func (b *bench) start(name, tag string, env []string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(b.path(filepath.Base(name) + "-" + tag + ".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	b.mu.Lock()
	b.procs = append(b.procs, cmd)
	b.mu.Unlock()
	return cmd, nil
}

func (b *bench) cleanup() {
	b.mu.Lock()
	procs := b.procs
	b.procs = nil
	b.mu.Unlock()
	for _, c := range procs {
		terminate(c)
	}
	if *verbose {
		// hapodproxy's exit summary: dial retries, refusals, accept errors.
		logs, _ := filepath.Glob(b.path("hapodproxy-*.log"))
		for _, f := range logs {
			out, _ := os.ReadFile(f)
			for line := range strings.Lines(string(out)) {
				if strings.HasPrefix(line, "hapodproxy: ") {
					fmt.Fprint(os.Stderr, line)
				}
			}
		}
	}
	if b.dir != "" && !*keep {
		os.RemoveAll(b.dir)
	}
}

func waitPort(port int) error {
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return nil
		}
	}
	return fmt.Errorf("nothing listens on port %d", port)
}

// stop ends one helper process by PID.
func (b *bench) stop(cmd *exec.Cmd) {
	b.mu.Lock()
	b.procs = slices.DeleteFunc(b.procs, func(c *exec.Cmd) bool { return c == cmd })
	b.mu.Unlock()
	terminate(cmd)
}

func terminate(c *exec.Cmd) {
	c.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.Process.Kill()
		<-done
	}
}

// procCPU returns the process's user+system CPU time.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which ends with ')'.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	const hz = 100 // USER_HZ
	return time.Duration(ut+st) * time.Second / hz, nil
}

// procRSS returns the process's resident set size in bytes.
func procRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// measureCPU runs f and returns the proxy's CPU use as a percentage of
// one core over f's wall time.
func (b *bench) measureCPU(p int, f func() error) (float64, error) {
	c0, err := procCPU(b.pid[p])
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := f(); err != nil {
		return 0, err
	}
	wall := time.Since(t0)
	c1, err := procCPU(b.pid[p])
	if err != nil {
		return 0, err
	}
	return 100 * float64(c1-c0) / float64(wall), nil
}

func (b *bench) logf(format string, args ...any) {
	if *verbose {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
}
