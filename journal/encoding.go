package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// Byte layout constants (see docs/journal-format.md). All integers are
// little-endian.
const (
	Version      = 3   // format version written; versions 1, 2 and 3 are read
	HeaderSize   = 160 // fixed header at offset 0 (versions 2 and 3); the payload region starts here
	HeaderSizeV1 = 128 // the header of a version 1 file
	FooterSize   = 128 // fixed footer at the end of a sealed file
	RecordFixed  = 48  // fixed part of every index record
	// MinFileSize is the size of the smallest file of any version read.
	MinFileSize = HeaderSizeV1 + FooterSize

	sidecarHeaderSize = 16                    // magic + file seq
	frameOverhead     = 8                     // u32 length before, u32 CRC32C after each sidecar record
	markerMinVar      = 1 + 1 + 8 + 1 + 1 + 1 // label len, group len, group seq, arg count, member count, label >= 1 byte
	// maxRecordSize bounds one encoded record: fixed part + label, group,
	// group seq, args, members.
	maxRecordSize = RecordFixed + 1 + MaxNameLen + 1 + MaxNameLen + 8 + 1 + MaxArgs*(1+MaxNameLen+2+MaxArgValueLen) +
		1 + MaxMembers*(1+MaxNameLen)
)

// headerSize is the header size of a format version (0: the current one).
func headerSize(version uint16) int64 {
	if version == 1 {
		return HeaderSizeV1
	}
	return HeaderSize
}

// The variable part of a record must fit its u16 length field (compile-time check).
const _ = uint16(maxRecordSize - RecordFixed)

var (
	headerMagic  = [8]byte{0x89, 'A', 'I', 'M', 'J', '\r', '\n', 0x1a}
	footerMagic  = [8]byte{0x89, 'A', 'I', 'M', 'J', 'E', 'N', 'D'}
	sidecarMagic = [8]byte{0x89, 'A', 'I', 'M', 'J', 'I', 'D', 'X'}

	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	le         = binary.LittleEndian
)

// Checksum returns the CRC32C (Castagnoli) of b, as stored in Record.CRC.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// footer is the decoded fixed-size trailer of a sealed file.
type footer struct {
	PayloadOff, PayloadLen int64
	IndexOff, IndexLen     int64
	Records                uint32
	Writes, Zeros, Trims   uint32
	Markers                uint32
	FirstSeq, LastSeq      uint64
	SHA256                 [32]byte
}

// counts tallies records by kind, as the footer stores them.
type counts struct{ records, writes, zeros, trims, markers uint32 }

func (c *counts) add(k Kind) {
	c.records++
	switch k {
	case KindWrite:
		c.writes++
	case KindZero:
		c.zeros++
	case KindTrim:
		c.trims++
	default:
		c.markers++
	}
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func encodeHeader(h Header) []byte {
	if h.Version == 0 {
		h.Version = Version
	}
	size := headerSize(h.Version)
	b := make([]byte, size)
	copy(b[0:8], headerMagic[:])
	le.PutUint16(b[8:], h.Version)
	le.PutUint16(b[10:], uint16(size))
	// b[12:16] flags, zero
	le.PutUint64(b[16:], h.FileSeq)
	le.PutUint64(b[24:], h.BaseSeq)
	le.PutUint64(b[32:], uint64(unixNano(h.Created)))
	le.PutUint64(b[40:], uint64(h.VolumeSize))
	b[48] = byte(len(h.Volume))
	copy(b[49:49+MaxNameLen], h.Volume)
	if h.Version >= 2 {
		b[113] = byte(h.Start)
		copy(b[128:144], h.Stream[:])
	}
	le.PutUint32(b[size-4:], Checksum(b[:size-4]))
	return b
}

// errShort is the decoder's error for a field that runs past its input.
var errShort = errors.New("short")

// ParseHeader decodes and checks the fixed header at the start of b (a whole
// file, or at least its first HeaderSize bytes); name is used in errors.
// The error is a *FormatError.
func ParseHeader(name string, b []byte) (Header, error) { return decodeHeader(name, b) }

// decodeHeader decodes and checks the fixed header. The returned error is a
// FormatError built with file.
func decodeHeader(file string, b []byte) (Header, error) {
	var h Header
	if len(b) < 10 || [8]byte(b[0:8]) != headerMagic {
		n := min(len(b), len(headerMagic))
		if len(b) < HeaderSizeV1 && string(b[:n]) == string(headerMagic[:n]) {
			return h, formatErr(file, ErrTruncated, "%d bytes, shorter than the header", len(b))
		}
		return h, formatErr(file, ErrForeign, "bad magic % x", b[:n])
	}
	h.Version = le.Uint16(b[8:])
	if h.Version < 1 || h.Version > Version {
		return h, formatErr(file, ErrForeign, "format version %d, this build reads versions 1 to %d", h.Version, Version)
	}
	size := int(headerSize(h.Version))
	if len(b) < size {
		return h, formatErr(file, ErrTruncated, "%d bytes, shorter than the %d-byte header", len(b), size)
	}
	if got, want := le.Uint32(b[size-4:]), Checksum(b[:size-4]); got != want {
		return h, formatErr(file, ErrCorrupt, "header CRC32C %08x, computed %08x", got, want)
	}
	if hs := le.Uint16(b[10:]); int(hs) != size {
		return h, formatErr(file, ErrCorrupt, "header size %d, want %d", hs, size)
	}
	if f := le.Uint32(b[12:]); f != 0 {
		return h, formatErr(file, ErrForeign, "unknown header flags %#x", f)
	}
	h.FileSeq = le.Uint64(b[16:])
	h.BaseSeq = le.Uint64(b[24:])
	h.Created = fromUnixNano(int64(le.Uint64(b[32:])))
	h.VolumeSize = int64(le.Uint64(b[40:]))
	n := int(b[48])
	if n > MaxNameLen {
		return h, formatErr(file, ErrCorrupt, "volume name length %d", n)
	}
	h.Volume = string(b[49 : 49+n])
	if err := ValidName(h.Volume); err != nil {
		return h, formatErr(file, ErrCorrupt, "volume name: %v", err)
	}
	if !allZero(b[49+n : 113]) {
		return h, formatErr(file, ErrCorrupt, "volume name padding not zero")
	}
	if err := decodeHeaderV2(file, b, &h); err != nil {
		return h, err
	}
	if h.FileSeq == 0 || h.BaseSeq == 0 || h.VolumeSize <= 0 {
		return h, formatErr(file, ErrCorrupt, "file seq %d, base seq %d, volume size %d: must all be positive", h.FileSeq, h.BaseSeq, h.VolumeSize)
	}
	return h, nil
}

// decodeHeaderV2 decodes the fields after the volume name: reserved bytes
// in version 1; start kind and stream id in version 2.
func decodeHeaderV2(file string, b []byte, h *Header) error {
	if h.Version == 1 {
		if !allZero(b[113:124]) {
			return formatErr(file, ErrCorrupt, "reserved header bytes not zero")
		}
		return nil
	}
	h.Start = StartKind(b[113])
	copy(h.Stream[:], b[128:144])
	switch {
	case h.Start > StartDelta:
		return formatErr(file, ErrCorrupt, "unknown stream start kind %d", h.Start)
	case !allZero(b[114:128]) || !allZero(b[144:156]):
		return formatErr(file, ErrCorrupt, "reserved header bytes not zero")
	case h.Stream.IsZero():
		return formatErr(file, ErrCorrupt, "no stream id")
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func encodeFooter(f footer, version uint16) []byte {
	if version == 0 {
		version = Version
	}
	b := make([]byte, FooterSize)
	copy(b[0:8], footerMagic[:])
	le.PutUint16(b[8:], version)
	le.PutUint16(b[10:], FooterSize)
	le.PutUint64(b[16:], uint64(f.PayloadOff))
	le.PutUint64(b[24:], uint64(f.PayloadLen))
	le.PutUint64(b[32:], uint64(f.IndexOff))
	le.PutUint64(b[40:], uint64(f.IndexLen))
	le.PutUint32(b[48:], f.Records)
	le.PutUint32(b[52:], f.Writes)
	le.PutUint32(b[56:], f.Zeros)
	le.PutUint32(b[60:], f.Trims)
	le.PutUint32(b[64:], f.Markers)
	le.PutUint64(b[72:], f.FirstSeq)
	le.PutUint64(b[80:], f.LastSeq)
	copy(b[88:120], f.SHA256[:])
	le.PutUint32(b[124:], Checksum(b[:124]))
	return b
}

// decodeFooter decodes the last FooterSize bytes of b, a file with header h,
// and checks that the regions it names tile the file exactly. It does not
// check the SHA-256.
func decodeFooter(file string, b []byte, h Header) (footer, error) {
	if int64(len(b)) < h.Size()+FooterSize {
		return footer{}, formatErr(file, ErrTruncated, "%d bytes, shorter than header plus footer (%d)", len(b), h.Size()+FooterSize)
	}
	return decodeFooterAt(file, b[len(b)-FooterSize:], int64(len(b)), h)
}

// decodeFooterAt decodes footer bytes p of a file of size bytes with header
// h.
func decodeFooterAt(file string, p []byte, size int64, h Header) (footer, error) {
	var f footer
	hs := h.Size()
	end := size - FooterSize
	if [8]byte(p[0:8]) != footerMagic {
		return f, formatErr(file, ErrTruncated, "no footer at the end (file cut short or never sealed)")
	}
	if got, want := le.Uint32(p[124:]), Checksum(p[:124]); got != want {
		return f, formatErr(file, ErrCorrupt, "footer CRC32C %08x, computed %08x", got, want)
	}
	if v, fs := le.Uint16(p[8:]), le.Uint16(p[10:]); v != h.Version || fs != FooterSize {
		return f, formatErr(file, ErrCorrupt, "footer version %d size %d", v, fs)
	}
	if le.Uint32(p[12:]) != 0 || le.Uint32(p[68:]) != 0 || le.Uint32(p[120:]) != 0 {
		return f, formatErr(file, ErrCorrupt, "reserved footer bytes not zero")
	}
	f.PayloadOff = int64(le.Uint64(p[16:]))
	f.PayloadLen = int64(le.Uint64(p[24:]))
	f.IndexOff = int64(le.Uint64(p[32:]))
	f.IndexLen = int64(le.Uint64(p[40:]))
	f.Records = le.Uint32(p[48:])
	f.Writes = le.Uint32(p[52:])
	f.Zeros = le.Uint32(p[56:])
	f.Trims = le.Uint32(p[60:])
	f.Markers = le.Uint32(p[64:])
	f.FirstSeq = le.Uint64(p[72:])
	f.LastSeq = le.Uint64(p[80:])
	copy(f.SHA256[:], p[88:120])
	// Every length is checked against the file before any sum, so nothing overflows.
	switch {
	case f.PayloadOff != hs:
		return f, formatErr(file, ErrCorrupt, "payload offset %d, want %d", f.PayloadOff, hs)
	case f.PayloadLen < 0 || f.PayloadLen > end-hs:
		return f, formatErr(file, ErrCorrupt, "payload length %d outside the file", f.PayloadLen)
	case f.IndexOff != f.PayloadOff+f.PayloadLen:
		return f, formatErr(file, ErrCorrupt, "index offset %d, want %d (right after the payload)", f.IndexOff, f.PayloadOff+f.PayloadLen)
	case f.IndexLen < 0 || f.IndexLen != end-f.IndexOff:
		return f, formatErr(file, ErrCorrupt, "index length %d, want %d (up to the footer)", f.IndexLen, end-f.IndexOff)
	case f.Records == 0 || f.Records > MaxRecords:
		return f, formatErr(file, ErrCorrupt, "record count %d, want 1..%d", f.Records, MaxRecords)
	case int64(f.Records)*RecordFixed > f.IndexLen:
		return f, formatErr(file, ErrCorrupt, "%d records cannot fit in a %d-byte index", f.Records, f.IndexLen)
	case uint64(f.Writes)+uint64(f.Zeros)+uint64(f.Trims)+uint64(f.Markers) != uint64(f.Records):
		return f, formatErr(file, ErrCorrupt, "kind counts do not add up to %d records", f.Records)
	case f.FirstSeq == 0 || f.LastSeq < f.FirstSeq || f.LastSeq-f.FirstSeq != uint64(f.Records)-1:
		return f, formatErr(file, ErrCorrupt, "sequence %d..%d does not match %d records", f.FirstSeq, f.LastSeq, f.Records)
	}
	return f, nil
}

// appendRecord appends the index encoding of r to b, as format version
// version lays it out (group members from version 2 on).
func appendRecord(b []byte, r *Record, version uint16) []byte {
	var fx [RecordFixed]byte
	fx[0] = byte(r.Kind)
	var v []byte
	if r.Kind.IsMarker() {
		v = make([]byte, 0, markerMinVar+len(r.Label)+len(r.Group)+len(r.Args)*16)
		v = append(v, byte(len(r.Label)))
		v = append(v, r.Label...)
		v = append(v, byte(len(r.Group)))
		v = append(v, r.Group...)
		v = le.AppendUint64(v, r.GroupSeq)
		v = append(v, byte(len(r.Args)))
		for _, a := range r.Args {
			v = append(v, byte(len(a.Key)))
			v = append(v, a.Key...)
			v = le.AppendUint16(v, uint16(len(a.Value)))
			v = append(v, a.Value...)
		}
		if version != 1 {
			v = append(v, byte(len(r.Members)))
			for _, m := range r.Members {
				v = append(v, byte(len(m)))
				v = append(v, m...)
			}
		}
	}
	le.PutUint16(fx[2:], uint16(len(v)))
	le.PutUint32(fx[4:], r.CRC)
	le.PutUint64(fx[8:], r.Seq)
	le.PutUint64(fx[16:], uint64(unixNano(r.Time)))
	le.PutUint64(fx[24:], uint64(r.Offset))
	le.PutUint64(fx[32:], uint64(r.Length))
	le.PutUint64(fx[40:], uint64(r.DataOff))
	b = append(b, fx[:]...)
	return append(b, v...)
}

// decodeRecord decodes one record from the front of b, encoded as format
// version version lays it out, and returns it with the number of bytes used.
// It checks the encoding only; Record.Validate and the caller check the
// values.
func decodeRecord(b []byte, version uint16) (Record, int, error) {
	var r Record
	if len(b) < RecordFixed {
		return r, 0, fmt.Errorf("%d bytes left, a record needs %d", len(b), RecordFixed)
	}
	r.Kind = Kind(b[0])
	if r.Kind == KindWatermark && version < 3 {
		return r, 0, fmt.Errorf("watermark record in a version %d file (version 3 and later only)", version)
	}
	if b[1] != 0 {
		return r, 0, fmt.Errorf("unknown record flags %#x", b[1])
	}
	vlen := int(le.Uint16(b[2:]))
	r.CRC = le.Uint32(b[4:])
	r.Seq = le.Uint64(b[8:])
	r.Time = fromUnixNano(int64(le.Uint64(b[16:])))
	r.Offset = int64(le.Uint64(b[24:]))
	r.Length = int64(le.Uint64(b[32:]))
	r.DataOff = int64(le.Uint64(b[40:]))
	if len(b)-RecordFixed < vlen {
		return r, 0, fmt.Errorf("record claims %d variable bytes, %d left", vlen, len(b)-RecordFixed)
	}
	n := RecordFixed + vlen
	if !r.Kind.IsMarker() {
		if vlen != 0 {
			return r, 0, fmt.Errorf("%s record with %d variable bytes", r.Kind, vlen)
		}
		return r, n, nil
	}
	if err := decodeMarker(&r, b[RecordFixed:n], version); err != nil {
		return r, 0, err
	}
	return r, n, nil
}

// decodeMarker decodes the variable part of a marker record; v must be used
// exactly.
func decodeMarker(r *Record, v []byte, version uint16) error {
	d := decoder{b: v}
	r.Label = d.str(int(d.u8()))
	r.Group = d.str(int(d.u8()))
	r.GroupSeq = d.u64()
	nargs := int(d.u8())
	if nargs > MaxArgs {
		return fmt.Errorf("%d marker arguments, at most %d", nargs, MaxArgs)
	}
	if nargs > 0 {
		r.Args = make([]KV, 0, nargs)
	}
	for i := 0; i < nargs && d.err == nil; i++ {
		k := d.str(int(d.u8()))
		val := d.str(int(d.u16()))
		r.Args = append(r.Args, KV{Key: k, Value: val})
	}
	if version != 1 {
		nm := int(d.u8())
		if nm > MaxMembers {
			return fmt.Errorf("%d group members, at most %d", nm, MaxMembers)
		}
		for i := 0; i < nm && d.err == nil; i++ {
			r.Members = append(r.Members, d.str(int(d.u8())))
		}
	}
	if d.err != nil {
		return fmt.Errorf("marker fields run past the record")
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%d stray bytes after the marker fields", len(d.b))
	}
	return nil
}

// decoder reads fields from a byte slice; after the first short read every
// read returns zero and err is set.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil || n > len(d.b) {
		d.err = errShort
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) u8() uint8 {
	if p := d.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if p := d.take(2); p != nil {
		return le.Uint16(p)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if p := d.take(8); p != nil {
		return le.Uint64(p)
	}
	return 0
}

func (d *decoder) str(n int) string { return string(d.take(n)) }
