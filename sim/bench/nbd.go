package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/aimwan/aimwan/nbd"
)

// writeChunk is the size of one NBD_CMD_WRITE, as qemu-img convert's buffer.
const writeChunk = 2 << 20

// zeroBlock is the granularity of zero detection in a thin write, as
// qemu-img convert's default (-S 4k).
const zeroBlock = 4 << 10

// maxZeroRequest bounds one NBD_CMD_WRITE_ZEROES of a thin write.
const maxZeroRequest = 64 << 20

// written counts what creating an image sent through NBD.
type written struct {
	data  int64 // bytes sent as NBD_CMD_WRITE
	zeros int64 // bytes sent as NBD_CMD_WRITE_ZEROES (thin)
}

// writeImage writes size bytes of img at offset 0 of the export c is
// connected to, then flushes. Thick: every block as data, zeros included.
// Thin: runs of all-zero 4 KiB blocks as WRITE_ZEROES (the export starts
// empty, so the result is the same image). Every byte of the image is also
// written to h when not nil (to hash it); progress, when not nil, is told
// the bytes done so far.
func writeImage(ctx context.Context, c *nbd.Client, img io.ReaderAt, size int64, thin bool, h io.Writer, progress func(int64)) (written, error) {
	var w written
	if size > c.Size() {
		return w, fmt.Errorf("image of %d bytes does not fit the %d-byte export", size, c.Size())
	}
	z := zeroRun{c: c}
	buf := make([]byte, writeChunk)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return w, err
		}
		l := int(min(int64(len(buf)), size-off))
		if m, err := img.ReadAt(buf[:l], off); m < l {
			return w, fmt.Errorf("read image at %d: %d of %d bytes: %w", off, m, l, err)
		}
		if h != nil {
			h.Write(buf[:l])
		}
		var err error
		if thin {
			err = writeThin(&z, &w, buf[:l], off)
		} else {
			w.data += int64(l)
			if err = c.WriteAt(buf[:l], off); err != nil {
				err = fmt.Errorf("write %d+%d: %w", off, l, err)
			}
		}
		if err != nil {
			return w, err
		}
		off += int64(l)
		if progress != nil {
			progress(off)
		}
	}
	if err := z.flush(&w); err != nil {
		return w, err
	}
	if err := c.Flush(); err != nil {
		return w, fmt.Errorf("flush: %w", err)
	}
	return w, nil
}

// writeThin writes b (at off) as data runs, leaving its all-zero blocks to
// z, which joins them across buffers into WRITE_ZEROES requests.
func writeThin(z *zeroRun, w *written, b []byte, off int64) error {
	for i := 0; i < len(b); {
		j := i
		for j < len(b) && isZero(b[j:min(j+zeroBlock, len(b))]) {
			j = min(j+zeroBlock, len(b))
		}
		if j > i {
			if err := z.add(w, off+int64(i), int64(j-i)); err != nil {
				return err
			}
			i = j
			continue
		}
		for j < len(b) && !isZero(b[j:min(j+zeroBlock, len(b))]) {
			j = min(j+zeroBlock, len(b))
		}
		if err := z.flush(w); err != nil {
			return err
		}
		if err := z.c.WriteAt(b[i:j], off+int64(i)); err != nil {
			return fmt.Errorf("write %d+%d: %w", off+int64(i), j-i, err)
		}
		w.data += int64(j - i)
		i = j
	}
	return nil
}

// zeroRun is the pending run of zero blocks of a thin write.
type zeroRun struct {
	c        *nbd.Client
	off, len int64
}

// add extends the run with [off, off+n), which follows it or starts a new
// one after a flush.
func (z *zeroRun) add(w *written, off, n int64) error {
	if z.len > 0 && z.off+z.len != off {
		if err := z.flush(w); err != nil {
			return err
		}
	}
	if z.len == 0 {
		z.off = off
	}
	z.len += n
	for z.len >= maxZeroRequest {
		if err := z.send(w, maxZeroRequest); err != nil {
			return err
		}
	}
	return nil
}

// flush sends the pending run.
func (z *zeroRun) flush(w *written) error {
	if z.len == 0 {
		return nil
	}
	return z.send(w, z.len)
}

// send writes the first n bytes of the run as one WRITE_ZEROES.
func (z *zeroRun) send(w *written, n int64) error {
	if err := z.c.WriteZeroes(z.off, uint32(n)); err != nil {
		return fmt.Errorf("write zeroes %d+%d: %w", z.off, n, err)
	}
	w.zeros += n
	z.off += n
	z.len -= n
	return nil
}

// isZero reports whether b holds only zero bytes.
func isZero(b []byte) bool {
	for len(b) >= 32 {
		le := binary.LittleEndian
		if le.Uint64(b)|le.Uint64(b[8:])|le.Uint64(b[16:])|le.Uint64(b[24:]) != 0 {
			return false
		}
		b = b[32:]
	}
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
