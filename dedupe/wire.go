package dedupe

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// formatVersion is the version byte of every encoded message.
const formatVersion = 1

// Magic numbers of the encoded messages.
var (
	magicStream = [4]byte{'A', 'I', 'M', 'D'} // encoded payload
	magicMisses = [4]byte{'A', 'I', 'M', 'M'} // miss list (decoder -> encoder)
	magicAnswer = [4]byte{'A', 'I', 'M', 'A'} // answer (encoder -> decoder)
	magicHeld   = [4]byte{'A', 'I', 'M', 'H'} // held list (store -> peer index)
	magicIndex  = [4]byte{'A', 'I', 'M', 'S'} // store sidecar (epoch + insertion log)
)

// Op tags of the encoded stream (see docs/dedupe.md for the table).
const (
	opLiteral = 0x01 // uvarint length; bytes come from the literal stream
	opRef     = 0x02 // uvarint length, 32-byte fingerprint
	opRun     = 0x03 // uvarint count, uvarint length, 32-byte first fingerprint, 16-byte run check
	opZero    = 0x04 // uvarint length
	opHead    = 0x05 // uvarint length, 32-byte fingerprint W, 8-byte check: the last bytes of pred(W)
	opTail    = 0x06 // uvarint length, 8-byte check: the first bytes of succ(previous chunk)
)

// Hard limits that bound what a decoder allocates for a hostile input.
const (
	// DefaultMaxPayload is the default largest payload a Decoder accepts.
	DefaultMaxPayload = 256 << 20
	// MaxRunChunks is the largest chunk count of one run reference.
	MaxRunChunks = 1 << 16
	// zstdWindow is the window of the literal stream's zstd frame; the
	// decoder refuses frames that ask for more.
	zstdWindow = 8 << 20
	// MaxBases is the largest number of bases (delta dictionary chunks) of
	// one stream, and MaxDict the largest dictionary they may form.
	MaxBases = 1024
	MaxDict  = 4 << 20
	// runCheckLen is the length of a run reference's check value.
	runCheckLen = 16
	// edgeCheckLen is the length of a head/tail op's check value.
	edgeCheckLen = 8
)

// Errors of the codec. Decoding errors wrap ErrCorrupt (malformed or
// hostile input) or ErrMismatch (a well-formed stream that does not belong
// to these params or this payload).
var (
	ErrCorrupt  = errors.New("dedupe: corrupt stream")
	ErrMismatch = errors.New("dedupe: stream does not match")
	ErrTooLarge = errors.New("dedupe: size above limit")
	ErrPending  = errors.New("dedupe: payload has unresolved references")
)

// reader is a bounds-checked cursor over an encoded message. The first
// error sticks; every accessor returns zero values after it.
type reader struct {
	b    []byte
	pos  int
	err  error
	what string // message kind, for errors
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d: %s", ErrCorrupt, r.what, r.pos, fmt.Sprintf(format, args...))
	}
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.pos {
		r.fail("truncated: need %d bytes, have %d", n, len(r.b)-r.pos)
		return nil
	}
	v := r.b[r.pos : r.pos+n]
	r.pos += n
	return v
}

func (r *reader) byte() byte {
	v := r.bytes(1)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) u64() uint64 {
	v := r.bytes(8)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (r *reader) u32() uint32 {
	v := r.bytes(4)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

// uvarint reads a uvarint that must be at most max.
func (r *reader) uvarint(name string, max uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.pos:])
	if n <= 0 {
		r.fail("bad varint for %s", name)
		return 0
	}
	if v > max {
		r.fail("%s %d above limit %d", name, v, max)
		return 0
	}
	r.pos += n
	return v
}

func (r *reader) fingerprint() (f Fingerprint) {
	copy(f[:], r.bytes(len(f)))
	return f
}

// header checks magic and version.
func (r *reader) header(magic [4]byte) {
	m := r.bytes(4)
	if r.err == nil && [4]byte(m) != magic {
		r.fail("bad magic %q, want %q", m, magic[:])
	}
	if v := r.byte(); r.err == nil && v != formatVersion {
		r.fail("unsupported version %d", v)
	}
}

// end checks that the whole message was consumed.
func (r *reader) end() error {
	if r.err == nil && r.pos != len(r.b) {
		r.fail("%d trailing bytes", len(r.b)-r.pos)
	}
	return r.err
}

func appendHeader(dst []byte, magic [4]byte) []byte {
	return append(append(dst, magic[:]...), formatVersion)
}
