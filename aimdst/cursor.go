package aimdst

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/aimwan/aimwan/internal/durable"
	"github.com/aimwan/aimwan/journal"
)

// Cursor is the persisted destage position of one volume. Every record with
// a sequence up to Record has been applied to the destination volume and made
// durable (fsync) before the cursor naming it was written.
//
// Why a crash never changes the result. On restart destage resumes at file
// File+1 and skips the records of that file with Seq <= Record. Records after
// the cursor may already have reached the volume, wholly, partly, or in any
// order (the page cache flushes as it likes). They are applied again, in
// order, from the first one after the cursor. Each record sets a byte range
// to content fixed by the record alone (write data, or zeros for Zero/Trim),
// so after the replay every byte touched by any replayed record holds the
// value of the last record that touches it, and every byte not touched by
// them was never touched since the cursor either: exactly the in-order
// result. Applying a write twice is idempotent as long as order is kept.
//
// Markers are the exception: a snapshot must see the volume at the marker,
// with no later write in it. So destage stops at every marker, takes the
// snapshot (or runs the hook) durably, fsyncs the volume and persists a cursor
// naming the marker before it applies anything after it. A crash before that
// cursor replays up to the marker and takes the snapshot again (same content,
// atomic replace); a crash after it never replays the marker. Hooks therefore
// run at least once.
//
// The cursor also binds the volume to the journal stream it replicates
// (Stream; see docs/destination-node.md#journal-identity) and remembers the
// digests of the newest destaged files, so that a file offered again is a
// duplicate only when its number and its SHA-256 both match.
type Cursor struct {
	File   uint64    `json:"file"`            // last journal file fully destaged; 0 = none
	Record uint64    `json:"record"`          // last record sequence applied durably; 0 = none
	Time   time.Time `json:"time,omitzero"`   // source timestamp of the newest destaged write
	Marker string    `json:"marker,omitzero"` // label of the last marker passed (status only)
	// Watermark is the source timestamp of the newest record destaged (of
	// any kind, a heartbeat's watermark record included): every write the
	// source acknowledged before it is on the volume. Time Latency is now
	// minus Watermark. Zero in cursors of older builds (Time stands in).
	Watermark time.Time `json:"watermark,omitzero"`
	// MarkerTime is the source time of the last marker passed (a point the
	// source marked consistent); Snapshot and SnapshotTime are the label
	// and source time of the last snapshot marker taken (status only).
	MarkerTime   time.Time `json:"marker_time,omitzero"`
	Snapshot     string    `json:"snapshot,omitzero"`
	SnapshotTime time.Time `json:"snapshot_time,omitzero"`
	// InFile is the file Record lies in when destage stopped inside it (at
	// a marker; File is then the file before it); 0 when Record is the last
	// record of File.
	InFile uint64 `json:"in_file,omitzero"`
	// Stream is the journal stream the volume replicates (hex); "" until
	// the first file of a stream is destaged (or for version 1 files,
	// which have none).
	Stream string `json:"stream,omitzero"`
	// Destaged lists the newest destaged files, oldest first (at most
	// keepDigests): what a duplicate offer is checked against.
	Destaged []FileDigest `json:"destaged,omitzero"`
	// Previous is the binding the last rebind replaced (kept for status).
	Previous *Binding `json:"previous,omitzero"`
	// Format is 2 for cursors written by a build that keeps InFile (older
	// cursors may stop inside a file without saying so).
	Format int `json:"format,omitzero"`
}

// FileDigest identifies one destaged file: its number, last record and
// SHA-256 (hex, of the whole file).
type FileDigest struct {
	File   uint64 `json:"file"`
	Last   uint64 `json:"last"`
	SHA256 string `json:"sha256"`
}

// Binding is a volume's binding to a stream as it was when a rebind
// replaced it: the stream, how far it was destaged, and when and why it
// ended.
type Binding struct {
	Stream   string    `json:"stream,omitzero"` // "" for version 1 files (no stream id)
	File     uint64    `json:"file"`
	Record   uint64    `json:"record"`
	Newest   time.Time `json:"newest_write,omitzero"`
	Until    time.Time `json:"until"`
	NewFile  uint64    `json:"new_file"`           // the first file of the new stream
	Snapshot string    `json:"snapshot,omitempty"` // the copy of the volume taken before the new stream was applied
}

// keepDigests is how many destaged files' digests the cursor keeps: far
// more than can be in flight between a lost ack and the resend (a source's
// push window plus the proxies'), so a genuine resend is always recognised.
const keepDigests = 256

// cursorFormat is the Format this build writes.
const cursorFormat = 2

// digest returns the digest of destaged file seq, if still kept.
func (c *Cursor) digest(seq uint64) (FileDigest, bool) {
	for _, d := range c.Destaged {
		if d.File == seq {
			return d, true
		}
	}
	return FileDigest{}, false
}

// addDigest records destaged file d, keeping the newest keepDigests.
func (c *Cursor) addDigest(d FileDigest) {
	ds := append(c.Destaged[:len(c.Destaged):len(c.Destaged)], d)
	if len(ds) > keepDigests {
		ds = ds[len(ds)-keepDigests:]
	}
	c.Destaged = ds
}

const cursorName = "cursor.json"

// errCursor marks a cursor file that exists but cannot be used.
var errCursor = errors.New("bad destage cursor")

// parseCursor decodes a cursor file's bytes.
func parseCursor(b []byte) (Cursor, error) {
	var c Cursor
	if err := json.Unmarshal(b, &c); err != nil {
		return Cursor{}, fmt.Errorf("%w: %w", errCursor, err)
	}
	if c.File > 1<<62 || c.Record > 1<<62 || c.InFile > 1<<62 {
		return Cursor{}, fmt.Errorf("%w: sequence out of range (file %d, record %d)", errCursor, c.File, c.Record)
	}
	if _, err := journal.ParseStreamID(c.Stream); err != nil {
		return Cursor{}, fmt.Errorf("%w: %w", errCursor, err)
	}
	if len(c.Destaged) > keepDigests {
		return Cursor{}, fmt.Errorf("%w: %d file digests, at most %d", errCursor, len(c.Destaged), keepDigests)
	}
	return c, nil
}

// loadCursor reads the cursor at path; a missing file is the zero cursor.
func loadCursor(path string) (Cursor, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Cursor{}, nil
	}
	if err != nil {
		return Cursor{}, fmt.Errorf("read cursor: %w", err)
	}
	c, err := parseCursor(b)
	if err != nil {
		return Cursor{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// stream returns the bound stream (zero when unbound).
func (c *Cursor) stream() journal.StreamID {
	id, _ := journal.ParseStreamID(c.Stream) // checked by parseCursor
	return id
}

// storeCursor persists c at path atomically.
func storeCursor(path string, c Cursor) error {
	c.Format = cursorFormat
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode cursor: %w", err)
	}
	return durable.WriteFile(path, append(b, '\n'), 0o600)
}

// watermark returns the time up to which the volume is complete: Watermark,
// or for a cursor of an older build the newest destaged write.
func (c *Cursor) watermark() time.Time {
	if c.Time.After(c.Watermark) {
		return c.Time
	}
	return c.Watermark
}

// advance moves the watermark to record time t when it is newer.
func (c *Cursor) advance(t time.Time) {
	if t.After(c.Watermark) {
		c.Watermark = t
	}
}
