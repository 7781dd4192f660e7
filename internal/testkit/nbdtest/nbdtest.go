// Package nbdtest holds the NBD test helpers that several packages' tests
// share: an in-memory export that counts what it served, and a loopback
// server for it. (A subpackage of testkit, so that testkit itself does not
// import nbd and nbd's own tests may keep using testkit.)
package nbdtest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/aimwan/aimwan/nbd"
)

// Counts are the requests a MemExport served.
type Counts struct {
	Writes, Zeroes, Trims, Flushes int
}

// MemExport is an in-memory nbd.Export of a fixed size that counts the
// requests it served. It trusts the server to have checked every range.
type MemExport struct {
	mu     sync.Mutex
	data   []byte
	counts Counts
}

var _ nbd.Export = (*MemExport)(nil)

// NewMemExport returns an export of size zero bytes.
func NewMemExport(size int64) *MemExport { return &MemExport{data: make([]byte, size)} }

// Bytes returns a copy of the export's content.
func (m *MemExport) Bytes() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.data...)
}

// Counts returns the requests served so far.
func (m *MemExport) Counts() Counts {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts
}

// Size implements nbd.Export.
func (m *MemExport) Size() int64 { return int64(len(m.data)) }

// ReadOnly implements nbd.Export: a MemExport is writable.
func (m *MemExport) ReadOnly() bool { return false }

// ReadAt implements nbd.Export.
func (m *MemExport) ReadAt(p []byte, off int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	copy(p, m.data[off:])
	return nil
}

// WriteAt implements nbd.Export.
func (m *MemExport) WriteAt(p []byte, off int64, fua bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	copy(m.data[off:], p)
	m.counts.Writes++
	return nil
}

// WriteZeroes implements nbd.Export.
func (m *MemExport) WriteZeroes(off, length int64, noHole, fua bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.data[off : off+length])
	m.counts.Zeroes++
	return nil
}

// Trim implements nbd.Export: the range reads back as zeros.
func (m *MemExport) Trim(off, length int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.data[off : off+length])
	m.counts.Trims++
	return nil
}

// Flush implements nbd.Export.
func (m *MemExport) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counts.Flushes++
	return nil
}

// Serve serves exports with the project's NBD server on a loopback port
// until the test ends, and returns its address.
func Serve(t testing.TB, exports nbd.Exports) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &nbd.Server{Exports: exports, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); ln.Close(); <-done })
	return ln.Addr().String()
}
