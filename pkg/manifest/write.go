package manifest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hapod/hapod/internal/inputfile"
)

// Outcome says what Write did.
type Outcome int

// The outcomes of Write.
const (
	Created   Outcome = iota + 1 // there was no manifest
	Updated                      // a different manifest was replaced (force)
	Unchanged                    // the manifest already had these exact bytes
)

func (o Outcome) String() string {
	switch o {
	case Created:
		return "created"
	case Updated:
		return "updated"
	case Unchanged:
		return "unchanged"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// ErrExists is wrapped by the error of Write when a different manifest is
// in place and force is off.
var ErrExists = errors.New("a different hapod manifest exists")

// DiffError is returned when a different manifest is in place and force is
// off. Diff shows what writing would change.
type DiffError struct {
	Path string
	Diff string
}

func (e *DiffError) Error() string {
	return fmt.Sprintf("%s: %v; pass --force to replace it", e.Path, ErrExists)
}

func (e *DiffError) Unwrap() error { return ErrExists }

// Write puts data at dir/hapod.yaml so that kubelet, which watches dir,
// only ever sees a complete file: the bytes go to a dot-file in dir (kubelet
// ignores hidden files), are synced, and become the manifest in one step;
// then the directory is synced. The directory is created if missing.
// Identical content is left alone (Unchanged); different content is
// replaced only with force, otherwise a *DiffError says what would change.
// On error nothing is left behind.
//
// Concurrent writers are serialized by the kernel: a new manifest is
// created with link(2), which fails if the name exists, so of two `hapod
// init` racing with different settings exactly one creates the file and
// the other compares with it like any later run would. Only force
// replaces, with rename(2).
func Write(dir string, data []byte, force bool) (string, Outcome, error) {
	path := filepath.Join(dir, FileName)
	old, exists, err := readExisting(path)
	switch {
	case err != nil:
		return path, 0, err
	case exists && bytes.Equal(old, data):
		return path, Unchanged, nil
	case exists && !force:
		return path, 0, &DiffError{Path: path, Diff: Diff(string(old), string(data))}
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return path, 0, fmt.Errorf("create manifest directory: %w", err)
	}
	tmp, err := writeTemp(dir, data)
	if err != nil {
		return path, 0, fmt.Errorf("write manifest: %w", err)
	}
	defer os.Remove(tmp) // after a link the manifest keeps the bytes; after a rename a no-op
	outcome := Updated
	if !exists {
		outcome = Created
		err = os.Link(tmp, path)
		if errors.Is(err, fs.ErrExist) {
			// Another writer created it since we looked.
			if old, exists, err = readExisting(path); err != nil {
				return path, 0, err
			}
			switch {
			case exists && bytes.Equal(old, data):
				return path, Unchanged, nil
			case exists && !force:
				return path, 0, &DiffError{Path: path, Diff: Diff(string(old), string(data))}
			}
			outcome = Updated
			err = os.Rename(tmp, path)
		}
	} else {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return path, 0, fmt.Errorf("write manifest: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return path, 0, fmt.Errorf("sync manifest directory: %w", err)
	}
	return path, outcome, nil
}

// readExisting reads the manifest at path; a missing one is not an error.
func readExisting(path string) (data []byte, exists bool, err error) {
	data, err = inputfile.Read(context.Background(), path, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("read existing manifest: %w", err)
	}
	return data, true, nil
}

// writeTemp writes data to a new synced dot-file in dir, mode 0600 as
// kubeadm writes its manifests (they may carry paths to secrets), and
// returns its name. On error it leaves nothing behind.
func writeTemp(dir string, data []byte) (string, error) {
	tmp, err := os.CreateTemp(dir, "."+FileName+".*")
	if err != nil {
		return "", err
	}
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Diff returns a line diff of a and b: removed lines start with "-",
// added ones with "+", and unchanged lines are left out.
func Diff(a, b string) string {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	// Longest common subsequence table; manifests are ~100 lines.
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			i, j = i+1, j+1
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			fmt.Fprintf(&out, "-%s\n", x[i])
			i++
		default:
			fmt.Fprintf(&out, "+%s\n", y[j])
			j++
		}
	}
	return out.String()
}
