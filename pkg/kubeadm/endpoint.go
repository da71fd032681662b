package kubeadm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/hapod/hapod/internal/inputfile"
)

// BackupSuffix is appended to a kubeadm config's name for the copy of its
// original content that WriteEndpoint keeps.
const BackupSuffix = ".hapod-backup"

// WriteEndpoint sets ClusterConfiguration.controlPlaneEndpoint in the file
// at path to ep: PlanEndpoint, then Apply. It reports whether the file
// changed.
func WriteEndpoint(ctx context.Context, path string, ep netip.AddrPort) (bool, error) {
	e, err := PlanEndpoint(ctx, path, ep)
	if err != nil || e == nil {
		return false, err
	}
	return true, e.Apply()
}

// An EndpointEdit is a checked, not yet written change of a kubeadm
// config's ClusterConfiguration.controlPlaneEndpoint: `hapod init --vip
// dhcp` learns the VIP only from its lease and kubeadm must use it. The
// edit is planned while hapod checks everything else, applied just before
// the manifest is written, and undone if that write fails, so a failing
// run leaves the file as it was.
type EndpointEdit struct {
	// Path is the kubeadm config.
	Path string
	// Endpoint is the controlPlaneEndpoint the edit sets.
	Endpoint netip.AddrPort

	orig, updated []byte
	mode          fs.FileMode
	backupMade    bool // by Apply; Undo removes it
}

// PlanEndpoint reads the file at path and prepares setting its
// controlPlaneEndpoint to ep, writing nothing. Every other byte of the
// file is kept: the endpoint line is replaced, or added after the
// ClusterConfiguration's kind line, or a ClusterConfiguration document is
// appended; the result is parsed back to prove kubeadm will read ep. It
// returns nil when the file already says ep.
func PlanEndpoint(ctx context.Context, path string, ep netip.AddrPort) (*EndpointEdit, error) {
	data, err := inputfile.Read(ctx, path, 0)
	if err != nil {
		return nil, fmt.Errorf("kubeadm config: %w", err) // the *PathError names the file
	}
	f, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	if s, err := f.Settings(); err == nil && s.EndpointSet && s.EndpointField == fieldEndpoint && s.Endpoint == ep {
		return nil, nil
	}
	updated := setEndpoint(data, ep, f.Version)
	check, err := Parse(updated, path)
	if err != nil {
		return nil, fmt.Errorf("%s: setting controlPlaneEndpoint broke the file: %w", path, err)
	}
	if s, err := check.Settings(); err != nil || s.Endpoint != ep {
		return nil, fmt.Errorf("%s: could not set %s to %s (%v)", path, fieldEndpoint, ep, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	return &EndpointEdit{Path: path, Endpoint: ep, orig: data, updated: updated, mode: info.Mode().Perm()}, nil
}

// Backup is where Apply keeps the original: an existing backup, the true
// original, is never overwritten.
func (e *EndpointEdit) Backup() string { return e.Path + BackupSuffix }

// Apply writes the edit: the original goes to Backup unless one exists,
// and the new content replaces the file atomically. It refuses a file
// changed since PlanEndpoint read it.
func (e *EndpointEdit) Apply() error {
	// Not interruptible: Apply and Undo must finish what they start.
	now, err := inputfile.Read(context.Background(), e.Path, 0)
	if err != nil {
		return fmt.Errorf("kubeadm config: %w", err)
	}
	if !bytes.Equal(now, e.orig) {
		return fmt.Errorf("%s: changed while hapod was checking it; run again", e.Path)
	}
	if _, err := os.Stat(e.Backup()); errors.Is(err, fs.ErrNotExist) {
		if err := writeAtomic(e.Backup(), e.orig, e.mode); err != nil {
			return fmt.Errorf("back up %s: %w", e.Path, err)
		}
		e.backupMade = true
	}
	if err := writeAtomic(e.Path, e.updated, e.mode); err != nil {
		e.removeBackup()
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	return nil
}

// Undo puts the original content back and removes a backup Apply made.
// A file changed since Apply is left alone.
func (e *EndpointEdit) Undo() error {
	if now, err := inputfile.Read(context.Background(), e.Path, 0); err != nil || !bytes.Equal(now, e.updated) {
		return fmt.Errorf("%s: changed since hapod set its controlPlaneEndpoint; not restored (the original is in %s)", e.Path, e.Backup())
	}
	if err := writeAtomic(e.Path, e.orig, e.mode); err != nil {
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	e.removeBackup()
	return nil
}

func (e *EndpointEdit) removeBackup() {
	if e.backupMade {
		os.Remove(e.Backup())
		e.backupMade = false
	}
}

// setEndpoint edits the YAML stream line by line, so comments and layout
// survive (a decode and re-encode would lose them).
func setEndpoint(data []byte, ep netip.AddrPort, version string) []byte {
	line := fmt.Sprintf("controlPlaneEndpoint: %q\n", ep.String())
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	sc.Split(scanLinesKeepEnd)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	// Find the ClusterConfiguration document: [start, end) line indexes.
	start, end, kindLine := -1, len(lines), -1
	docStart := 0
	for i, l := range lines {
		if isSeparator([]byte(l)) {
			if start >= 0 {
				end = i
				break
			}
			docStart = i + 1
			continue
		}
		if topLevelValue(l, "kind") == KindCluster {
			start, kindLine = docStart, i
		}
	}
	if start < 0 {
		var b strings.Builder
		b.WriteString(string(data))
		if len(data) > 0 && !bytes.HasSuffix(data, []byte("\n")) {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "---\napiVersion: %s/%s\nkind: %s\n%s", Group, version, KindCluster, line)
		return []byte(b.String())
	}
	for i := start; i < end; i++ {
		if strings.HasPrefix(lines[i], "controlPlaneEndpoint:") {
			lines[i] = line
			return []byte(strings.Join(lines, ""))
		}
	}
	if !strings.HasSuffix(lines[kindLine], "\n") {
		lines[kindLine] += "\n"
	}
	lines = append(lines[:kindLine+1], append([]string{line}, lines[kindLine+1:]...)...)
	return []byte(strings.Join(lines, ""))
}

// topLevelValue returns the value of a top-level "key: value" line.
func topLevelValue(line, key string) string {
	v, ok := strings.CutPrefix(line, key+":")
	if !ok {
		return ""
	}
	v, _, _ = strings.Cut(v, "#")
	return strings.Trim(strings.TrimSpace(v), `"'`)
}

func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
