package aimdst

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
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

// osVolume is a volume held in a regular file or a block device.
type osVolume struct {
	f        *os.File
	noPunch  bool // fallocate(PUNCH_HOLE) is not supported here: write zeros
	zeroPage []byte
}

// openOSVolume is the openVolumeFunc for real files.
func openOSVolume(path string, size int64, create bool) (volumeFile, error) {
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE
	}
	f, err := os.OpenFile(path, flag, 0o600) // a volume dst creates is its owner's only
	if err != nil {
		return nil, fmt.Errorf("open volume: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open volume: %w", err)
	}
	if st.Mode().IsRegular() && size > st.Size() {
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, fmt.Errorf("extend volume %s to %d bytes: %w", path, size, err)
		}
	}
	return &osVolume{f: f}, nil
}

func (v *osVolume) WriteAt(p []byte, off int64) (int, error) { return v.f.WriteAt(p, off) }
func (v *osVolume) Sync() error                              { return v.f.Sync() }
func (v *osVolume) Close() error                             { return v.f.Close() }

// Zero punches a hole (the size stays); where the file system or device
// cannot, it writes zeros.
func (v *osVolume) Zero(off, length int64) error {
	if length <= 0 {
		return nil
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
	if v.zeroPage == nil {
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
// "read-only", "disk full", or the error itself.
func offlineReason(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "missing"
	case errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return "read-only"
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "disk full"
	}
	return err.Error()
}
