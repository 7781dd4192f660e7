package aimsrc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/aimwan/aimwan/internal/durable"
)

// bitmapMagic opens every dirty-bitmap file.
var bitmapMagic = [8]byte{'A', 'I', 'M', 'D', 'I', 'R', 'T', '1'}

const bitmapHeader = 24 // magic, granularity, volume size

// ErrBitmap is wrapped by errors about a dirty-bitmap file's content.
var ErrBitmap = errors.New("bad dirty bitmap")

// bitmap is a volume's persistent dirty bitmap: one bit per region of gran
// bytes, set while the region's current content may be missing from the
// journals. The file is memory-mapped (MAP_SHARED), so a set bit survives a
// crash of the process as soon as it is set; sync makes it survive power loss.
// Methods are called under the volume lock, except dirtyBytes.
type bitmap struct {
	path    string
	f       *os.File
	mem     []byte // the whole mapped file
	bits    []byte // mem[bitmapHeader:]
	gran    int64
	size    int64 // volume size
	nbits   int64
	count   atomic.Int64 // set bits
	changed bool         // bits changed since the last sync
}

// openBitmap opens (or creates, empty) the dirty bitmap at path for a volume
// of size bytes. An existing file made for another size or granularity is
// replaced when it holds no set bit, else refused.
func openBitmap(path string, size, gran int64) (*bitmap, error) {
	nbits := (size + gran - 1) / gran
	fileSize := int64(bitmapHeader) + (nbits+7)/8
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open dirty bitmap: %w", err)
	}
	b := &bitmap{path: path, f: f, gran: gran, size: size, nbits: nbits}
	if err := b.init(fileSize); err != nil {
		f.Close()
		return nil, err
	}
	return b, nil
}

func (b *bitmap) init(fileSize int64) error {
	st, err := b.f.Stat()
	if err != nil {
		return fmt.Errorf("stat dirty bitmap %s: %w", b.path, err)
	}
	hdr := make([]byte, bitmapHeader)
	copy(hdr, bitmapMagic[:])
	binary.LittleEndian.PutUint64(hdr[8:], uint64(b.gran))
	binary.LittleEndian.PutUint64(hdr[16:], uint64(b.size))
	if st.Size() != 0 {
		old := make([]byte, bitmapHeader)
		if _, err := b.f.ReadAt(old, 0); err != nil || !bytes.Equal(old, hdr) || st.Size() != fileSize {
			if dirty, derr := b.anySet(st.Size()); derr != nil || dirty {
				return fmt.Errorf("%w: %s was made for another volume size or granularity and holds dirty regions", ErrBitmap, b.path)
			}
			st = nil // empty or foreign without bits: start over
		}
	}
	if st == nil || st.Size() == 0 {
		if err := b.f.Truncate(0); err != nil {
			return fmt.Errorf("reset dirty bitmap %s: %w", b.path, err)
		}
		if err := b.f.Truncate(fileSize); err != nil {
			return fmt.Errorf("size dirty bitmap %s: %w", b.path, err)
		}
		if _, err := b.f.WriteAt(hdr, 0); err != nil {
			return fmt.Errorf("write dirty bitmap %s: %w", b.path, err)
		}
		if err := b.f.Sync(); err != nil {
			return fmt.Errorf("fsync dirty bitmap %s: %w", b.path, err)
		}
		if err := durable.SyncDir(filepath.Dir(b.path)); err != nil { // a new file's entry
			return fmt.Errorf("dirty bitmap %s: %w", b.path, err)
		}
	}
	mem, err := unix.Mmap(int(b.f.Fd()), 0, int(fileSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap dirty bitmap %s: %w", b.path, err)
	}
	b.mem, b.bits = mem, mem[bitmapHeader:]
	var n int64
	for _, c := range b.bits {
		n += int64(bits.OnesCount8(c))
	}
	b.count.Store(n)
	return nil
}

// anySet reports whether a file of the given size has any non-zero byte past
// the header (a conservative check for foreign files).
func (b *bitmap) anySet(fileSize int64) (bool, error) {
	if fileSize <= bitmapHeader {
		return false, nil
	}
	buf := make([]byte, fileSize-bitmapHeader)
	if _, err := b.f.ReadAt(buf, bitmapHeader); err != nil {
		return true, err
	}
	return !isZero(buf), nil
}

// set marks every region touching [off, off+length) dirty and reports
// whether any bit was newly set.
func (b *bitmap) set(off, length int64) bool {
	if length <= 0 {
		return false
	}
	newly := false
	for i := off / b.gran; i <= (off+length-1)/b.gran && i < b.nbits; i++ {
		m := byte(1) << (i & 7)
		if b.bits[i>>3]&m == 0 {
			b.bits[i>>3] |= m
			b.count.Add(1)
			newly = true
		}
	}
	if newly {
		b.changed = true
	}
	return newly
}

// clear marks the regions wholly inside [off, off+length) clean.
func (b *bitmap) clear(off, length int64) {
	first := (off + b.gran - 1) / b.gran
	end := (off + length) / b.gran
	if off+length >= b.size {
		end = b.nbits
	}
	for i := first; i < end; i++ {
		m := byte(1) << (i & 7)
		if b.bits[i>>3]&m != 0 {
			b.bits[i>>3] &^= m
			b.count.Add(-1)
			b.changed = true
		}
	}
}

// next returns the first run of dirty regions starting at or after byte from, at most
// maxLen bytes long and clipped to the volume size; ok is false when no bit
// is set from there on.
func (b *bitmap) next(from, maxLen int64) (off, length int64, ok bool) {
	i := (from + b.gran - 1) / b.gran // regions starting at or after from
	for i < b.nbits {
		if i&7 == 0 && b.bits[i>>3] == 0 {
			i += 8 // a clean byte: skip its 8 regions at once
			continue
		}
		if b.bits[i>>3]&(1<<(i&7)) != 0 {
			break
		}
		i++
	}
	if i >= b.nbits {
		return 0, 0, false
	}
	j := i
	for j < b.nbits && b.bits[j>>3]&(1<<(j&7)) != 0 && (j-i+1)*b.gran <= maxLen {
		j++
	}
	if j == i {
		j = i + 1
	}
	off = i * b.gran
	end := min(j*b.gran, b.size)
	return off, end - off, true
}

// dirtyBytes is the volume bytes covered by set bits (safe without the lock).
func (b *bitmap) dirtyBytes() int64 { return b.count.Load() * b.gran }

// sync makes the bitmap durable when it changed since the last sync.
func (b *bitmap) sync() error {
	if !b.changed {
		return nil
	}
	if err := unix.Msync(b.mem, unix.MS_SYNC); err != nil {
		return fmt.Errorf("msync dirty bitmap %s: %w", b.path, err)
	}
	if err := b.f.Sync(); err != nil {
		return fmt.Errorf("fsync dirty bitmap %s: %w", b.path, err)
	}
	b.changed = false
	return nil
}

func (b *bitmap) close() error {
	err := b.sync()
	if b.mem != nil {
		if uerr := unix.Munmap(b.mem); err == nil {
			err = uerr
		}
		b.mem, b.bits = nil, nil
	}
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	return err
}
