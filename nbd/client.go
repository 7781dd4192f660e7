package nbd

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// Errors of the client. A request the server answered with an error wraps
// ErrRemote (as a *RemoteError); the connection stays usable. ErrConnection
// and ErrServerProtocol end the connection: every later request returns the
// same error, and the caller dials again.
var (
	ErrRemote         = errors.New("nbd server error")
	ErrConnection     = errors.New("nbd connection failed")
	ErrServerProtocol = errors.New("nbd server broke the protocol")
	ErrUnsupported    = errors.New("not supported by the nbd export")
	ErrRange          = errors.New("nbd request outside the export")
)

// ClientMaxTransfer is the largest read or write Client sends in one request
// (smaller when the server's maximum block size is smaller); longer ones are
// split.
const ClientMaxTransfer = 32 << 20

// maxZeroRequest bounds one WRITE_ZEROES or TRIM request (the length field
// has 32 bits); longer ranges are split.
const maxZeroRequest = 1 << 30

// Client defaults.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultRequestTimeout   = time.Minute
)

// Dialer connects Clients. The zero value uses the defaults.
type Dialer struct {
	HandshakeTimeout time.Duration // connect and negotiate; default 10s
	RequestTimeout   time.Duration // one request's round trip; default 1m
}

// Client is a small synchronous NBD client (fixed newstyle with NBD_OPT_GO,
// simple replies): one request at a time, so its caller knows exactly which
// writes the server acknowledged. The destination node destages into NBD
// volumes with it; the bench and the chaos harness write volumes with it, as
// a hypervisor would. It is not safe for concurrent use.
type Client struct {
	target  Target
	c       net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	info    ExportInfo
	cookie  uint64
	timeout time.Duration
	err     error // sticky: set once the connection is unusable
}

// ExportInfo is what the server told about the export in the handshake.
type ExportInfo struct {
	Size  int64  // bytes
	Flags uint16 // transmission flags (NBD_FLAG_*)
	// Block sizes from NBD_INFO_BLOCK_SIZE (min 1, preferred 4096, max
	// 32 MiB when the server sent none): requests are multiples of
	// MinBlock at multiples of MinBlock, and payloads at most MaxBlock.
	MinBlock, PreferredBlock, MaxBlock uint32
}

// ReadOnly reports NBD_FLAG_READ_ONLY.
func (e ExportInfo) ReadOnly() bool { return e.Flags&tfReadOnly != 0 }

// CanFlush reports NBD_FLAG_SEND_FLUSH.
func (e ExportInfo) CanFlush() bool { return e.Flags&tfSendFlush != 0 }

// CanFUA reports NBD_FLAG_SEND_FUA.
func (e ExportInfo) CanFUA() bool { return e.Flags&tfSendFUA != 0 }

// CanTrim reports NBD_FLAG_SEND_TRIM.
func (e ExportInfo) CanTrim() bool { return e.Flags&tfSendTrim != 0 }

// CanZero reports NBD_FLAG_SEND_WRITE_ZEROES.
func (e ExportInfo) CanZero() bool { return e.Flags&tfSendWriteZeroes != 0 }

// CanMultiConn reports NBD_FLAG_CAN_MULTI_CONN.
func (e ExportInfo) CanMultiConn() bool { return e.Flags&tfCanMultiConn != 0 }

// RemoteError is an error the server returned for one request.
type RemoteError struct {
	Command string        // READ, WRITE, FLUSH, TRIM, WRITE_ZEROES
	Offset  int64         // request offset
	Length  uint32        // request length
	Errno   syscall.Errno // the NBD error, as the matching errno (EINVAL for values the spec does not define)
	Raw     uint32        // the error value on the wire
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("nbd %s [%d,+%d): server error %d (%v)", e.Command, e.Offset, e.Length, e.Raw, e.Errno)
}

// Is matches ErrRemote; Unwrap gives the errno, so errors.Is(err,
// syscall.ENOSPC) works.
func (e *RemoteError) Is(target error) bool { return target == ErrRemote }
func (e *RemoteError) Unwrap() error        { return e.Errno }

// Dial connects to addr (host:port) over TCP and opens export.
func Dial(ctx context.Context, addr, export string) (*Client, error) {
	return Dialer{}.Dial(ctx, Target{Network: "tcp", Address: addr, Export: export})
}

// DialURI connects to the export an NBD URI names (see ParseURI).
func DialURI(ctx context.Context, uri string) (*Client, error) {
	t, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	return Dialer{}.Dial(ctx, t)
}

// Dial connects to t and negotiates its export.
func (d Dialer) Dial(ctx context.Context, t Target) (*Client, error) {
	nd := net.Dialer{Timeout: cmpOr(d.HandshakeTimeout, DefaultHandshakeTimeout)}
	c, err := nd.DialContext(ctx, t.Network, t.Address)
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrConnection, t, err)
	}
	return d.Client(ctx, c, t)
}

// Client negotiates t's export on an open connection c (closed on failure).
func (d Dialer) Client(ctx context.Context, c net.Conn, t Target) (*Client, error) {
	n := &Client{target: t, c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 256<<10),
		timeout: cmpOr(d.RequestTimeout, DefaultRequestTimeout)}
	c.SetDeadline(time.Now().Add(cmpOr(d.HandshakeTimeout, DefaultHandshakeTimeout)))
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	err := n.handshake()
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		c.Close()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("nbd %s: handshake: %w", t, err)
	}
	c.SetDeadline(time.Time{})
	return n, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Info is what the server told about the export.
func (n *Client) Info() ExportInfo { return n.info }

// Size is the export's size from the handshake.
func (n *Client) Size() int64 { return n.info.Size }

// Target is where the client is connected.
func (n *Client) Target() Target { return n.target }

// Err is the error that made the connection unusable, or nil.
func (n *Client) Err() error { return n.err }

// maxPayload is the largest READ/WRITE payload to send.
func (n *Client) maxPayload() int {
	m := min(int64(n.info.MaxBlock), ClientMaxTransfer)
	if a := int64(n.info.MinBlock); a > 1 {
		m -= m % a
	}
	return int(max(m, 1))
}

// checkRange fails for a request outside the export, before anything is
// sent.
func (n *Client) checkRange(cmd string, off, length int64) error {
	if off < 0 || length < 0 || off > n.info.Size || length > n.info.Size-off {
		return fmt.Errorf("%w: %s [%d,+%d) of an export of %d bytes (%s)", ErrRange, cmd, off, length, n.info.Size, n.target)
	}
	return nil
}

// WriteAt writes p at off, in requests of at most the maximum payload.
func (n *Client) WriteAt(p []byte, off int64) error { return n.write(p, off, 0) }

// WriteFUA writes p at off with NBD_CMD_FLAG_FUA: durable before the reply.
func (n *Client) WriteFUA(p []byte, off int64) error {
	if !n.info.CanFUA() {
		return fmt.Errorf("%w: FUA (%s)", ErrUnsupported, n.target)
	}
	return n.write(p, off, cmdFlagFUA)
}

func (n *Client) write(p []byte, off int64, flags uint16) error {
	if n.info.ReadOnly() {
		return fmt.Errorf("nbd WRITE on read-only export %s: %w", n.target, syscall.EROFS)
	}
	if err := n.checkRange("WRITE", off, int64(len(p))); err != nil {
		return err
	}
	step := n.maxPayload()
	for len(p) > 0 {
		k := min(len(p), step)
		if err := n.request(cmdWrite, flags, off, uint32(k), p[:k], nil); err != nil {
			return err
		}
		p, off = p[k:], off+int64(k)
	}
	return nil
}

// ReadAt reads len(p) bytes at off.
func (n *Client) ReadAt(p []byte, off int64) error {
	if err := n.checkRange("READ", off, int64(len(p))); err != nil {
		return err
	}
	step := n.maxPayload()
	for len(p) > 0 {
		k := min(len(p), step)
		if err := n.request(cmdRead, 0, off, uint32(k), nil, p[:k]); err != nil {
			return err
		}
		p, off = p[k:], off+int64(k)
	}
	return nil
}

// WriteZeroes is one NBD_CMD_WRITE_ZEROES request (see Zero for any length).
func (n *Client) WriteZeroes(off int64, length uint32) error {
	return n.Zero(off, int64(length), false)
}

// Zero makes [off, off+length) read as zeros with NBD_CMD_WRITE_ZEROES,
// letting the server punch holes unless noHole. It fails with
// ErrUnsupported when the export does not advertise WRITE_ZEROES.
func (n *Client) Zero(off, length int64, noHole bool) error {
	if !n.info.CanZero() {
		return fmt.Errorf("%w: WRITE_ZEROES (%s)", ErrUnsupported, n.target)
	}
	var flags uint16
	if noHole {
		flags = cmdFlagNoHole
	}
	return n.ranged(cmdWriteZeroes, flags, off, length)
}

// Trim is one NBD_CMD_TRIM request (see Discard for any length).
func (n *Client) Trim(off int64, length uint32) error { return n.Discard(off, int64(length)) }

// Discard is NBD_CMD_TRIM over any length: the server may forget the range
// (what it reads afterwards is not defined). It fails with ErrUnsupported
// when the export does not advertise TRIM.
func (n *Client) Discard(off, length int64) error {
	if !n.info.CanTrim() {
		return fmt.Errorf("%w: TRIM (%s)", ErrUnsupported, n.target)
	}
	return n.ranged(cmdTrim, 0, off, length)
}

// ranged sends a WRITE_ZEROES or TRIM over [off, off+length) in requests of
// at most maxZeroRequest bytes.
func (n *Client) ranged(typ, flags uint16, off, length int64) error {
	if n.info.ReadOnly() {
		return fmt.Errorf("nbd %s on read-only export %s: %w", cmdName(typ), n.target, syscall.EROFS)
	}
	if err := n.checkRange(cmdName(typ), off, length); err != nil {
		return err
	}
	step := int64(maxZeroRequest)
	for length > 0 {
		k := min(length, step)
		if err := n.request(typ, flags, off, uint32(k), nil, nil); err != nil {
			return err
		}
		off, length = off+k, length-k
	}
	return nil
}

// Flush is NBD_CMD_FLUSH: every write acknowledged before it is durable. It
// fails with ErrUnsupported when the export does not advertise FLUSH.
func (n *Client) Flush() error {
	if !n.info.CanFlush() {
		return fmt.Errorf("%w: FLUSH (%s)", ErrUnsupported, n.target)
	}
	return n.request(cmdFlush, 0, 0, 0, nil, nil)
}

// Close sends NBD_CMD_DISC (on a usable connection) and closes it.
func (n *Client) Close() error {
	if n.err == nil {
		n.request(cmdDisc, 0, 0, 0, nil, nil)
		n.err = fmt.Errorf("%w: client closed", ErrConnection)
	}
	return n.c.Close()
}

// Abort closes the connection without NBD_CMD_DISC, for a server that is
// gone or a connection in an unknown state.
func (n *Client) Abort() error {
	if n.err == nil {
		n.err = fmt.Errorf("%w: client aborted", ErrConnection)
	}
	return n.c.Close()
}

// fail makes the connection unusable with err (wrapped in kind) and returns
// the sticky error.
func (n *Client) fail(kind error, err error) error {
	if n.err == nil {
		n.err = fmt.Errorf("%w: %s: %w", kind, n.target, err)
		n.c.Close()
	}
	return n.err
}

// request sends one request and waits for its simple reply; data is a
// write's payload, into receives a read's data.
func (n *Client) request(typ, flags uint16, off int64, length uint32, data, into []byte) error {
	if n.err != nil {
		return n.err
	}
	n.cookie++
	var h [requestHdrSize]byte
	binary.BigEndian.PutUint32(h[0:], requestMagic)
	binary.BigEndian.PutUint16(h[4:], flags)
	binary.BigEndian.PutUint16(h[6:], typ)
	binary.BigEndian.PutUint64(h[8:], n.cookie)
	binary.BigEndian.PutUint64(h[16:], uint64(off))
	binary.BigEndian.PutUint32(h[24:], length)
	n.c.SetDeadline(time.Now().Add(n.timeout))
	n.w.Write(h[:])
	n.w.Write(data)
	if err := n.w.Flush(); err != nil {
		return n.fail(ErrConnection, fmt.Errorf("send %s: %w", cmdName(typ), err))
	}
	if typ == cmdDisc {
		return nil
	}
	err := n.reply(typ, off, length, into)
	if err == nil {
		n.c.SetDeadline(time.Time{})
	}
	return err
}

// reply reads the simple reply to the request just sent.
func (n *Client) reply(typ uint16, off int64, length uint32, into []byte) error {
	var rep [replyHdrSize]byte
	if _, err := io.ReadFull(n.r, rep[:]); err != nil {
		return n.fail(ErrConnection, fmt.Errorf("reply to %s: %w", cmdName(typ), err))
	}
	switch m := binary.BigEndian.Uint32(rep[0:]); m {
	case simpleReplyMag:
	case structuredReplyMag:
		return n.fail(ErrServerProtocol, fmt.Errorf("structured reply to %s, never negotiated", cmdName(typ)))
	default:
		return n.fail(ErrServerProtocol, fmt.Errorf("reply magic %#x to %s", m, cmdName(typ)))
	}
	if got := binary.BigEndian.Uint64(rep[8:]); got != n.cookie {
		return n.fail(ErrServerProtocol, fmt.Errorf("reply for cookie %d to %s, want %d", got, cmdName(typ), n.cookie))
	}
	if e := binary.BigEndian.Uint32(rep[4:]); e != 0 {
		re := &RemoteError{Command: cmdName(typ), Offset: off, Length: length, Errno: clientErrno(e), Raw: e}
		switch {
		case typ == cmdRead:
			// With simple replies the server either sends the data anyway or
			// drops the connection; the client cannot know which, so it
			// drops the connection itself.
			n.fail(ErrConnection, fmt.Errorf("dropped after a READ error (simple replies cannot resynchronize): %w", re))
		case e == errnoShutdown:
			n.request(cmdDisc, 0, 0, 0, nil, nil) // the spec asks for a soft disconnect
			n.fail(ErrConnection, fmt.Errorf("server shutting down: %w", re))
		}
		return re
	}
	if into != nil {
		if _, err := io.ReadFull(n.r, into); err != nil {
			return n.fail(ErrConnection, fmt.Errorf("READ [%d,+%d) data: %w", off, length, err))
		}
	}
	return nil
}

// clientErrno maps an NBD error value to an errno; values the spec does not
// define are treated as EINVAL, as it asks.
func clientErrno(e uint32) syscall.Errno {
	switch e {
	case errnoPerm:
		return syscall.EPERM
	case errnoIO:
		return syscall.EIO
	case errnoNoMem:
		return syscall.ENOMEM
	case errnoNoSpc:
		return syscall.ENOSPC
	case errnoOverflow:
		return syscall.EOVERFLOW
	case errnoNotSup:
		return syscall.EOPNOTSUPP
	case errnoShutdown:
		return syscall.ESHUTDOWN
	}
	return syscall.EINVAL
}
