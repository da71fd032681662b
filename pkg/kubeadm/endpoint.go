package kubeadm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// BackupSuffix is appended to a kubeadm config's name for the copy of its
// original content that WriteEndpoint keeps.
const BackupSuffix = ".hapod-backup"

// WriteEndpoint sets ClusterConfiguration.controlPlaneEndpoint in the file
// at path to ep: `hapod init --vip dhcp` learns the VIP only from its lease
// and kubeadm must use it. Every other byte of the file is kept: the
// endpoint line is replaced, or added after the ClusterConfiguration's kind
// line, or a ClusterConfiguration document is appended. Before the first
// change the original is copied to path+BackupSuffix (an existing backup,
// the true original, is never overwritten); the new file replaces the old
// one atomically, and is parsed back to prove kubeadm will read ep. It
// reports whether the file changed.
func WriteEndpoint(path string, ep netip.AddrPort) (bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	f, err := Parse(data, path)
	if err != nil {
		return false, err
	}
	if s, err := f.Settings(); err == nil && s.EndpointSet && s.Endpoint == ep {
		return false, nil
	}
	updated := setEndpoint(data, ep, f.Version)
	check, err := Parse(updated, path)
	if err != nil {
		return false, fmt.Errorf("%s: setting controlPlaneEndpoint broke the file: %w", path, err)
	}
	if s, err := check.Settings(); err != nil || s.Endpoint != ep {
		return false, fmt.Errorf("%s: could not set ClusterConfiguration.controlPlaneEndpoint to %s (%v)", path, ep, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	backup := path + BackupSuffix
	if _, err := os.Stat(backup); errors.Is(err, fs.ErrNotExist) {
		if err := writeAtomic(backup, data, info.Mode().Perm()); err != nil {
			return false, fmt.Errorf("back up %s: %w", path, err)
		}
	}
	if err := writeAtomic(path, updated, info.Mode().Perm()); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	return true, nil
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
