package bench

import (
	"context"
	"fmt"
	"io"

	"github.com/aimwan/aimwan/nbd"
)

// writeChunk is the size of one NBD_CMD_WRITE, as qemu-img convert's buffer.
const writeChunk = 2 << 20

// writeImage writes size bytes of img at offset 0 of the export c is
// connected to, every block as data (zeros included: a thick copy), then
// flushes. The bytes written are also written to h when not nil (to hash
// them); progress, when not nil, is told the bytes written so far.
func writeImage(ctx context.Context, c *nbd.Client, img io.ReaderAt, size int64, h io.Writer, progress func(int64)) error {
	if size > c.Size() {
		return fmt.Errorf("image of %d bytes does not fit the %d-byte export", size, c.Size())
	}
	buf := make([]byte, writeChunk)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		l := int(min(int64(len(buf)), size-off))
		if m, err := img.ReadAt(buf[:l], off); m < l {
			return fmt.Errorf("read image at %d: %d of %d bytes: %w", off, m, l, err)
		}
		if h != nil {
			h.Write(buf[:l])
		}
		if err := c.WriteAt(buf[:l], off); err != nil {
			return fmt.Errorf("write %d+%d: %w", off, l, err)
		}
		off += int64(l)
		if progress != nil {
			progress(off)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}
