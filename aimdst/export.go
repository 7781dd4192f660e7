package aimdst

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/nbd"
)

// SnapshotExport serves one snapshot image read-only over NBD (the DR test:
// mount a point-in-time copy at the DR site while replication goes on). It
// holds the file open, so a later snapshot with the same label (an atomic
// replace) does not change what a connected client sees.
type SnapshotExport struct {
	f    *os.File
	size int64
}

var _ nbd.Export = (*SnapshotExport)(nil)

// ParseSnapshotName splits "VOLUME/LABEL" and validates both names.
func ParseSnapshotName(s string) (volume, label string, err error) {
	volume, label, ok := strings.Cut(s, "/")
	if !ok {
		return "", "", fmt.Errorf("snapshot %q: want VOLUME/LABEL", s)
	}
	if err := journal.ValidName(volume); err != nil {
		return "", "", fmt.Errorf("snapshot %q: volume: %w", s, err)
	}
	if err := journal.ValidName(label); err != nil {
		return "", "", fmt.Errorf("snapshot %q: label: %w", s, err)
	}
	return volume, label, nil
}

// OpenSnapshotExport opens <snapshotDir>/<volume>/<label>.img read-only,
// holding it (OpenSnapshot) so it is neither deleted nor pruned while
// exported.
func OpenSnapshotExport(snapshotDir, volume, label string) (*SnapshotExport, error) {
	f, err := OpenSnapshot(snapshotDir, volume, label)
	if err != nil {
		return nil, err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("snapshot %s/%s: %w", volume, label, err)
	}
	return &SnapshotExport{f: f, size: size}, nil
}

// Close releases the snapshot file.
func (e *SnapshotExport) Close() error { return e.f.Close() }

// Size is the snapshot's size in bytes.
func (e *SnapshotExport) Size() int64 { return e.size }

// ReadOnly is always true.
func (e *SnapshotExport) ReadOnly() bool { return true }

// ReadAt reads from the snapshot.
func (e *SnapshotExport) ReadAt(p []byte, off int64) error {
	n, err := e.f.ReadAt(p, off)
	if errors.Is(err, io.EOF) && n == len(p) {
		err = nil
	}
	return err
}

// WriteAt is refused (the server refuses writes to read-only exports first).
func (e *SnapshotExport) WriteAt(p []byte, off int64, fua bool) error { return nbd.EPERM }

// WriteZeroes is refused.
func (e *SnapshotExport) WriteZeroes(off, length int64, noHole, fua bool) error { return nbd.EPERM }

// Trim is refused.
func (e *SnapshotExport) Trim(off, length int64) error { return nbd.EPERM }

// Flush has nothing to do.
func (e *SnapshotExport) Flush() error { return nil }

// ServeSnapshot exports the snapshot VOLUME/LABEL read-only on ln until ctx
// ends, under the export name exportName (NBD names follow the volume-name
// rule, so "VOLUME/LABEL" itself cannot be one; "" means LABEL):
// nbd://host:port/LABEL.
func ServeSnapshot(ctx context.Context, ln net.Listener, snapshotDir, name, exportName string, log *slog.Logger) error {
	vol, label, err := ParseSnapshotName(name)
	if err != nil {
		ln.Close()
		return err
	}
	e, err := OpenSnapshotExport(snapshotDir, vol, label)
	if err != nil {
		ln.Close()
		return err
	}
	defer e.Close()
	if log == nil {
		log = slog.Default()
	}
	if exportName == "" {
		exportName = label
	}
	srv := &nbd.Server{Exports: nbd.ExportMap{exportName: e}, Logger: log}
	log.Info("exporting snapshot read-only over NBD", "snapshot", name, "export", exportName,
		"size", e.Size(), "uri", "nbd://"+ln.Addr().String()+"/"+exportName)
	return srv.Serve(ctx, ln)
}
