package aimdst

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/aimwan/aimwan/nbd"
)

// volumeFile is a destination volume opened for destage.
type volumeFile interface {
	// WriteAt writes p at off (pwrite).
	WriteAt(p []byte, off int64) (int, error)
	// Zero makes [off, off+length) read as zeros, as a hole where possible.
	Zero(off, length int64) error
	// Sync makes every write so far durable.
	Sync() error
	// Close releases the file.
	Close() error
}

// openVolumeFunc opens the volume at path for writing, sized to at least
// size bytes (a regular file smaller than that is extended sparsely; a
// missing file is an error, never created, unless create is set).
type openVolumeFunc func(path string, size int64, create bool) (volumeFile, error)

var _ volumeFile = (*osVolume)(nil)

// errTooSmall marks a block device or NBD export smaller than the volume the
// journal describes (a regular file is extended instead).
var errTooSmall = errors.New("destination volume too small")

// openVolume is the default openVolumeFunc: an NBD URI (nbd://, nbd+unix://)
// is an NBD volume, anything else a regular file or a block device.
func openVolume(path string, size int64, create bool) (volumeFile, error) {
	if nbd.IsURI(path) {
		return openNBDVolume(path, size)
	}
	return openOSVolume(path, size, create)
}

// validVolumePath checks a volume's path and create option: an NBD URI
// must parse and cannot be created; any other URI (rbd://, iscsi://, a typo
// of nbd) is refused rather than taken for a file name; create never applies
// under /dev (it would make a regular file where a device is expected).
func validVolumePath(vc VolumeConfig) error {
	if nbd.IsURI(vc.Path) {
		if _, err := nbd.ParseURI(vc.Path); err != nil {
			return err
		}
		if vc.Create {
			return errors.New("create does not apply to an NBD volume (make the export on its server)")
		}
		return nil
	}
	if scheme, _, ok := strings.Cut(vc.Path, "://"); ok {
		return fmt.Errorf("path %q: a %s:// URI is not a volume (NBD volumes are nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH)", vc.Path, scheme)
	}
	if vc.Create && strings.HasPrefix(filepath.Clean(vc.Path), "/dev/") {
		return fmt.Errorf("create does not apply to a device path (%s)", vc.Path)
	}
	return nil
}

// osVolume is a volume held in a regular file or a block device.
type osVolume struct {
	f        *os.File
	sector   int64 // a block device's logical block size (punch alignment); 0 for a file
	noPunch  bool  // fallocate(PUNCH_HOLE) is not supported here: write zeros
	zeroPage []byte
}

// openOSVolume opens a regular file (extended sparsely to size when
// smaller) or a block device (its size read from the device, which must hold
// size bytes).
func openOSVolume(path string, size int64, create bool) (volumeFile, error) {
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE
	}
	f, err := os.OpenFile(path, flag, 0o600) // a volume dst creates is its owner's only
	if err != nil {
		return nil, fmt.Errorf("open volume: %w", err)
	}
	v, err := osVolumeOf(f, size)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("volume %s: %w", path, err)
	}
	return v, nil
}

// osVolumeOf checks an opened file or block device against size.
func osVolumeOf(f *os.File, size int64) (*osVolume, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	mode := st.Mode()
	switch {
	case mode.IsRegular():
		if size > st.Size() {
			if err := f.Truncate(size); err != nil {
				return nil, fmt.Errorf("extend to %d bytes: %w", size, err)
			}
		}
		return &osVolume{f: f}, nil
	case mode&os.ModeDevice != 0 && mode&os.ModeCharDevice == 0:
		devSize, err := f.Seek(0, io.SeekEnd) // stat says 0 for a device
		if err != nil {
			return nil, fmt.Errorf("block device size: %w", err)
		}
		if devSize < size {
			return nil, fmt.Errorf("%w: the block device has %d bytes, the volume %d", errTooSmall, devSize, size)
		}
		sector, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
		if err != nil || sector <= 0 {
			sector = 512
		}
		return &osVolume{f: f, sector: int64(sector)}, nil
	}
	return nil, fmt.Errorf("%w: %s is neither a regular file nor a block device", errNotVolume, mode.Type())
}

// errNotVolume marks a path that is a folder, a character device, a socket...
var errNotVolume = errors.New("not a volume")

func (v *osVolume) WriteAt(p []byte, off int64) (int, error) { return v.f.WriteAt(p, off) }
func (v *osVolume) Sync() error                              { return v.f.Sync() }
func (v *osVolume) Close() error                             { return v.f.Close() }

// Zero punches a hole (the size stays); where the file system or device
// cannot, it writes zeros. On a block device only whole logical blocks can be
// punched (the kernel discards them with a zeroing guarantee, or says it
// cannot): the unaligned head and tail are written as zeros.
func (v *osVolume) Zero(off, length int64) error {
	if length <= 0 {
		return nil
	}
	if v.sector > 1 && !v.noPunch {
		start := min((off+v.sector-1)/v.sector*v.sector, off+length)
		end := max((off+length)/v.sector*v.sector, start)
		if err := v.writeZeros(off, start-off); err != nil {
			return err
		}
		if err := v.writeZeros(end, off+length-end); err != nil {
			return err
		}
		off, length = start, end-start
		if length == 0 {
			return nil
		}
	}
	if !v.noPunch {
		err := unix.Fallocate(int(v.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("punch hole [%d,+%d): %w", off, length, err)
		}
		v.noPunch = true
	}
	return v.writeZeros(off, length)
}

// writeZeros writes length zero bytes at off.
func (v *osVolume) writeZeros(off, length int64) error {
	if length > 0 && v.zeroPage == nil {
		v.zeroPage = make([]byte, 1<<20)
	}
	for length > 0 {
		n := min(length, int64(len(v.zeroPage)))
		if _, err := v.f.WriteAt(v.zeroPage[:n], off); err != nil {
			return fmt.Errorf("write zeros [%d,+%d): %w", off, n, err)
		}
		off += n
		length -= n
	}
	return nil
}

// offlineReason names why a volume error makes the volume offline: "missing",
// "read-only", "disk full", "too small", "unreachable" (an NBD server that
// does not answer), "connection lost", "protocol error", or the error itself.
func offlineReason(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, nbd.ErrNoExport):
		return "missing"
	case errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return "read-only"
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "disk full"
	case errors.Is(err, errTooSmall):
		return "too small"
	case errors.Is(err, errNBDUnreachable):
		return "unreachable"
	case errors.Is(err, nbd.ErrConnection):
		return "connection lost"
	case errors.Is(err, nbd.ErrServerProtocol):
		return "protocol error"
	}
	return err.Error()
}
