// Package inputfile reads the files hapod's commands take as input (a
// kubeadm config, the VRRP password, the health CA bundle, an existing
// manifest): regular files only, at most MaxSize bytes, and never
// blocking, so that a wrong path (/dev/zero, a FIFO, a huge log) fails at
// once with an error naming the file instead of exhausting memory or
// hanging past Ctrl-C.
package inputfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// MaxSize is the largest input file hapod reads: a kubeadm config is a
// few KiB, a CA bundle rarely 200 KiB.
const MaxSize = 4 << 20

// Errors wrapped in the *fs.PathError Read returns. Test them with
// errors.Is.
var (
	// ErrTooLarge: the file holds more than the limit.
	ErrTooLarge = errors.New("file too large")
	// ErrNotRegular: a directory, device, FIFO or socket, not a file.
	ErrNotRegular = errors.New("not a regular file")
)

// chunk is how much Read takes between two looks at ctx.
const chunk = 64 << 10

// Read returns the content of the regular file at path, at most limit
// bytes (MaxSize when limit is 0). Symbolic links are followed. Anything
// but a regular file is refused before it is read: a FIFO is opened
// without waiting for a writer (O_NONBLOCK) and a device is never
// opened. Read stops when ctx ends. Errors are *fs.PathError naming path.
func Read(ctx context.Context, path string, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = MaxSize
	}
	if err := ctx.Err(); err != nil {
		return nil, &fs.PathError{Op: "read", Path: path, Err: err}
	}
	// Stat before open: opening some devices has side effects (a tape
	// rewinds, a tty becomes controlling).
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := check(path, info, limit); err != nil {
		return nil, err
	}
	// The path may have been replaced since: O_NONBLOCK keeps a FIFO
	// from blocking the open, and the opened file is checked again.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if info, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := check(path, info, limit); err != nil {
		return nil, err
	}
	// The size was checked, but a file may grow while it is read, and
	// /proc files say 0: read on past the limit to know.
	var buf bytes.Buffer
	buf.Grow(int(min(info.Size(), limit)) + 1)
	for {
		if err := ctx.Err(); err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		_, err := io.CopyN(&buf, f, chunk)
		if int64(buf.Len()) > limit {
			return nil, tooLarge(path, limit)
		}
		if errors.Is(err, io.EOF) {
			return buf.Bytes(), nil
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
	}
}

func check(path string, info fs.FileInfo, limit int64) error {
	if !info.Mode().IsRegular() {
		return &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, kind(info.Mode()))}
	}
	if info.Size() > limit {
		return tooLarge(path, limit)
	}
	return nil
}

func tooLarge(path string, limit int64) error {
	return &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: hapod reads at most %s", ErrTooLarge, size(limit))}
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "mode " + m.String()
}

func size(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
