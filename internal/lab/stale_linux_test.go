package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestRemoveStaleLabs: a lab whose owner process has exited is torn down,
// one whose owner runs and one without an owner file are left alone.
func TestRemoveStaleLabs(t *testing.T) {
	skipUnlessRoot(t)
	// An owner that is gone: a finished child, recorded while it ran.
	child := exec.Command("sleep", "10")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	dead, err := processID(child.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	_ = child.Process.Kill()
	_ = child.Wait()
	live, err := processID(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	labs := map[string]string{"st0dead": dead, "st0live": live, "st0none": ""}
	for id, owner := range labs {
		ns := namePrefix + id + "-n0"
		if err := ipCmd("netns", "add", ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
				_ = ipCmd("netns", "del", ns)
			}
			release(id)
		})
		if owner != "" {
			if err := os.MkdirAll(ownerDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(ownerDir, id), []byte(owner+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := removeStaleLabs(); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"st0dead": false, "st0live": true, "st0none": true} {
		_, err := os.Stat(filepath.Join("/run/netns", namePrefix+id+"-n0"))
		if got := err == nil; got != want {
			t.Errorf("lab %s: namespace present %v, want %v", id, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(ownerDir, "st0dead")); err == nil {
		t.Errorf("the stale lab's owner file is still there")
	}
}
