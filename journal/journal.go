package journal

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is the type of a record.
type Kind uint8

// Record kinds. The numbers are part of the file format.
const (
	KindWrite    Kind = 1 // data written to the volume
	KindZero     Kind = 2 // range zeroed (NBD WRITE_ZEROES), no data bytes
	KindTrim     Kind = 3 // range discarded (NBD TRIM), no data bytes
	KindSnapshot Kind = 4 // snapshot marker with a label
	KindCustom   Kind = 5 // custom marker with a label and key=value arguments
	// KindWatermark (format version 3) says, by its timestamp T, that every
	// write the source acknowledged before T is in this file or an earlier
	// one. It changes nothing on the volume; a source writes it alone in a
	// heartbeat file when a volume is idle (Writer.Heartbeat).
	KindWatermark Kind = 6
)

// String returns the lower-case name of the kind ("write", "zero", ...).
func (k Kind) String() string {
	switch k {
	case KindWrite:
		return "write"
	case KindZero:
		return "zero"
	case KindTrim:
		return "trim"
	case KindSnapshot:
		return "snapshot"
	case KindCustom:
		return "custom"
	case KindWatermark:
		return "watermark"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// IsMarker reports whether records of this kind are markers.
func (k Kind) IsMarker() bool { return k == KindSnapshot || k == KindCustom }

// HasRange reports whether records of this kind change a range of the
// volume (write, zero, trim).
func (k Kind) HasRange() bool { return k == KindWrite || k == KindZero || k == KindTrim }

// KV is one argument of a custom marker.
type KV struct{ Key, Value string }

// Record is one entry of a journal: a change to the volume or a marker.
type Record struct {
	Kind     Kind
	Seq      uint64    // per-volume sequence: every write and marker takes the next number, across files, from 1
	Time     time.Time // source timestamp (UTC, ns)
	Offset   int64     // Write/Zero/Trim: volume offset
	Length   int64     // Write: data length; Zero/Trim: length of the range
	DataOff  int64     // Write: where its data starts inside the payload region
	CRC      uint32    // Write: CRC32C (Castagnoli) of the data
	Label    string    // Snapshot/Custom
	Args     []KV      // Custom
	Group    string    // marker issued for a consistency group ("" = a volume marker)
	GroupSeq uint64    // group marker id, the same in every member's journal
	Members  []string  // group marker: every member volume of the group, sorted (format version 2)
}

// Header is the fixed header of a journal file.
type Header struct {
	Version    uint16    // format version of the file (1, 2 or 3); 0 in a Header to write means Version
	Volume     string    // volume name (ValidName)
	VolumeSize int64     // volume size in bytes; every record's range lies inside it
	FileSeq    uint64    // file sequence, from 1; the file is named FileName(FileSeq)
	Created    time.Time // when the file was opened (UTC, ns)
	BaseSeq    uint64    // sequence number of the file's first record
	Stream     StreamID  // the journal stream the file belongs to (zero in version 1 files)
	Start      StartKind // set on the first file of a stream begun by an initialize
}

// Size returns the header's size in bytes, which is also where the payload
// region starts: HeaderSize, or HeaderSizeV1 for a version 1 file.
func (h Header) Size() int64 { return headerSize(h.Version) }

// StreamID names a journal stream: the run of files of one volume that one
// source journal wrote, from the volume's first capture (or an initialize)
// on. It is random, made by the source, and never all zero in a version 2
// file. A destination binds each volume to the stream it replicates.
type StreamID [16]byte

// NewStreamID returns a random stream id.
func NewStreamID() StreamID {
	var id StreamID
	for id.IsZero() {
		_, _ = rand.Read(id[:]) // never fails (crypto/rand)
	}
	return id
}

// IsZero reports whether id is unset (a version 1 file has no stream).
func (id StreamID) IsZero() bool { return id == StreamID{} }

// String returns the id as 32 lower-case hex digits ("" for the zero id).
func (id StreamID) String() string {
	if id.IsZero() {
		return ""
	}
	return hex.EncodeToString(id[:])
}

// ParseStreamID parses String's form; "" is the zero id.
func ParseStreamID(s string) (StreamID, error) {
	var id StreamID
	if s == "" {
		return id, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("stream id %q: want 32 hex digits", truncName(s))
	}
	copy(id[:], b)
	return id, nil
}

// StartKind says whether a file starts its stream, and how: an initialize
// begins a new stream whose first file carries StartFull (every block of
// the volume follows) or StartDelta (blocks that differ at the destination
// follow). A destination may rebind a volume to a new stream only at such a
// file.
type StartKind uint8

// Start kinds. The numbers are part of the file format.
const (
	StartNone  StartKind = 0 // the file continues its stream
	StartFull  StartKind = 1 // a full initialize starts the stream here
	StartDelta StartKind = 2 // an initialize by checksum comparison starts the stream here
)

// String names the kind ("", "full initialize", "delta initialize").
func (k StartKind) String() string {
	switch k {
	case StartNone:
		return ""
	case StartFull:
		return "full initialize"
	case StartDelta:
		return "delta initialize"
	}
	return "start(" + strconv.Itoa(int(k)) + ")"
}

// Limits of the format. Parse rejects files that exceed them and the Writer
// refuses records that would.
const (
	MaxNameLen     = 64      // volume, label, group and argument-key names (see ValidName)
	MaxArgs        = 32      // arguments of one custom marker
	MaxArgValueLen = 1024    // bytes of one argument value (valid UTF-8, no control characters)
	MaxMembers     = 64      // member volumes named by one group marker
	MaxRecords     = 1 << 20 // records in one file
)

// Sentinel errors. Errors from Parse, ReadFile and Layout are *FormatError
// values that wrap one of the first four.
var (
	ErrTruncated   = errors.New("truncated journal file")
	ErrCorrupt     = errors.New("corrupt journal file")
	ErrForeign     = errors.New("not a journal file of a supported version")
	ErrWrongVolume = errors.New("journal file of another volume")

	ErrInvalidName   = errors.New("invalid name")
	ErrInvalidRecord = errors.New("invalid record")
	ErrClosed        = errors.New("journal writer closed")
)

// FormatError reports a journal file that cannot be used.
type FormatError struct {
	File  string // name or path of the file
	Fault string // what is wrong, e.g. "record 3 (seq 45): data CRC32C mismatch"
	Err   error  // ErrTruncated, ErrCorrupt, ErrForeign or ErrWrongVolume
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("journal %s: %v: %s", e.File, e.Err, e.Fault)
}

// Unwrap returns the sentinel.
func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(file string, sentinel error, format string, args ...any) error {
	return &FormatError{File: file, Fault: fmt.Sprintf(format, args...), Err: sentinel}
}

// ValidName checks a name of a volume, label, group or argument key:
// 1..64 characters of [A-Za-z0-9_-] (no dots, no separators). The error wraps
// ErrInvalidName.
func ValidName(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("%w: %q is %d characters, at most %d allowed", ErrInvalidName, truncName(s), len(s), MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%w: %q: character %q at %d not allowed (only A-Z a-z 0-9 _ -)", ErrInvalidName, truncName(s), c, i)
		}
	}
	return nil
}

func truncName(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Suffixes of journal files in a volume's folder.
const (
	Ext        = ".aimj"      // sealed file
	ExtOpen    = ".aimj.open" // file being written (header and payload)
	ExtSidecar = ".aimj.idx"  // index sidecar of the open file
	fileDigits = 16           // digits of the file sequence in a name
)

// FileName returns the name of the sealed journal file with sequence seq:
// the sequence zero-padded to 16 digits plus ".aimj".
func FileName(seq uint64) string { return fmt.Sprintf("%016d%s", seq, Ext) }

// ParseFileName returns the file sequence of a sealed journal file name as
// made by FileName. Anything else (other suffixes, paths, seq 0) is an error
// wrapping ErrInvalidName.
func ParseFileName(name string) (uint64, error) {
	digits, ok := strings.CutSuffix(name, Ext)
	if !ok || len(digits) != fileDigits {
		return 0, fmt.Errorf("%w: %q is not a journal file name (16 digits + %q)", ErrInvalidName, truncName(name), Ext)
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, fmt.Errorf("%w: %q is not a journal file name (16 digits + %q)", ErrInvalidName, truncName(name), Ext)
		}
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || seq == 0 {
		return 0, fmt.Errorf("%w: %q: file sequence must be at least 1", ErrInvalidName, name)
	}
	return seq, nil
}

// ListSealed returns the file sequences of the sealed journal files in dir,
// ascending. Open files and other names are ignored.
func ListSealed(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list journal files: %w", err)
	}
	var seqs []uint64
	for _, e := range entries {
		if seq, err := ParseFileName(e.Name()); err == nil && e.Type().IsRegular() {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	return seqs, nil
}

// Validate checks a record against the format's rules for its kind, apart
// from sequence and payload placement (Seq, DataOff), which depend on the
// file. volumeSize bounds Offset+Length. The error wraps ErrInvalidRecord.
func (r *Record) Validate(volumeSize int64) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidRecord, r.Kind, fmt.Sprintf(format, args...))
	}
	switch r.Kind {
	case KindWrite, KindZero, KindTrim:
		if r.Offset < 0 || r.Length <= 0 || r.Offset > volumeSize || r.Length > volumeSize-r.Offset {
			return bad("range [%d,+%d) outside volume of %d bytes", r.Offset, r.Length, volumeSize)
		}
		if r.Kind != KindWrite && (r.DataOff != 0 || r.CRC != 0) {
			return bad("data offset/CRC set on a record without data")
		}
		if r.Label != "" || r.Group != "" || r.GroupSeq != 0 || len(r.Args) != 0 || len(r.Members) != 0 {
			return bad("marker fields set")
		}
		return nil
	case KindSnapshot, KindCustom:
		return r.validateMarker(bad)
	case KindWatermark:
		if r.Offset != 0 || r.Length != 0 || r.DataOff != 0 || r.CRC != 0 || r.Label != "" || r.Group != "" ||
			r.GroupSeq != 0 || len(r.Args) != 0 || len(r.Members) != 0 {
			return bad("fields set on a watermark")
		}
		return nil
	}
	return fmt.Errorf("%w: unknown kind %d", ErrInvalidRecord, r.Kind)
}

func (r *Record) validateMarker(bad func(string, ...any) error) error {
	if r.Offset != 0 || r.Length != 0 || r.DataOff != 0 || r.CRC != 0 {
		return bad("offset/length/data fields set on a marker")
	}
	if err := ValidName(r.Label); err != nil {
		return bad("label: %v", err)
	}
	if r.Group != "" {
		if err := ValidName(r.Group); err != nil {
			return bad("group: %v", err)
		}
	}
	if (r.Group == "") != (r.GroupSeq == 0) {
		return bad("group %q with group seq %d: both or neither must be set", r.Group, r.GroupSeq)
	}
	if r.Kind == KindSnapshot && len(r.Args) != 0 {
		return bad("arguments on a snapshot marker")
	}
	if len(r.Args) > MaxArgs {
		return bad("%d arguments, at most %d", len(r.Args), MaxArgs)
	}
	for i, a := range r.Args {
		if err := ValidName(a.Key); err != nil {
			return bad("argument %d key: %v", i, err)
		}
		if err := ValidArgValue(a.Value); err != nil {
			return bad("argument %q: %v", a.Key, err)
		}
	}
	return r.validateMembers(bad)
}

// validateMembers checks a group marker's member list: only on group
// markers, at most MaxMembers valid names, sorted, without repeats.
func (r *Record) validateMembers(bad func(string, ...any) error) error {
	if len(r.Members) == 0 {
		return nil
	}
	if r.Group == "" {
		return bad("members on a marker without a group")
	}
	if len(r.Members) > MaxMembers {
		return bad("%d members, at most %d", len(r.Members), MaxMembers)
	}
	for i, m := range r.Members {
		if err := ValidName(m); err != nil {
			return bad("member %d: %v", i, err)
		}
		if i > 0 && m <= r.Members[i-1] {
			return bad("members must be sorted without repeats (%q after %q)", m, r.Members[i-1])
		}
	}
	return nil
}

// ValidArgValue checks a custom marker's argument value: at most
// MaxArgValueLen bytes of valid UTF-8 without control characters (NUL, C0,
// DEL, C1), since values reach hooks as environment variables, where a NUL
// cannot be passed and control characters mislead logs and shells. The
// error wraps ErrInvalidRecord.
func ValidArgValue(v string) error {
	if len(v) > MaxArgValueLen || !utf8.ValidString(v) {
		return fmt.Errorf("%w: value must be valid UTF-8 of at most %d bytes", ErrInvalidRecord, MaxArgValueLen)
	}
	for i, c := range v {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f) {
			return fmt.Errorf("%w: value has control character %U at byte %d (NUL and control characters are not allowed)", ErrInvalidRecord, c, i)
		}
	}
	return nil
}
