package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// NBD protocol constants (fixed newstyle handshake, simple replies).
const (
	nbdMagic          = 0x4e42444d41474943 // "NBDMAGIC"
	nbdOptMagic       = 0x49484156454f5054 // "IHAVEOPT"
	nbdReqMagic       = 0x25609513
	nbdReplyMagic     = 0x67446698
	nbdOptExportName  = 1
	nbdFlagFixed      = 1 << 0 // server and client: fixed newstyle
	nbdFlagNoZeroes   = 1 << 1 // server and client: no 124 zero bytes after the export info
	nbdCmdWrite       = 1
	nbdCmdDisc        = 2
	nbdCmdFlush       = 3
	nbdRequestTimeout = time.Minute
)

// ErrNBD is wrapped by errors the NBD server returned for a request.
var ErrNBD = errors.New("nbd server refused a request")

// writeChunk is the size of one NBD_CMD_WRITE, as qemu-img convert's buffer.
const writeChunk = 2 << 20

// nbdWriter writes an image through one NBD export, one request at a time.
type nbdWriter struct {
	c      net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	size   int64
	handle uint64
}

// dialNBD connects to addr and selects export with NBD_OPT_EXPORT_NAME.
func dialNBD(ctx context.Context, addr, export string) (*nbdWriter, error) {
	c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("nbd dial %s: %w", addr, err)
	}
	n := &nbdWriter{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 64<<10)}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := n.handshake(export); err != nil {
		c.Close()
		return nil, fmt.Errorf("nbd %s export %q: handshake: %w", addr, export, err)
	}
	_ = c.SetDeadline(time.Time{})
	return n, nil
}

func (n *nbdWriter) handshake(export string) error {
	var greet [18]byte
	if _, err := io.ReadFull(n.r, greet[:]); err != nil {
		return err
	}
	if binary.BigEndian.Uint64(greet[0:]) != nbdMagic || binary.BigEndian.Uint64(greet[8:]) != nbdOptMagic {
		return errors.New("not a fixed newstyle NBD server")
	}
	srvFlags := binary.BigEndian.Uint16(greet[16:])
	if srvFlags&nbdFlagFixed == 0 {
		return errors.New("server does not offer fixed newstyle")
	}
	cf := uint32(nbdFlagFixed)
	noZeroes := srvFlags&nbdFlagNoZeroes != 0
	if noZeroes {
		cf |= nbdFlagNoZeroes
	}
	b := binary.BigEndian.AppendUint32(nil, cf)
	b = binary.BigEndian.AppendUint64(b, nbdOptMagic)
	b = binary.BigEndian.AppendUint32(b, nbdOptExportName)
	b = binary.BigEndian.AppendUint32(b, uint32(len(export)))
	b = append(b, export...)
	if _, err := n.w.Write(b); err != nil {
		return err
	}
	if err := n.w.Flush(); err != nil {
		return err
	}
	var info [10]byte
	if _, err := io.ReadFull(n.r, info[:]); err != nil {
		return fmt.Errorf("export info (unknown export?): %w", err)
	}
	n.size = int64(binary.BigEndian.Uint64(info[:8]))
	if !noZeroes {
		if _, err := n.r.Discard(124); err != nil {
			return err
		}
	}
	return nil
}

// request sends one command (with payload for writes) and waits for its reply.
func (n *nbdWriter) request(cmd uint16, off int64, length uint32, payload []byte) error {
	n.handle++
	_ = n.c.SetDeadline(time.Now().Add(nbdRequestTimeout))
	defer n.c.SetDeadline(time.Time{})
	var h [28]byte
	binary.BigEndian.PutUint32(h[0:], nbdReqMagic)
	binary.BigEndian.PutUint16(h[4:], 0)
	binary.BigEndian.PutUint16(h[6:], cmd)
	binary.BigEndian.PutUint64(h[8:], n.handle)
	binary.BigEndian.PutUint64(h[16:], uint64(off))
	binary.BigEndian.PutUint32(h[24:], length)
	if _, err := n.w.Write(h[:]); err != nil {
		return err
	}
	if _, err := n.w.Write(payload); err != nil {
		return err
	}
	if err := n.w.Flush(); err != nil {
		return err
	}
	if cmd == nbdCmdDisc {
		return nil
	}
	var r [16]byte
	if _, err := io.ReadFull(n.r, r[:]); err != nil {
		return fmt.Errorf("reply: %w", err)
	}
	switch {
	case binary.BigEndian.Uint32(r[0:]) != nbdReplyMagic:
		return errors.New("reply: bad magic")
	case binary.BigEndian.Uint64(r[8:]) != n.handle:
		return errors.New("reply: unexpected handle")
	}
	if e := binary.BigEndian.Uint32(r[4:]); e != 0 {
		return fmt.Errorf("%w: errno %d", ErrNBD, e)
	}
	return nil
}

// writeImage writes size bytes of img at offset 0, every block as data
// (zeros included: a thick copy), then flushes. The bytes written are also
// written to h when not nil (to hash them); progress, when not nil, is told
// the bytes written so far.
func (n *nbdWriter) writeImage(ctx context.Context, img io.ReaderAt, size int64, h io.Writer, progress func(int64)) error {
	if size > n.size {
		return fmt.Errorf("image of %d bytes does not fit the %d-byte export", size, n.size)
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
		if err := n.request(nbdCmdWrite, off, uint32(l), buf[:l]); err != nil {
			return fmt.Errorf("write %d+%d: %w", off, l, err)
		}
		off += int64(l)
		if progress != nil {
			progress(off)
		}
	}
	if err := n.request(nbdCmdFlush, 0, 0, nil); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

// close says goodbye (NBD_CMD_DISC) and closes the connection.
func (n *nbdWriter) close() error {
	_ = n.request(nbdCmdDisc, 0, 0, nil)
	return n.c.Close()
}
