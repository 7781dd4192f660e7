package aimdst

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/nbd"
)

// ErrNotPromotedExport: a read-write export of a volume that is not
// promoted (it is a replica: only destage writes it).
var ErrNotPromotedExport = errors.New("volume is not promoted: a replica is exported read-write only after aimwan dst promote")

// PromotedExport serves a promoted destination volume read-write over NBD
// (aimwan dst export --rw): the DR site runs the workload on it. Its writes
// are not journaled; to replicate them back, serve the volume with aimwan
// src instead, or initialize the failback (see docs/failover.md).
type PromotedExport struct {
	mu   sync.Mutex // orders Zero's fallback buffer
	v    *osVolume
	size int64
}

var _ nbd.Export = (*PromotedExport)(nil)

// OpenPromotedExport opens the volume at path read-write, after checking
// that bufferDir records its promotion.
func OpenPromotedExport(bufferDir, volume, path string) (*PromotedExport, error) {
	if err := journal.ValidName(volume); err != nil {
		return nil, fmt.Errorf("export %s: %w", volume, err)
	}
	p, err := loadPromotion(filepath.Join(bufferDir, volume))
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", volume, err)
	}
	if p == nil {
		return nil, fmt.Errorf("export %s: %w", volume, ErrNotPromotedExport)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", volume, err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("export %s: %w", volume, err)
	}
	return &PromotedExport{v: &osVolume{f: f}, size: size}, nil
}

// Close releases the volume.
func (e *PromotedExport) Close() error { return e.v.Close() }

// Size is the volume's size.
func (e *PromotedExport) Size() int64 { return e.size }

// ReadOnly is false.
func (e *PromotedExport) ReadOnly() bool { return false }

// ReadAt reads from the volume.
func (e *PromotedExport) ReadAt(p []byte, off int64) error {
	n, err := e.v.f.ReadAt(p, off)
	if errors.Is(err, io.EOF) && n == len(p) {
		err = nil
	}
	return err
}

// WriteAt writes to the volume; fua: durable before it returns.
func (e *PromotedExport) WriteAt(p []byte, off int64, fua bool) error {
	if _, err := e.v.WriteAt(p, off); err != nil {
		return err
	}
	if fua {
		return e.v.Sync()
	}
	return nil
}

// WriteZeroes zeroes the range (a hole unless noHole).
func (e *PromotedExport) WriteZeroes(off, length int64, noHole, fua bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if noHole {
		saved := e.v.noPunch
		e.v.noPunch = true
		defer func() { e.v.noPunch = saved }()
	}
	if err := e.v.Zero(off, length); err != nil {
		return err
	}
	if fua {
		return e.v.Sync()
	}
	return nil
}

// Trim punches a hole.
func (e *PromotedExport) Trim(off, length int64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.v.Zero(off, length)
}

// Flush makes every write durable.
func (e *PromotedExport) Flush() error { return e.v.Sync() }

// ServePromoted exports the promoted volume read-write on ln until ctx ends,
// under the export name volume: nbd://host:port/VOLUME.
func ServePromoted(ctx context.Context, ln net.Listener, bufferDir, volume, path string, log *slog.Logger) error {
	e, err := OpenPromotedExport(bufferDir, volume, path)
	if err != nil {
		ln.Close()
		return err
	}
	defer e.Close()
	if log == nil {
		log = slog.Default()
	}
	srv := &nbd.Server{Exports: nbd.ExportMap{volume: e}, Logger: log}
	log.Warn("exporting a promoted volume read-write over NBD; its writes are not journaled", "volume", volume,
		"path", path, "size", e.Size(), "uri", "nbd://"+ln.Addr().String()+"/"+volume)
	return srv.Serve(ctx, ln)
}
