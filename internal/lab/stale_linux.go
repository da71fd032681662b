package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ownerDir holds one file per lab naming the process that built it, so a
// later run can tell the labs of a killed test (SIGKILL, a stopped CI job:
// no cleanup ran) from those of tests running right now.
const ownerDir = "/run/hapod-lab"

// processID is a PID with its start time (field 22 of /proc/PID/stat), so a
// recycled PID does not pass for the lab's owner.
func processID(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	// Fields after the name start at field 3 (state); start time is 22.
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return "", fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return fmt.Sprintf("%d %s", pid, f[19]), nil
}

// claim records this process as the owner of lab id.
func claim(id string) error {
	me, err := processID(os.Getpid())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(ownerDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(ownerDir, id), []byte(me+"\n"), 0o644)
}

// release forgets lab id's owner.
func release(id string) { _ = os.Remove(filepath.Join(ownerDir, id)) }

// ownerAlive reports whether the process that built lab id still runs. A
// lab without an owner file is left alone (built by another version of
// this package, or being built right now).
func ownerAlive(id string) bool {
	b, err := os.ReadFile(filepath.Join(ownerDir, id))
	if err != nil {
		return true
	}
	var pid int
	if _, err := fmt.Sscanf(string(b), "%d", &pid); err != nil {
		return false
	}
	now, err := processID(pid)
	return err == nil && now == strings.TrimSpace(string(b))
}

// staleLabs lists the IDs of labs in /run/netns whose owner is gone.
func staleLabs() []string {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var ids []string
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), namePrefix)
		if !ok {
			continue
		}
		id, _, ok := strings.Cut(rest, "-")
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		if !ownerAlive(id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// removeStaleLabs tears down the labs of killed tests: their processes by
// PID, then their namespaces.
func removeStaleLabs() error {
	for _, id := range staleLabs() {
		entries, err := os.ReadDir("/run/netns")
		if err != nil {
			return err
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), namePrefix+id+"-") {
				killNamespacePids(e.Name())
				// Another test binary may be removing it too.
				err := ipCmd("netns", "del", e.Name())
				if _, serr := os.Stat(filepath.Join("/run/netns", e.Name())); err != nil && serr == nil {
					return fmt.Errorf("stale lab %s: %w", id, err)
				}
			}
		}
		release(id)
	}
	return nil
}
