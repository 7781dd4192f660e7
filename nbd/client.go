package nbd

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

// ErrRemote is wrapped by the errors a server returned for a request.
var ErrRemote = errors.New("nbd server error")

// ClientMaxTransfer is the largest read or write Client sends in one request.
const ClientMaxTransfer = 32 << 20

// clientRequestLimit bounds one request's round trip.
const clientRequestLimit = time.Minute

// Client is a small synchronous NBD client (fixed newstyle, simple replies):
// one request at a time, so its caller knows exactly which writes the server
// acknowledged. The bench and the chaos harness write volumes with it, as a
// hypervisor would; it is not safe for concurrent use.
type Client struct {
	c      net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	size   int64
	handle uint64
}

// Dial connects to addr and opens export with NBD_OPT_EXPORT_NAME.
func Dial(ctx context.Context, addr, export string) (*Client, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("nbd dial %s: %w", addr, err)
	}
	n := &Client{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 256<<10)}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := n.handshake(export); err != nil {
		c.Close()
		return nil, fmt.Errorf("nbd %s export %q: handshake: %w", addr, export, err)
	}
	c.SetDeadline(time.Time{})
	return n, nil
}

func (n *Client) handshake(export string) error {
	var hs [18]byte
	if _, err := io.ReadFull(n.r, hs[:]); err != nil {
		return err
	}
	if binary.BigEndian.Uint64(hs[0:]) != nbdMagic || binary.BigEndian.Uint64(hs[8:]) != optMagic {
		return fmt.Errorf("not a newstyle NBD server (greeting %x)", hs[:16])
	}
	b := binary.BigEndian.AppendUint32(nil, clientFixedNewstyl|clientNoZeroes)
	b = binary.BigEndian.AppendUint64(b, optMagic)
	b = binary.BigEndian.AppendUint32(b, optExportName)
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
func (n *Client) request(typ uint16, off int64, length uint32, data, into []byte) error {
	n.handle++
	var h [28]byte
	binary.BigEndian.PutUint32(h[0:], requestMagic)
	binary.BigEndian.PutUint16(h[6:], typ)
	binary.BigEndian.PutUint64(h[8:], n.handle)
	binary.BigEndian.PutUint64(h[16:], uint64(off))
	binary.BigEndian.PutUint32(h[24:], length)
	n.c.SetDeadline(time.Now().Add(clientRequestLimit))
	defer n.c.SetDeadline(time.Time{})
	n.w.Write(h[:])
	n.w.Write(data)
	if err := n.w.Flush(); err != nil {
		return err
	}
	if typ == cmdDisc {
		return nil
	}
	var rep [16]byte
	if _, err := io.ReadFull(n.r, rep[:]); err != nil {
		return err
	}
	if m := binary.BigEndian.Uint32(rep[0:]); m != simpleReplyMag {
		return fmt.Errorf("bad reply magic %#x", m)
	}
	if got := binary.BigEndian.Uint64(rep[8:]); got != n.handle {
		return fmt.Errorf("reply for handle %d, want %d", got, n.handle)
	}
	if e := binary.BigEndian.Uint32(rep[4:]); e != 0 {
		return fmt.Errorf("request type %d at %d+%d: %w (errno %d)", typ, off, length, ErrRemote, e)
	}
	if into != nil {
		_, err := io.ReadFull(n.r, into)
		return err
	}
	return nil
}

// Size is the export's size from the handshake.
func (n *Client) Size() int64 { return n.size }

// WriteAt writes p at off.
func (n *Client) WriteAt(p []byte, off int64) error {
	if len(p) > ClientMaxTransfer {
		return fmt.Errorf("nbd write of %d bytes: over %d", len(p), ClientMaxTransfer)
	}
	return n.request(cmdWrite, off, uint32(len(p)), p, nil)
}

// ReadAt reads len(p) bytes at off.
func (n *Client) ReadAt(p []byte, off int64) error {
	if len(p) > ClientMaxTransfer {
		return fmt.Errorf("nbd read of %d bytes: over %d", len(p), ClientMaxTransfer)
	}
	return n.request(cmdRead, off, uint32(len(p)), nil, p)
}

// WriteZeroes is NBD_CMD_WRITE_ZEROES.
func (n *Client) WriteZeroes(off int64, length uint32) error {
	return n.request(cmdWriteZeroes, off, length, nil, nil)
}

// Trim is NBD_CMD_TRIM.
func (n *Client) Trim(off int64, length uint32) error {
	return n.request(cmdTrim, off, length, nil, nil)
}

// Flush is NBD_CMD_FLUSH: every write acknowledged before it is durable.
func (n *Client) Flush() error { return n.request(cmdFlush, 0, 0, nil, nil) }

// Close sends NBD_CMD_DISC and closes the connection.
func (n *Client) Close() error {
	n.request(cmdDisc, 0, 0, nil, nil)
	return n.c.Close()
}

// Abort closes the connection without NBD_CMD_DISC, for a server that is
// gone or a connection in an unknown state.
func (n *Client) Abort() error { return n.c.Close() }
