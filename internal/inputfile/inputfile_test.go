package inputfile

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	os.WriteFile(small, []byte("hello\n"), 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(small, link)
	atLimit := filepath.Join(dir, "at-limit")
	os.WriteFile(atLimit, make([]byte, 1000), 0o600)
	over := filepath.Join(dir, "over")
	os.WriteFile(over, make([]byte, 1001), 0o600)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		want       string // content, or the error's text after "read PATH: "
		is         error
	}{
		{"file", small, "hello\n", nil},
		{"symlink", link, "hello\n", nil},
		{"at the limit", atLimit, strings.Repeat("\x00", 1000), nil},
		{"over the limit", over, "file too large: hapod reads at most 1000 bytes", ErrTooLarge},
		{"directory", dir, "not a regular file (a directory)", ErrNotRegular},
		{"fifo without a writer", fifo, "not a regular file (a FIFO)", ErrNotRegular},
		{"character device", "/dev/zero", "not a regular file (a character device)", ErrNotRegular},
		{"missing", filepath.Join(dir, "missing"), "no such file or directory", fs.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			var data []byte
			var err error
			go func() {
				defer close(done)
				data, err = Read(context.Background(), tc.path, 1000)
			}()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("Read(%s) blocked", tc.path)
			}
			if tc.is == nil {
				if err != nil || string(data) != tc.want {
					t.Fatalf("Read = %q, %v; want %q", data, err, tc.want)
				}
				return
			}
			var pe *fs.PathError
			if !errors.Is(err, tc.is) || !errors.As(err, &pe) || pe.Path != tc.path || !strings.HasSuffix(err.Error(), tc.want) {
				t.Fatalf("Read = %v; want a *fs.PathError for %s ending %q (errors.Is %v)", err, tc.path, tc.want, tc.is)
			}
		})
	}
}

// TestReadGrowing: a file reporting a size within the limit but holding
// more (a /proc file says 0; a file may grow) is still capped.
func TestReadGrowing(t *testing.T) {
	_, err := Read(context.Background(), "/proc/self/maps", 16)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Read(/proc/self/maps, 16) = %v, want ErrTooLarge", err)
	}
	if data, err := Read(context.Background(), "/proc/self/maps", 0); err != nil || len(data) == 0 {
		t.Fatalf("Read(/proc/self/maps) = %d bytes, %v", len(data), err)
	}
}

func TestReadCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("x"), 0o600)
	if _, err := Read(ctx, p, 0); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), p) {
		t.Fatalf("Read with a cancelled context = %v, want context.Canceled naming %s", err, p)
	}
}

func TestDefaultLimit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(p, make([]byte, MaxSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(context.Background(), p, 0); err == nil || !strings.HasSuffix(err.Error(), "file too large: hapod reads at most 4 MiB") {
		t.Fatalf("Read of 4 MiB + 1 = %v", err)
	}
}
