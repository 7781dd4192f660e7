package nbd

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// fileExport is a file-backed Export for tests. It fails the test (via
// outOfRange) if the server ever passes a request outside the volume.
type fileExport struct {
	f        *os.File
	size     int64
	readOnly bool

	mu         sync.Mutex
	outOfRange []string
	flushes    int
	trims      int
	zeroes     int
	fuas       int
}

var _ Export = (*fileExport)(nil)

func newFileExport(t testing.TB, dir string, size int64) *fileExport {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "vol.img"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &fileExport{f: f, size: size}
}

func (e *fileExport) inRange(what string, off, n int64) bool {
	if off < 0 || n < 0 || off+n > e.size {
		e.mu.Lock()
		e.outOfRange = append(e.outOfRange, fmt.Sprintf("%s %d+%d", what, off, n))
		e.mu.Unlock()
		return false
	}
	return true
}

func (e *fileExport) Size() int64    { return e.size }
func (e *fileExport) ReadOnly() bool { return e.readOnly }

func (e *fileExport) ReadAt(p []byte, off int64) error {
	if !e.inRange("read", off, int64(len(p))) {
		return EINVAL
	}
	_, err := e.f.ReadAt(p, off)
	return err
}

func (e *fileExport) WriteAt(p []byte, off int64, fua bool) error {
	if !e.inRange("write", off, int64(len(p))) || e.readOnly {
		return EINVAL
	}
	if _, err := e.f.WriteAt(p, off); err != nil {
		return err
	}
	if fua {
		e.mu.Lock()
		e.fuas++
		e.mu.Unlock()
		return e.f.Sync()
	}
	return nil
}

func (e *fileExport) WriteZeroes(off, n int64, noHole, fua bool) error {
	if !e.inRange("zero", off, n) || e.readOnly {
		return EINVAL
	}
	e.mu.Lock()
	e.zeroes++
	e.mu.Unlock()
	mode := uint32(unix.FALLOC_FL_ZERO_RANGE)
	if !noHole {
		mode = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE
	}
	if err := unix.Fallocate(int(e.f.Fd()), mode, off, n); err != nil {
		// Fallback: write zeros.
		z := make([]byte, min(n, 1<<20))
		for done := int64(0); done < n; {
			k := min(int64(len(z)), n-done)
			if _, err := e.f.WriteAt(z[:k], off+done); err != nil {
				return err
			}
			done += k
		}
	}
	return nil
}

func (e *fileExport) Trim(off, n int64) error {
	if !e.inRange("trim", off, n) || e.readOnly {
		return EINVAL
	}
	e.mu.Lock()
	e.trims++
	e.mu.Unlock()
	// NBD leaves trimmed content unspecified; punching is what a file would do.
	return unix.Fallocate(int(e.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

func (e *fileExport) Flush() error {
	e.mu.Lock()
	e.flushes++
	e.mu.Unlock()
	return e.f.Sync()
}

func (e *fileExport) checkInRange(t *testing.T) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.outOfRange) > 0 {
		t.Errorf("server passed out-of-range requests to the export: %v", e.outOfRange)
	}
}

// startServer serves exports on loopback until the test ends; it returns
// host:port.
func startServer(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}
