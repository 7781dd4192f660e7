package aimdst

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/aimwan/aimwan/internal/durable"
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
type Cursor struct {
	File   uint64    `json:"file"`            // last journal file fully destaged; 0 = none
	Record uint64    `json:"record"`          // last record sequence applied durably; 0 = none
	Time   time.Time `json:"time,omitzero"`   // source timestamp of the newest destaged write
	Marker string    `json:"marker,omitzero"` // label of the last marker passed (status only)
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
	if c.File > 1<<62 || c.Record > 1<<62 {
		return Cursor{}, fmt.Errorf("%w: sequence out of range (file %d, record %d)", errCursor, c.File, c.Record)
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

// storeCursor persists c at path atomically.
func storeCursor(path string, c Cursor) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode cursor: %w", err)
	}
	return durable.WriteFile(path, append(b, '\n'), 0o600)
}
