package membership

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// MaxFileMembers caps the members a state file may hold, so a corrupt or
// hostile file cannot make hapod health-check thousands of addresses.
const MaxFileMembers = 64

// fileHeader is the first line of a state file; it names the format.
const fileHeader = "# hapod members v1"

// ErrFormat is wrapped by every error about a state file's contents.
var ErrFormat = errors.New("membership: bad state file")

// Marshal returns the state file holding addrs: the header line, then one
// HOST:PORT per line, sorted, without duplicates.
func Marshal(addrs []netip.AddrPort) []byte {
	sorted := slices.Clone(addrs)
	slices.SortFunc(sorted, netip.AddrPort.Compare)
	sorted = slices.Compact(sorted)
	var b bytes.Buffer
	b.WriteString(fileHeader + "\n")
	for _, a := range sorted {
		if a.IsValid() {
			b.WriteString(a.String() + "\n")
		}
	}
	return b.Bytes()
}

// Parse reads a state file written by Marshal: the header line, then one
// HOST:PORT per line. Blank lines and lines starting with # are skipped.
// Addresses come back sorted, without duplicates.
func Parse(data []byte) ([]netip.AddrPort, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	if !sc.Scan() || strings.TrimSpace(sc.Text()) != fileHeader {
		return nil, fmt.Errorf("%w: first line is not %q", ErrFormat, fileHeader)
	}
	var out []netip.AddrPort
	for line := 2; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		a, err := netip.ParseAddrPort(s)
		if err != nil || a.Port() == 0 || a.Addr().Zone() != "" || a.Addr().Is4In6() {
			return nil, fmt.Errorf("%w: line %d: %q is not an IP:PORT", ErrFormat, line, s)
		}
		out = append(out, a)
		if len(out) > MaxFileMembers {
			return nil, fmt.Errorf("%w: more than %d members", ErrFormat, MaxFileMembers)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return slices.Compact(out), nil
}

// Load reads the state file at path. A missing file is an empty set, not
// an error: the first run has none.
func Load(path string) ([]netip.AddrPort, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the member state %s: %w", path, err)
	}
	addrs, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return addrs, nil
}

// Save writes addrs to path atomically: a temporary file in the same
// directory, synced, renamed over path, and the directory synced, so a
// crash or power loss leaves the old file or the new one, never half of
// one. The directory is created if missing.
func Save(path string, addrs []netip.AddrPort) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create the state directory %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write the member state in %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing left to remove
	_, err = tmp.Write(Marshal(addrs))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write the member state %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // durability of the rename; the data is in place
		d.Close()
	}
	return nil
}

// FileName is the state file's name in the state directory for a VIP:
// one file per VIP, as there is one hapod per VIP per host.
func FileName(vip netip.Addr) string {
	return "members-" + strings.ReplaceAll(vip.String(), ":", "_") + ".txt"
}
