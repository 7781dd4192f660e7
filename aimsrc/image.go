package aimsrc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/aimwan/aimwan/internal/durable"
)

// image is a volume's backing file.
type image struct {
	f    *os.File
	size int64
	// noPunch is set once fallocate turned out unsupported, so holes are
	// then written as zeros.
	noPunch bool
}

// openImage opens the image at path, creating it with the given size when it
// does not exist. size 0 requires an existing image; a non-zero size must
// match an existing image's size.
func openImage(path string, size int64) (*image, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) && size > 0 {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			if err = f.Truncate(size); err == nil {
				err = f.Sync()
			}
			if err == nil {
				err = durable.SyncDir(filepath.Dir(path)) // the new image's entry
			}
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("create image %s: %w", path, err)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open image %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat image %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("image %s: not a regular file", path)
	}
	if size > 0 && st.Size() != size {
		f.Close()
		return nil, fmt.Errorf("image %s: size is %d, configured %d", path, st.Size(), size)
	}
	if st.Size() == 0 {
		f.Close()
		return nil, fmt.Errorf("image %s: empty (give size=N to create it)", path)
	}
	return &image{f: f, size: st.Size()}, nil
}

func (im *image) readAt(p []byte, off int64) error {
	n, err := im.f.ReadAt(p, off)
	if err == io.EOF && n == len(p) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("read image at %d+%d: %w", off, len(p), err)
	}
	return nil
}

func (im *image) writeAt(p []byte, off int64) error {
	if _, err := im.f.WriteAt(p, off); err != nil {
		return fmt.Errorf("write image at %d+%d: %w", off, len(p), err)
	}
	return nil
}

// zero makes [off, off+length) read as zeros: a punched hole when hole is
// true and the file system supports it, else written zeros.
func (im *image) zero(off, length int64, hole bool) error {
	if length <= 0 {
		return nil
	}
	if hole && !im.noPunch {
		err := unix.Fallocate(int(im.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("punch hole in image at %d+%d: %w", off, length, err)
		}
		im.noPunch = true
	}
	return im.writeZeros(off, length)
}

var zeroBlock = make([]byte, 1<<20)

func (im *image) writeZeros(off, length int64) error {
	for length > 0 {
		n := min(length, int64(len(zeroBlock)))
		if err := im.writeAt(zeroBlock[:n], off); err != nil {
			return err
		}
		off += n
		length -= n
	}
	return nil
}

func (im *image) sync() error {
	if err := im.f.Sync(); err != nil {
		return fmt.Errorf("fsync image: %w", err)
	}
	return nil
}

func (im *image) close() error { return im.f.Close() }

// isZero reports whether b holds only zero bytes.
func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroBlock))
		if !bytes.Equal(b[:n], zeroBlock[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
