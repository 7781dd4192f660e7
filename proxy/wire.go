package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Frame types of the WAN protocol (docs/wire-protocol.md). Numbers are part of
// the protocol: never renumber them.
const (
	TypeHello   byte = 1  // client → server, control stream: protocol settings
	TypeHelloOK byte = 2  // server → client, control stream: settings accepted
	TypeRefuse  byte = 3  // server → client, control stream: settings refused (reason)
	TypeHeld    byte = 4  // server → client, control stream: piece of the store's held list
	TypeFile    byte = 10 // client → server, file stream: the file's description
	TypeData    byte = 11 // client → server: piece of metadata + payload stream (or raw file)
	TypeMiss    byte = 12 // server → client: piece of the miss list
	TypeAnswer  byte = 13 // client → server: piece of the answer to the miss list
	TypeResult  byte = 14 // server → client: dst's verdict (push code + message)
)

// Protocol constants.
const (
	// Magic opens HELLO and HELLO_OK.
	Magic = "AIMW"
	// Version is the WAN protocol version (also in transport.ALPN).
	// Version 2 added the file sequence to FILE; version 3 added the store
	// capacity and priming mark to HELLO and HELLO_OK, streams the held
	// list as entries, and stripes transfers (STRIPED); version 4 added
	// FILE's flags (a file that may be decoded out of turn).
	Version = 4
	// MaxPiece is the largest piece of a blob in one frame.
	MaxPiece = 1 << 20
	// MaxBody is the largest frame body accepted.
	MaxBody = MaxPiece + 1024
	// headerLen is the frame header: type byte and big-endian uint32 length.
	headerLen = 5
)

// ErrFrame wraps every malformed-frame error.
var ErrFrame = errors.New("malformed WAN frame")

func frameErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFrame}, a...)...)
}

// Mode says how a file's bytes travel.
type Mode uint8

const (
	// ModeOptimize: metadata zstd-compressed, payload as a dedupe stream.
	ModeOptimize Mode = 1
	// ModePassthrough: the raw file bytes, no dedupe, no compression.
	ModePassthrough Mode = 2
)

// String names the mode as the --mode flag spells it.
func (m Mode) String() string {
	switch m {
	case ModeOptimize:
		return "optimize"
	case ModePassthrough:
		return "passthrough"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ParseMode reads "optimize" or "passthrough" ("" = optimize).
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "optimize":
		return ModeOptimize, nil
	case "passthrough", "pass-through":
		return ModePassthrough, nil
	}
	return 0, fmt.Errorf("mode %q: want optimize or passthrough", s)
}

// WANHello is the body of the WAN protocol's HELLO and HELLO_OK (distinct
// from push.Hello, the LAN push protocol's hello).
type WANHello struct {
	Version uint16
	Mode    Mode
	Node    string
	Params  string // dedupe.Params.ID of the sender
	Epoch   uint64 // client: the store epoch its peer index describes (0 = none); server: its store epoch
	Held    uint64 // server: at most this many held-list entries follow in HELD frames (0 = none)
	// Capacity is the server's store capacity in bytes (the client sizes its
	// peer index to it); 0 from the client.
	Capacity uint64
	// Mark: client: the store's priming mark its peer index has learnt;
	// server: its store's mark.
	Mark uint64
}

// maxHeldEntries bounds the held list a HELLO_OK may announce (2^32
// entries: a store of 32 PiB).
const maxHeldEntries = 1 << 32

// FileHeader is the body of FILE: what the file is and how its bytes follow.
type FileHeader struct {
	Volume     string
	Name       string
	Seq        uint64 // the journal file sequence (push.Offer.Seq)
	Size       int64
	SHA256     [32]byte
	Mode       Mode
	PayloadOff int64 // where the payload region starts in the file
	PayloadLen int64 // its length
	MetaLen    int64 // bytes of compressed metadata at the start of the DATA blob
	StreamLen  int64 // bytes of the dedupe stream (or raw file) after the metadata
	// AnyOrder: the dedupe stream relies on no chunk of a file the source
	// edge has not seen acknowledged (dedupe.EncodeStats.After is empty),
	// so the destination edge may decode it before files accepted earlier.
	AnyOrder bool
}

// File header flags (the FILE frame's flags byte).
const (
	fileAnyOrder = 1 << 0
	fileFlags    = fileAnyOrder // the flags defined
)

// Result is the body of RESULT: dst's verdict, as a push wire code.
type Result struct {
	Code uint16
	Msg  string
}

// writeFrame writes one frame and returns the bytes written.
func writeFrame(w io.Writer, typ byte, body []byte) (int, error) {
	if len(body) > MaxBody {
		return 0, fmt.Errorf("frame type %d: body of %d bytes above %d", typ, len(body), MaxBody)
	}
	buf := make([]byte, headerLen, headerLen+len(body))
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:], uint32(len(body)))
	return w.Write(append(buf, body...))
}

// readFrame reads one frame into *buf (reused) and returns its type and body,
// which aliases *buf.
func readFrame(r io.Reader, buf *[]byte) (byte, []byte, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > MaxBody {
		return 0, nil, frameErr("type %d: body of %d bytes above %d", h[0], n, MaxBody)
	}
	if cap(*buf) < int(n) {
		*buf = make([]byte, n)
	}
	body := (*buf)[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, fmt.Errorf("frame type %d: %w", h[0], noEOF(err))
	}
	return h[0], body, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// writeBlob writes b as frames of typ, each body a flag byte (1 = last piece)
// and at most MaxPiece bytes. An empty blob is one empty last piece.
func writeBlob(w io.Writer, typ byte, b []byte) (int, error) {
	total := 0
	for {
		piece := b[:min(len(b), MaxPiece)]
		b = b[len(piece):]
		flag := byte(0)
		if len(b) == 0 {
			flag = 1
		}
		n, err := writeFrame(w, typ, append([]byte{flag}, piece...))
		total += n
		if err != nil || flag == 1 {
			return total, err
		}
	}
}

// readBlob reads frames of typ up to the last piece, appending to dst; the
// blob may not exceed limit bytes.
func readBlob(r io.Reader, buf *[]byte, typ byte, limit int64, dst []byte) ([]byte, error) {
	for {
		t, body, err := readFrame(r, buf)
		if err != nil {
			return dst, err
		}
		if t != typ {
			return dst, frameErr("got frame type %d inside a blob of type %d", t, typ)
		}
		if len(body) < 1 || body[0] > 1 {
			return dst, frameErr("blob piece of type %d without a valid flag", typ)
		}
		if int64(len(dst)+len(body)-1) > limit {
			return dst, frameErr("blob of type %d above its limit of %d bytes", typ, limit)
		}
		dst = append(dst, body[1:]...)
		if body[0] == 1 {
			return dst, nil
		}
	}
}

// encoder appends fields; decoder reads them and remembers the first error.
type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)   { e.b = append(e.b, v) }
func (e *encoder) u16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *encoder) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }

// str writes a length-prefixed string, cut to maxString bytes (of valid UTF-8).
func (e *encoder) str(s string) {
	if len(s) > maxString {
		s = strings.ToValidUTF8(s[:maxString], "")
	}
	e.u16(uint16(len(s)))
	e.b = append(e.b, s...)
}

// maxString bounds strings in frames (names, messages).
const maxString = 4096

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.err = frameErr("body too short")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() uint8 {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) str() string {
	v := d.take(int(d.u16()))
	if d.err == nil && !utf8.Valid(v) {
		d.err = frameErr("string is not UTF-8")
	}
	return string(v)
}

// size reads a non-negative int64 no larger than limit.
func (d *decoder) size(what string, limit int64) int64 {
	v := d.u64()
	if d.err == nil && v > uint64(limit) {
		d.err = frameErr("%s %d above %d", what, v, limit)
	}
	return int64(v)
}

func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = frameErr("%d trailing bytes", len(d.b))
	}
	return d.err
}

// readBlobRest continues a blob whose first frame body (flag and piece) was
// already read by the caller.
func readBlobRest(r io.Reader, buf *[]byte, first []byte, typ byte, limit int64) ([]byte, error) {
	if len(first) < 1 || first[0] > 1 {
		return nil, frameErr("blob piece of type %d without a valid flag", typ)
	}
	if int64(len(first)-1) > limit {
		return nil, frameErr("blob of type %d above its limit of %d bytes", typ, limit)
	}
	dst := append([]byte(nil), first[1:]...)
	if first[0] == 1 {
		return dst, nil
	}
	return readBlob(r, buf, typ, limit, dst)
}
