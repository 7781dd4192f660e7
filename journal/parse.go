package journal

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// File is a parsed, fully validated journal file.
type File struct {
	Header  Header
	Records []Record
	Size    int64    // bytes of the whole file
	SHA256  [32]byte // of all bytes before the footer, as stored in the footer

	b          []byte
	payloadOff int64
	payloadLen int64
}

// Payload returns the contiguous payload region: the data of all writes,
// back to back, in record order.
func (f *File) Payload() []byte { return f.b[f.payloadOff : f.payloadOff+f.payloadLen] }

// Data returns the bytes of a write record of this file (a slice of the
// payload region), or nil for other kinds or a record that does not fit the
// payload region.
func (f *File) Data(r Record) []byte {
	if r.Kind != KindWrite || r.DataOff < 0 || r.Length < 0 || r.DataOff > f.payloadLen || r.Length > f.payloadLen-r.DataOff {
		return nil
	}
	return f.Payload()[r.DataOff : r.DataOff+r.Length]
}

// Bytes returns the whole file as parsed (not a copy).
func (f *File) Bytes() []byte { return f.b }

// FirstSeq and LastSeq return the sequence range of the file's records.
func (f *File) FirstSeq() uint64 { return f.Records[0].Seq }

// LastSeq returns the sequence number of the file's last record.
func (f *File) LastSeq() uint64 { return f.Records[len(f.Records)-1].Seq }

// ReadFile reads and parses the journal file at path. Errors name path.
func ReadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	return Parse(path, b)
}

// ParseExpect parses b like Parse and also requires that the file belongs to
// volume (else a FormatError wrapping ErrWrongVolume).
func ParseExpect(name string, b []byte, volume string) (*File, error) {
	f, err := Parse(name, b)
	if err != nil {
		return nil, err
	}
	if f.Header.Volume != volume {
		return nil, formatErr(name, ErrWrongVolume, "file of volume %q, expected %q", f.Header.Volume, volume)
	}
	return f, nil
}

// Layout returns where the payload region of a sealed file is, checking the
// header and footer but not the checksums of the contents (cheap). Use Parse
// to validate a file fully.
func Layout(b []byte) (payloadOff, payloadLen int64, err error) {
	const name = "(layout)"
	h, err := decodeHeader(name, b)
	if err != nil {
		return 0, 0, err
	}
	ft, err := decodeFooter(name, b, h)
	if err != nil {
		return 0, 0, err
	}
	return ft.PayloadOff, ft.PayloadLen, nil
}

// Parse validates a whole journal file held in memory and returns its
// contents; name is used in errors. When name's base is a journal file name
// (FileName), the header's file sequence must match it. Every fault is
// reported as a *FormatError wrapping ErrTruncated, ErrCorrupt or
// ErrForeign. The returned File keeps b.
func Parse(name string, b []byte) (*File, error) {
	h, err := decodeHeader(name, b)
	if err != nil {
		return nil, err
	}
	if seq, err := ParseFileName(filepath.Base(name)); err == nil && seq != h.FileSeq {
		return nil, formatErr(name, ErrCorrupt, "header says file seq %d, the name says %d", h.FileSeq, seq)
	}
	ft, err := decodeFooter(name, b, h)
	if err != nil {
		return nil, err
	}
	end := len(b) - FooterSize
	if sum := sha256.Sum256(b[:end]); sum != ft.SHA256 {
		return nil, formatErr(name, ErrCorrupt, "SHA-256 of contents does not match the footer")
	}
	if ft.FirstSeq != h.BaseSeq {
		return nil, formatErr(name, ErrCorrupt, "footer first seq %d, header base seq %d", ft.FirstSeq, h.BaseSeq)
	}
	f := &File{Header: h, Size: int64(len(b)), SHA256: ft.SHA256, b: b, payloadOff: ft.PayloadOff, payloadLen: ft.PayloadLen}
	if err := f.parseIndex(name, ft); err != nil {
		return nil, err
	}
	return f, nil
}

// parseIndex decodes and checks every record against the payload region,
// the sequence and the footer's counts.
func (f *File) parseIndex(name string, ft footer) error {
	index := f.b[ft.IndexOff : ft.IndexOff+ft.IndexLen]
	// Records is bounded by the index length (checked in decodeFooter), so
	// this allocation is bounded by the input size.
	f.Records = make([]Record, 0, ft.Records)
	var c counts
	var dataEnd int64
	for i := 0; len(index) > 0; i++ {
		if i >= int(ft.Records) {
			return formatErr(name, ErrCorrupt, "index holds more than the %d records the footer counts", ft.Records)
		}
		r, n, err := decodeRecord(index, f.Header.Version)
		if err != nil {
			return formatErr(name, ErrCorrupt, "record %d: %v", i, err)
		}
		index = index[n:]
		if want := ft.FirstSeq + uint64(i); r.Seq != want {
			return formatErr(name, ErrCorrupt, "record %d: seq %d, want %d (sequence must be consecutive)", i, r.Seq, want)
		}
		if err := r.Validate(f.Header.VolumeSize); err != nil {
			return formatErr(name, ErrCorrupt, "record %d (seq %d): %v", i, r.Seq, err)
		}
		if len(r.Members) > 0 && !slices.Contains(r.Members, f.Header.Volume) {
			return formatErr(name, ErrCorrupt, "record %d (seq %d): group marker whose members %v leave out the file's volume %q", i, r.Seq, r.Members, f.Header.Volume)
		}
		if r.Kind == KindWrite {
			if r.DataOff != dataEnd {
				return formatErr(name, ErrCorrupt, "record %d (seq %d): data at payload offset %d, want %d (payload must be back to back)", i, r.Seq, r.DataOff, dataEnd)
			}
			if r.Length > f.payloadLen-dataEnd {
				return formatErr(name, ErrCorrupt, "record %d (seq %d): %d data bytes run past the payload region", i, r.Seq, r.Length)
			}
			dataEnd += r.Length
			if crc := Checksum(f.Data(r)); crc != r.CRC {
				return formatErr(name, ErrCorrupt, "record %d (seq %d): data CRC32C %08x, record says %08x", i, r.Seq, crc, r.CRC)
			}
		}
		c.add(r.Kind)
		f.Records = append(f.Records, r)
	}
	if c != (counts{ft.Records, ft.Writes, ft.Zeros, ft.Trims, ft.Markers}) {
		return formatErr(name, ErrCorrupt, "index holds %d records (%d writes, %d zeros, %d trims, %d markers), footer counts %d (%d, %d, %d, %d)",
			c.records, c.writes, c.zeros, c.trims, c.markers, ft.Records, ft.Writes, ft.Zeros, ft.Trims, ft.Markers)
	}
	if dataEnd != f.payloadLen {
		return formatErr(name, ErrCorrupt, "writes hold %d payload bytes, payload region is %d", dataEnd, f.payloadLen)
	}
	return nil
}
