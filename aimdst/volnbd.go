package aimdst

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/aimwan/aimwan/internal/durable"
	"github.com/aimwan/aimwan/nbd"
)

// An NBD volume is a destination volume served by an NBD server (qemu-nbd
// over a qcow2 or a Ceph RBD image, nbdkit, another aimwan...), named by an
// NBD URI. Destage holds one connection while it has files to apply (one
// handshake, not one per journal file) and closes it when it is idle, which
// frees the client slot of a server that takes one client (qemu-nbd's
// default). Any error closes it: the retry dials again, so a server that
// restarted is simply reached again, and a failure on the way is a volume
// error like any other (offline, retried from the cursor; see Cursor for why
// replaying is safe). Sync is
// NBD_CMD_FLUSH; Zero is NBD_CMD_WRITE_ZEROES (writes of zeros where the
// export lacks it; never TRIM, whose result is undefined). Requests are
// aligned to the export's minimum block size by reading and rewriting the
// partial blocks at the edges.

// errNBDUnreachable marks an NBD volume whose server could not be reached or
// refused the handshake.
var errNBDUnreachable = errors.New("nbd server unreachable")

// nbdDialer is how NBD volumes are reached.
var nbdDialer = nbd.Dialer{}

// nbdVolume is a destination volume on an NBD export.
type nbdVolume struct {
	c     *nbd.Client
	align int64  // the export's minimum block size
	zeros []byte // zero bytes for exports without WRITE_ZEROES, and for edges
}

var _ volumeFile = (*nbdVolume)(nil)

// openNBDVolume connects to the export uri names and checks that it can hold
// a volume of size bytes and is writable.
func openNBDVolume(uri string, size int64) (*nbdVolume, error) {
	t, err := nbd.ParseURI(uri)
	if err != nil {
		return nil, err
	}
	c, err := nbdDialer.Dial(context.Background(), t)
	if err != nil {
		if errors.Is(err, nbd.ErrNoExport) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", errNBDUnreachable, err)
	}
	info := c.Info()
	switch {
	case info.ReadOnly():
		c.Close()
		return nil, fmt.Errorf("nbd volume %s: the export is read-only: %w", t, syscall.EROFS)
	case info.Size < size:
		c.Close()
		return nil, fmt.Errorf("%w: nbd volume %s: the export has %d bytes, the volume %d", errTooSmall, t, info.Size, size)
	}
	return &nbdVolume{c: c, align: max(int64(info.MinBlock), 1)}, nil
}

// WriteAt writes p at off; an unaligned range is widened to whole blocks
// with the current content of the edge blocks.
func (v *nbdVolume) WriteAt(p []byte, off int64) (int, error) {
	if v.align == 1 || (off%v.align == 0 && int64(len(p))%v.align == 0) {
		if err := v.c.WriteAt(p, off); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	start, end := v.down(off), v.up(off+int64(len(p)))
	buf := make([]byte, end-start)
	if err := v.readEdges(buf, start, off, off+int64(len(p))); err != nil {
		return 0, err
	}
	copy(buf[off-start:], p)
	if err := v.c.WriteAt(buf, start); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (v *nbdVolume) down(off int64) int64 { return off - off%v.align }
func (v *nbdVolume) up(off int64) int64   { return v.down(off + v.align - 1) }

// readEdges fills the first and last blocks of buf (which covers [start,
// start+len(buf))) with the export's content where [from, to) does not cover
// them.
func (v *nbdVolume) readEdges(buf []byte, start, from, to int64) error {
	end := start + int64(len(buf))
	if end > v.c.Size() {
		return fmt.Errorf("nbd volume: [%d,%d) widened to the export's %d-byte blocks passes its end (%d bytes)",
			from, to, v.align, v.c.Size())
	}
	if from > start {
		if err := v.c.ReadAt(buf[:v.align], start); err != nil {
			return err
		}
	}
	if to < end && (end-v.align >= start+v.align || from == start) {
		if err := v.c.ReadAt(buf[len(buf)-int(v.align):], end-v.align); err != nil {
			return err
		}
	}
	return nil
}

// Zero makes [off, off+length) read as zeros: WRITE_ZEROES on the whole
// blocks (the server may punch holes), zeros written on partial edge blocks
// and where the export has no WRITE_ZEROES.
func (v *nbdVolume) Zero(off, length int64) error {
	if length <= 0 {
		return nil
	}
	if !v.c.Info().CanZero() {
		return v.writeZeros(off, length)
	}
	start, end := v.up(off), v.down(off+length)
	if start >= end { // inside one block
		return v.writeZeros(off, length)
	}
	if err := v.writeZeros(off, start-off); err != nil {
		return err
	}
	if err := v.c.Zero(start, end-start, false); err != nil {
		return err
	}
	return v.writeZeros(end, off+length-end)
}

// writeZeros writes zero bytes over [off, off+length) in pieces of at most
// 1 MiB.
func (v *nbdVolume) writeZeros(off, length int64) error {
	if length > 0 && v.zeros == nil {
		v.zeros = make([]byte, 1<<20)
	}
	for length > 0 {
		n := min(length, int64(len(v.zeros)))
		if _, err := v.WriteAt(v.zeros[:n], off); err != nil {
			return err
		}
		off, length = off+n, length-n
	}
	return nil
}

// Sync is NBD_CMD_FLUSH. An export that does not advertise FLUSH has no
// volatile cache to flush (per the spec it writes through, or cannot say),
// so there is nothing to ask.
func (v *nbdVolume) Sync() error {
	if !v.c.Info().CanFlush() {
		return nil
	}
	return v.c.Flush()
}

// fits reports whether the connection is still usable (no connection or
// protocol error so far) for a volume of size bytes: destage keeps it open
// from one journal file to the next (see reusable).
func (v *nbdVolume) fits(size int64) bool { return v.c.Err() == nil && v.c.Size() >= size }

// Close ends the connection (NBD_CMD_DISC).
func (v *nbdVolume) Close() error { return v.c.Close() }

// CopyTo copies the whole export to dst, a snapshot file (see
// snapshotVolume): read over the connection 1 MiB at a time, all-zero
// blocks left as holes, replaced atomically. Read errors are volume errors
// (offline): destage retries from the cursor, marker included.
func (v *nbdVolume) CopyTo(dst string, before func(method string) error) (string, error) {
	err := writeSnapshot(dst, func(tmp *os.File) error {
		size := v.c.Size()
		if err := tmp.Truncate(size); err != nil {
			return err
		}
		buf := make([]byte, copyBlock)
		for off := int64(0); off < size; {
			n := min(int64(len(buf)), size-off)
			if err := v.c.ReadAt(buf[:n], off); err != nil {
				return offline(fmt.Errorf("read nbd volume at %d: %w", off, err))
			}
			if !allZero(buf[:n]) {
				if _, err := tmp.WriteAt(buf[:n], off); err != nil {
					return fmt.Errorf("write snapshot at %d: %w", off, err)
				}
			}
			off += n
		}
		return nil
	}, func() error {
		if before == nil {
			return nil
		}
		return before(methodNBDCopy)
	})
	return methodNBDCopy, err
}

// methodNBDCopy is the snapshot method of NBD volumes.
const methodNBDCopy = "copy over nbd"

// volumeCopier is a volume that copies itself to a snapshot file through its
// own connection (an NBD volume: the server may take only one client).
type volumeCopier interface {
	CopyTo(dst string, before func(method string) error) (method string, err error)
}

// snapshotVolume copies the volume at path to the snapshot file dst: through
// vf when it is open and can copy itself (an NBD volume during destage),
// else through a connection of its own for an NBD URI, else as a file or
// block device (snapshotFileThen: reflink or sparse copy). before (when
// set) runs once the copy is durable under its temp name, before the rename
// (see snapshotFileThen).
func snapshotVolume(vf volumeFile, path, dst string, before func(method string) error) (string, error) {
	if c, ok := vf.(volumeCopier); ok {
		return c.CopyTo(dst, before)
	}
	if !nbd.IsURI(path) {
		return snapshotFileThen(path, dst, before)
	}
	nv, err := openNBDVolume(path, 0)
	if err != nil {
		return "", offline(err)
	}
	defer nv.Close()
	return nv.CopyTo(dst, before)
}

// writeSnapshot writes the file dst through fill, atomically: a temp name in
// the same folder, fsync, rename, folder fsync. On an error the temp file is
// removed and dst left as it was. before (when set) runs once the copy is
// durable, before the rename; its error aborts the snapshot.
func writeSnapshot(dst string, fill func(tmp *os.File) error, before func() error) (err error) {
	dir := filepath.Dir(dst)
	if err := durable.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("snapshot %s: %w", dst, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".tmp*")
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", dst, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := fill(tmp); err != nil {
		return fmt.Errorf("snapshot %s: %w", dst, err)
	}
	if err := durable.Sync(tmp); err != nil {
		return fmt.Errorf("snapshot %s: %w", dst, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("snapshot %s: %w", dst, err)
	}
	if before != nil {
		if err := before(); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("snapshot %s: %w", dst, err)
	}
	return durable.SyncDir(dir)
}
