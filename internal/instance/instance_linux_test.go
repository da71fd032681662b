package instance

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testVIP is an address nobody's hapod uses: abstract sockets need no
// privileges, but they share the test's network namespace with anything
// else running there.
func testVIP() netip.Addr {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xfe, 0xed, 14: byte(rand.Uint32()), 15: byte(rand.Uint32())})
}

func TestSecondAcquireNamesTheHolder(t *testing.T) {
	vip := testVIP()
	lock, err := Acquire(vip)
	if err != nil {
		t.Fatal(err)
	}
	lock.Serve(func() string { return "backup" })

	_, err = Acquire(vip)
	var held *HeldError
	if !errors.As(err, &held) {
		t.Fatalf("second Acquire: %v, want a HeldError", err)
	}
	if held.PID != os.Getpid() || held.VIP != vip {
		t.Errorf("HeldError names pid %d, VIP %s; want this process %d, %s", held.PID, held.VIP, os.Getpid(), vip)
	}
	msg := err.Error()
	for _, want := range []string{fmt.Sprintf("hapod (pid %d) already runs for VIP %s", os.Getpid(), vip), "leaves the VIP alone"} {
		if !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
			t.Errorf("error %q: want one line containing %q", msg, want)
		}
	}

	running, err := List()
	if err != nil || !slices.Contains(running, vip) {
		t.Errorf("List() = %v, %v; want it to contain %s", running, err, vip)
	}

	lock.Release("stopped")
	if c, err := Dial(vip); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Dial after Release: %v, want ErrNotRunning", err)
		if c != nil {
			c.Close()
		}
	}
	again, err := Acquire(vip)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	again.Release("")
}

func TestHandover(t *testing.T) {
	vip := testVIP()
	lock, err := Acquire(vip)
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int32
	stop := make(chan struct{})
	lock.Serve(func() string {
		if asked.Add(1) == 1 {
			close(stop)
		}
		return "active"
	})
	go func() {
		<-stop // the daemon hands over, then releases its lock
		lock.Release("handed the VIP over to 198.18.0.12 in 80ms")
	}()

	c, err := Dial(vip)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.PID != os.Getpid() {
		t.Errorf("Conn.PID = %d, want %d", c.PID, os.Getpid())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	state, outcome, err := c.Handover(ctx)
	if err != nil || state != "active" || outcome != "handed the VIP over to 198.18.0.12 in 80ms" {
		t.Fatalf("Handover() = %q, %q, %v", state, outcome, err)
	}
	if err := WaitGone(ctx, vip); err != nil {
		t.Fatalf("lock still held after the outcome: %v", err)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("handover called %d times, want 1", n)
	}
}

func TestHandoverTimesOut(t *testing.T) {
	vip := testVIP()
	lock, err := Acquire(vip)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release("")
	lock.Serve(func() string { return "active" }) // never finishes
	c, err := Dial(vip)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	state, _, err := c.Handover(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || state != "active" {
		t.Errorf("Handover() = %q, %v; want the accepted state and DeadlineExceeded", state, err)
	}
}

func TestBadRequestIsAnswered(t *testing.T) {
	vip := testVIP()
	lock, err := Acquire(vip)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release("")
	lock.Serve(func() string { t.Error("handover called for a bad request"); return "" })
	c, err := Dial(vip)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.c.Write([]byte("stop\n")); err != nil {
		t.Fatal(err)
	}
	line, err := readLine(c.r)
	if err != nil || !strings.HasPrefix(line, `error unknown request "stop"`) {
		t.Errorf("reply %q, %v", line, err)
	}
}

// An instance that goes away without an outcome (it was stopping anyway,
// as when kubelet stops it) is ErrStopped, not a hang or a bare EOF.
func TestHandoverToAStoppingInstance(t *testing.T) {
	vip := testVIP()
	lock, err := Acquire(vip)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Dial(vip)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lock.Release("") // before it ever served the request
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := c.Handover(ctx); !errors.Is(err, ErrStopped) {
		t.Errorf("Handover() to a stopped instance: %v, want ErrStopped", err)
	}
}

// helperVIPEnv makes the test binary a client that asks VIP for a
// handover (TestOtherUserMayNotStop runs it as another user).
const helperVIPEnv = "HAPOD_INSTANCE_TEST_HANDOVER_VIP"

func TestMain(m *testing.M) {
	if v := os.Getenv(helperVIPEnv); v != "" {
		c, err := Dial(netip.MustParseAddr(v))
		if err == nil {
			_, _, err = c.Handover(context.Background())
		}
		fmt.Println(err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestOtherUserMayNotStop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run a client as another user")
	}
	vip := testVIP()
	lock, err := Acquire(vip)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release("")
	lock.Serve(func() string { t.Error("handover called for uid 65534"); return "" })
	// A copy of this test binary that uid 65534 may run (the build
	// directory is root's alone).
	dir, err := os.MkdirTemp("", "hapod-instance-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	client := filepath.Join(dir, "client")
	if err := os.WriteFile(client, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(client, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperVIPEnv+"="+vip.String())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as uid 65534: %v\n%s", err, out)
	}
	if want := "hapod refused the handover: permission denied: uid 65534 may not stop a hapod running as uid 0"; !strings.Contains(string(out), want) {
		t.Errorf("client as uid 65534 got %q, want %q", out, want)
	}
}
