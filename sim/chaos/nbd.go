package chaos

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

// NBD protocol constants (fixed newstyle, simple replies).
const (
	nbdMagic        = 0x4e42444d41474943 // "NBDMAGIC"
	nbdOptMagic     = 0x49484156454f5054 // "IHAVEOPT"
	nbdReqMagic     = 0x25609513
	nbdReplyMagic   = 0x67446698
	nbdOptExport    = 1 // NBD_OPT_EXPORT_NAME
	nbdCmdRead      = 0
	nbdCmdWrite     = 1
	nbdCmdDisc      = 2
	nbdCmdFlush     = 3
	nbdCmdTrim      = 4
	nbdCmdZeroes    = 6
	nbdClientFlags  = 1 | 2 // NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES
	nbdMaxTransfer  = 32 << 20
	nbdRequestLimit = 30 * time.Second
)

// ErrNBD is wrapped by errors the NBD server returned for a request.
var ErrNBD = errors.New("nbd server error")

// nbdClient is a small synchronous NBD client: one request at a time, so
// the harness knows exactly which writes were acknowledged.
type nbdClient struct {
	c      net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	size   int64
	handle uint64
}

// dialNBD connects to addr and opens export with NBD_OPT_EXPORT_NAME.
func dialNBD(ctx context.Context, addr, export string) (*nbdClient, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("nbd dial %s: %w", addr, err)
	}
	n := &nbdClient{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 256<<10)}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := n.handshake(export); err != nil {
		c.Close()
		return nil, fmt.Errorf("nbd %s export %q: handshake: %w", addr, export, err)
	}
	c.SetDeadline(time.Time{})
	return n, nil
}

func (n *nbdClient) handshake(export string) error {
	var hs [18]byte
	if _, err := io.ReadFull(n.r, hs[:]); err != nil {
		return err
	}
	if binary.BigEndian.Uint64(hs[0:]) != nbdMagic || binary.BigEndian.Uint64(hs[8:]) != nbdOptMagic {
		return fmt.Errorf("not a newstyle NBD server (greeting %x)", hs[:16])
	}
	b := binary.BigEndian.AppendUint32(nil, nbdClientFlags)
	b = binary.BigEndian.AppendUint64(b, nbdOptMagic)
	b = binary.BigEndian.AppendUint32(b, nbdOptExport)
	b = binary.BigEndian.AppendUint32(b, uint32(len(export)))
	b = append(b, export...)
	if _, err := n.c.Write(b); err != nil {
		return err
	}
	var reply [10]byte // size, transmission flags (no zero padding: NO_ZEROES)
	if _, err := io.ReadFull(n.r, reply[:]); err != nil {
		return fmt.Errorf("export refused: %w", err)
	}
	n.size = int64(binary.BigEndian.Uint64(reply[:8]))
	return nil
}

// request sends one request and waits for its reply; data is a write's
// payload, into receives a read's data.
func (n *nbdClient) request(typ uint16, off int64, length uint32, data, into []byte) error {
	n.handle++
	var h [28]byte
	binary.BigEndian.PutUint32(h[0:], nbdReqMagic)
	binary.BigEndian.PutUint16(h[4:], 0)
	binary.BigEndian.PutUint16(h[6:], typ)
	binary.BigEndian.PutUint64(h[8:], n.handle)
	binary.BigEndian.PutUint64(h[16:], uint64(off))
	binary.BigEndian.PutUint32(h[24:], length)
	n.c.SetDeadline(time.Now().Add(nbdRequestLimit))
	defer n.c.SetDeadline(time.Time{})
	n.w.Write(h[:])
	n.w.Write(data)
	if err := n.w.Flush(); err != nil {
		return err
	}
	if typ == nbdCmdDisc {
		return nil
	}
	var rep [16]byte
	if _, err := io.ReadFull(n.r, rep[:]); err != nil {
		return err
	}
	if m := binary.BigEndian.Uint32(rep[0:]); m != nbdReplyMagic {
		return fmt.Errorf("bad reply magic %#x", m)
	}
	if got := binary.BigEndian.Uint64(rep[8:]); got != n.handle {
		return fmt.Errorf("reply for handle %d, want %d", got, n.handle)
	}
	if e := binary.BigEndian.Uint32(rep[4:]); e != 0 {
		return fmt.Errorf("request type %d at %d+%d: %w (errno %d)", typ, off, length, ErrNBD, e)
	}
	if into != nil {
		_, err := io.ReadFull(n.r, into)
		return err
	}
	return nil
}

// Size is the export's size from the handshake.
func (n *nbdClient) Size() int64 { return n.size }

// WriteAt writes p at off.
func (n *nbdClient) WriteAt(p []byte, off int64) error {
	if len(p) > nbdMaxTransfer {
		return fmt.Errorf("nbd write of %d bytes: over %d", len(p), nbdMaxTransfer)
	}
	return n.request(nbdCmdWrite, off, uint32(len(p)), p, nil)
}

// ReadAt reads len(p) bytes at off.
func (n *nbdClient) ReadAt(p []byte, off int64) error {
	if len(p) > nbdMaxTransfer {
		return fmt.Errorf("nbd read of %d bytes: over %d", len(p), nbdMaxTransfer)
	}
	return n.request(nbdCmdRead, off, uint32(len(p)), nil, p)
}

// Zero is NBD_CMD_WRITE_ZEROES.
func (n *nbdClient) Zero(off int64, length uint32) error {
	return n.request(nbdCmdZeroes, off, length, nil, nil)
}

// Trim is NBD_CMD_TRIM.
func (n *nbdClient) Trim(off int64, length uint32) error {
	return n.request(nbdCmdTrim, off, length, nil, nil)
}

// Flush is NBD_CMD_FLUSH: every write acknowledged before it is durable.
func (n *nbdClient) Flush() error { return n.request(nbdCmdFlush, 0, 0, nil, nil) }

// Close sends NBD_CMD_DISC and closes the connection.
func (n *nbdClient) Close() error {
	n.request(nbdCmdDisc, 0, 0, nil, nil)
	return n.c.Close()
}
