package aimdst

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Snapshot methods, as reported in logs and status.
const (
	methodReflink = "reflink"
	methodSparse  = "sparse copy"
)

// snapshotFile makes dst a point-in-time copy of the volume at src, replaced
// atomically (temp name, fsync, rename, folder fsync). Where the file system
// can share extents (FICLONE: btrfs, XFS with reflink, bcachefs) the copy is a
// reflink and costs almost nothing; elsewhere it is a sparse copy that skips
// holes (SEEK_DATA/SEEK_HOLE) and all-zero blocks. It returns the method used.
func snapshotFile(src, dst string) (method string, err error) {
	return snapshotFileThen(src, dst, nil)
}

// snapshotFileThen is snapshotFile that calls before (when set) with the
// method once the copy is durable under its temp name and before it is
// renamed into place: the snapshot's metadata is written there, so an image
// never appears without it. An error of before aborts the snapshot.
func snapshotFileThen(src, dst string, before func(method string) error) (method string, err error) {
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("snapshot %s: %w", dst, err)
	}
	defer in.Close()
	err = writeSnapshot(dst, func(tmp *os.File) error {
		method = methodReflink
		if unix.IoctlFileClone(int(tmp.Fd()), int(in.Fd())) != nil {
			method = methodSparse
			return sparseCopy(tmp, in)
		}
		return nil
	}, func() error {
		if before == nil {
			return nil
		}
		return before(method)
	})
	if err != nil {
		return "", err
	}
	return method, nil
}

// copyBlock is the unit of the sparse copy; an all-zero block is left a hole.
const copyBlock = 1 << 20

// sparseCopy copies in to out (an empty file), leaving holes where in has
// holes or all-zero blocks.
func sparseCopy(out, in *os.File) error {
	size, err := in.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if err := out.Truncate(size); err != nil {
		return err
	}
	buf := make([]byte, copyBlock)
	for pos := int64(0); pos < size; {
		start, end, err := nextData(in, pos, size)
		if err != nil {
			return err
		}
		if start >= size {
			break
		}
		if err := copyRange(out, in, buf, start, end); err != nil {
			return err
		}
		pos = end
	}
	return nil
}

// nextData returns the data extent [start, end) at or after pos. Where
// SEEK_DATA is not supported, everything from pos is data.
func nextData(f *os.File, pos, size int64) (start, end int64, err error) {
	fd := int(f.Fd())
	start, err = unix.Seek(fd, pos, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		return size, size, nil // only a hole is left
	}
	if err != nil || start < pos {
		return pos, size, nil
	}
	end, err = unix.Seek(fd, start, unix.SEEK_HOLE)
	if err != nil || end > size || end <= start {
		end = size // keeps the caller's loop moving forward whatever lseek says
	}
	return start, end, nil
}

// copyRange copies [start, end) from in to out, skipping all-zero blocks.
func copyRange(out, in *os.File, buf []byte, start, end int64) error {
	for off := start; off < end; {
		n := int(min(int64(len(buf)), end-off))
		got, err := in.ReadAt(buf[:n], off)
		if err != nil && !(errors.Is(err, io.EOF) && got == n) {
			return fmt.Errorf("read volume at %d: %w", off, err)
		}
		if !allZero(buf[:n]) {
			if _, err := out.WriteAt(buf[:n], off); err != nil {
				return fmt.Errorf("write snapshot at %d: %w", off, err)
			}
		}
		off += int64(n)
	}
	return nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
