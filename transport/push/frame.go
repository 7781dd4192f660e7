package push

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Protocol constants.
const (
	// Version is the protocol version this package speaks. Version 2 added
	// the file sequence to OFFER; a version-1 peer is refused (ErrVersion).
	Version = 2
	// Magic opens every HELLO and HELLO_OK body.
	Magic = "AIMP"
	// MaxData is the largest payload of one DATA frame.
	MaxData = 256 << 10
	// MaxFrameBody is the largest frame body accepted (a full DATA frame plus
	// its fixed fields, with room to spare).
	MaxFrameBody = MaxData + 1024
	// MaxVolumes bounds the volume list of a hello.
	MaxVolumes = 1024
	// frameHeader is the type byte plus the uint32 length.
	frameHeader = 5
	// maxString bounds any length-prefixed string (names, messages).
	maxString = 4096
)

// FrameType is the first byte of a frame.
type FrameType uint8

// Frame types. Numbers are part of the protocol.
const (
	TypeHello   FrameType = 1  // client → server: magic, version, node, volumes
	TypeHelloOK FrameType = 2  // server → client: magic, version, node, volumes
	TypeOffer   FrameType = 3  // client → server: id, volume, name, file seq, size, sha256
	TypeAccept  FrameType = 4  // server → client: id, resume offset
	TypeData    FrameType = 5  // client → server: id, offset, bytes
	TypeEnd     FrameType = 6  // client → server: id (all bytes sent)
	TypeAck     FrameType = 7  // server → client: id (durably stored)
	TypeNack    FrameType = 8  // server → client (or either way for id 0): id, code, message
	TypePing    FrameType = 9  // either way: token
	TypePong    FrameType = 10 // either way: the token of the ping
	TypeCancel  FrameType = 11 // client → server: id (sender gave up on the file)
	TypeSum     FrameType = 12 // client → server: id, volume, stream, end, offset, range, count (checksum request)
	TypeSums    FrameType = 13 // server → client: id, count, count×32-byte SHA-256 (answer to SUM)
)

func (t FrameType) String() string {
	names := [...]string{"", "HELLO", "HELLO_OK", "OFFER", "ACCEPT", "DATA", "END", "ACK", "NACK", "PING", "PONG", "CANCEL", "SUM", "SUMS"}
	if int(t) < len(names) && t != 0 {
		return names[t]
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// errFrame marks a malformed frame; it wraps ErrProtocol.
var errFrame = fmt.Errorf("%w: malformed frame", ErrProtocol)

// Msg is one decoded frame. Only the fields of its Type are meaningful.
type Msg struct {
	Type    FrameType
	Version uint16          // HELLO, HELLO_OK
	Hello   Hello           // HELLO, HELLO_OK
	ID      uint64          // OFFER, ACCEPT, DATA, END, ACK, NACK, CANCEL; token for PING/PONG
	Offer   Offer           // OFFER
	Offset  int64           // ACCEPT (resume offset), DATA
	Data    []byte          // DATA; aliases the read buffer
	Code    Code            // NACK
	Text    string          // NACK message
	Sum     SumRequest      // SUM
	Sums    [][SumSize]byte // SUMS
}

// readFrame reads one frame into buf (grown as needed up to MaxFrameBody) and
// returns its type and body (a slice of buf, valid until the next call).
func readFrame(r io.Reader, buf *[]byte) (FrameType, []byte, error) {
	var hdr [frameHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxFrameBody {
		return 0, nil, fmt.Errorf("%w: %s frame body of %d bytes exceeds limit %d", ErrProtocol, FrameType(hdr[0]), n, MaxFrameBody)
	}
	if cap(*buf) < int(n) {
		*buf = make([]byte, n, max(n, 64<<10))
	}
	body := (*buf)[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return FrameType(hdr[0]), body, nil
}

// ReadMsg reads and decodes one frame. buf is reused between calls; DATA
// payloads alias it.
func ReadMsg(r io.Reader, buf *[]byte) (Msg, error) {
	t, body, err := readFrame(r, buf)
	if err != nil {
		return Msg{}, err
	}
	return Decode(t, body)
}

// Decode parses the body of a frame of type t. It never panics: any
// malformed input returns an error wrapping ErrProtocol.
func Decode(t FrameType, body []byte) (Msg, error) {
	d := decoder{b: body}
	m := Msg{Type: t}
	switch t {
	case TypeHello, TypeHelloOK:
		if string(d.bytes(len(Magic))) != Magic && d.err == nil {
			return m, fmt.Errorf("%w: %s without protocol magic %q", ErrProtocol, t, Magic)
		}
		m.Version = d.u16()
		m.Hello.Node = d.str()
		nv := int(d.u16())
		if nv > MaxVolumes {
			return m, fmt.Errorf("%w: %s lists %d volumes, limit %d", ErrProtocol, t, nv, MaxVolumes)
		}
		for i := 0; i < nv && d.err == nil; i++ {
			m.Hello.Volumes = append(m.Hello.Volumes, d.str())
		}
	case TypeOffer:
		m.ID = d.u64()
		m.Offer.Volume = d.str()
		m.Offer.Name = d.str()
		m.Offer.Seq = d.u64()
		m.Offer.Size = d.i64()
		copy(m.Offer.SHA256[:], d.bytes(32))
	case TypeAccept:
		m.ID = d.u64()
		m.Offset = d.i64()
	case TypeData:
		m.ID = d.u64()
		m.Offset = d.i64()
		m.Data = d.rest()
		if len(m.Data) > MaxData {
			return m, fmt.Errorf("%w: DATA of %d bytes exceeds %d", ErrProtocol, len(m.Data), MaxData)
		}
	case TypeEnd, TypeAck, TypeCancel, TypePing, TypePong:
		m.ID = d.u64()
	case TypeNack:
		m.ID = d.u64()
		m.Code = Code(d.u16())
		m.Text = d.str()
	case TypeSum:
		m.ID = d.u64()
		m.Sum = d.sum()
	case TypeSums:
		m.ID = d.u64()
		m.Sums = d.sums()
	default:
		return m, fmt.Errorf("%w: unknown frame type %d", ErrProtocol, uint8(t))
	}
	if d.err != nil {
		return m, fmt.Errorf("%w: %s body of %d bytes: %w", ErrProtocol, t, len(body), d.err)
	}
	if len(d.b) != 0 {
		return m, fmt.Errorf("%w: %s body has %d trailing bytes", ErrProtocol, t, len(d.b))
	}
	if (t == TypeData || t == TypeAccept) && m.Offset < 0 {
		return m, fmt.Errorf("%w: %s with negative offset %d", ErrProtocol, t, m.Offset)
	}
	if t == TypeOffer && m.Offer.Size < 0 {
		return m, fmt.Errorf("%w: OFFER with negative size %d", ErrProtocol, m.Offer.Size)
	}
	return m, nil
}

// AppendMsg appends the encoded frame (header and body) of m to b.
func AppendMsg(b []byte, m Msg) []byte {
	start := len(b)
	b = append(b, byte(m.Type), 0, 0, 0, 0)
	switch m.Type {
	case TypeHello, TypeHelloOK:
		b = append(b, Magic...)
		b = binary.BigEndian.AppendUint16(b, m.Version)
		b = appendStr(b, m.Hello.Node)
		b = binary.BigEndian.AppendUint16(b, uint16(len(m.Hello.Volumes)))
		for _, v := range m.Hello.Volumes {
			b = appendStr(b, v)
		}
	case TypeOffer:
		b = binary.BigEndian.AppendUint64(b, m.ID)
		b = appendStr(b, m.Offer.Volume)
		b = appendStr(b, m.Offer.Name)
		b = binary.BigEndian.AppendUint64(b, m.Offer.Seq)
		b = binary.BigEndian.AppendUint64(b, uint64(m.Offer.Size))
		b = append(b, m.Offer.SHA256[:]...)
	case TypeAccept:
		b = binary.BigEndian.AppendUint64(b, m.ID)
		b = binary.BigEndian.AppendUint64(b, uint64(m.Offset))
	case TypeData:
		b = binary.BigEndian.AppendUint64(b, m.ID)
		b = binary.BigEndian.AppendUint64(b, uint64(m.Offset))
		b = append(b, m.Data...)
	case TypeEnd, TypeAck, TypeCancel, TypePing, TypePong:
		b = binary.BigEndian.AppendUint64(b, m.ID)
	case TypeNack:
		b = binary.BigEndian.AppendUint64(b, m.ID)
		b = binary.BigEndian.AppendUint16(b, uint16(m.Code))
		b = appendStr(b, m.Text)
	case TypeSum:
		b = binary.BigEndian.AppendUint64(b, m.ID)
		b = appendSum(b, m.Sum)
	case TypeSums:
		b = binary.BigEndian.AppendUint64(b, m.ID)
		b = appendSums(b, m.Sums)
	}
	binary.BigEndian.PutUint32(b[start+1:], uint32(len(b)-start-frameHeader))
	return b
}

// appendStr appends a uint16 length and the string, cut to maxString bytes.
func appendStr(b []byte, s string) []byte {
	if len(s) > maxString {
		s = s[:maxString]
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// decoder reads big-endian fields; the first short read sets err and all
// later reads return zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.err = io.ErrUnexpectedEOF
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) u16() uint16 {
	if p := d.bytes(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if p := d.bytes(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (d *decoder) i64() int64 {
	v := d.u64()
	if v > math.MaxInt64 {
		return -1 // reported as negative by Decode
	}
	return int64(v)
}

func (d *decoder) str() string {
	n := int(d.u16())
	if n > maxString && d.err == nil {
		d.err = fmt.Errorf("string of %d bytes exceeds %d", n, maxString)
	}
	return string(d.bytes(n))
}

func (d *decoder) rest() []byte {
	p := d.b
	d.b = nil
	return p
}
