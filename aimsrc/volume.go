package aimsrc

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/nbd"
)

// journalWriter is what capture needs of a volume's journal.
type journalWriter interface {
	// Write appends a write record with its data.
	Write(off int64, data []byte) (uint64, error)
	// Zero appends a zero (trim=false) or trim record without payload.
	Zero(off, length int64, trim bool) (uint64, error)
	// Marker appends a snapshot or custom marker.
	Marker(m journal.Record) (uint64, error)
	// Seal seals the open file now (no-op when empty).
	Seal() error
	// SealIfFull seals the open file when it reached the file size or
	// record limit (the journal defers that seal to this call: DeferSeal).
	SealIfFull() error
	// OpenStats says what the open file holds.
	OpenStats() journal.OpenStats
	// Sync makes everything appended so far durable.
	Sync() error
	// SealIfOlder seals the open file when it is older than the age limit.
	SealIfOlder(now time.Time) error
	// Close seals and closes the journal.
	Close() error
	// Stream is the journal stream appended to.
	Stream() journal.StreamID
	// StartStream begins a new stream (an initialize).
	StartStream(id journal.StreamID, kind journal.StartKind) error
	// OpenStart says whether the open file starts a stream.
	OpenStart() (uint64, journal.StartKind)
	// Heartbeat seals a heartbeat file (one watermark) when the open file
	// is empty.
	Heartbeat() (bool, error)
	// LastAppend is when the last record was appended.
	LastAppend() time.Time
}

var _ journalWriter = (*journal.Writer)(nil)

// State of a volume, as reported by status and metrics.
const (
	StateNormal    = "normal"     // every write is journaled
	StatePullAhead = "pull-ahead" // buffer full: writes only mark the dirty bitmap
	StateResync    = "resync"     // dirty regions are being journaled again
)

// States lists every state, in the order of the state gauge.
var States = []string{StateNormal, StateResync, StatePullAhead}

// ErrNotConsistent is returned for markers on a volume whose journals do not
// hold every write (pull-ahead or resync): the far end could not make a
// consistent image at that point.
var ErrNotConsistent = errors.New("volume journals are not consistent (pull-ahead or resync); marker refused")

// recordOverhead approximates the index bytes one record adds to a file
// (Src Data counts the open file as its payload plus this per record).
const recordOverhead = 64

// volume is one protected volume: its image, journal, dirty bitmap and
// counters. It is the nbd.Export of the volume.
type volume struct {
	name  string
	dir   string // journal folder
	size  int64
	log   *slog.Logger
	space *space
	now   func() time.Time

	// mu orders journal appends, image writes and bitmap changes.
	//
	// Lock order: initJob.req, then Node.groupMu, then mu (the members of
	// a group in name order), then the leaves: initJob.mu, pushing.mu and
	// the journals' own locks (other volumes' too: space.used reads their
	// open files). No leaf is held while mu is taken, and nothing under mu
	// waits for the network or on a channel (the sends to pushKick and
	// spaceKick never block).
	mu        sync.Mutex
	img       *image
	jw        journalWriter
	dirty     *bitmap
	al        *activityLog
	pullAhead bool   // under mu
	resyncBuf []byte // resync read buffer, under mu
	resyncPos int64  // where the next resync step looks first, under mu

	// Accounting, readable without mu (the open file's is the journal's:
	// jw.OpenStats).
	sealedBytes atomic.Int64 // bytes of sealed files not yet acked
	sealedFiles atomic.Int64
	writes      atomic.Uint64
	written     atomic.Uint64
	pushedN     atomic.Uint64
	pushedB     atomic.Uint64
	heartbeats  atomic.Uint64 // heartbeat files sealed
	rate        rateMeter     // acked bytes, for the transfer rate and ETA
	heartbeat   time.Duration // heartbeat interval (<= 0: none)
	opened      time.Time     // when the volume was opened (idle since, before any append)
	coalesced   atomic.Uint64 // payload bytes dropped by coalescing
	coalIn      atomic.Uint64 // records of coalesced files before coalescing
	coalOut     atomic.Uint64 // and after
	state       atomic.Value  // string

	pushing    *pushState
	initJob    initJob
	pushKick   chan struct{}    // a file was sealed
	spaceKick  chan struct{}    // buffer space was freed
	initReq    chan int64       // initialize requested, from this offset
	initPath   string           // checkpoint of a running initialize
	initStream journal.StreamID // the stream the running initialize starts (under initJob.req or in serveInit)
	initDelta  bool             // the running initialize compares checksums (same rule as initStream)
	sums       sumAsker         // the next hop, asked for checksums by a delta initialize

	drained   atomic.Bool // failover drain: writes refused (drain.go)
	drainedAt time.Time   // under mu
}

var _ nbd.Export = (*volume)(nil)

// Size returns the volume size in bytes.
func (v *volume) Size() int64 { return v.size }

// ReadOnly is false: source volumes are written by their users.
func (v *volume) ReadOnly() bool { return false }

// ReadAt reads from the image.
func (v *volume) ReadAt(p []byte, off int64) error { return v.img.readAt(p, off) }

// WriteAt journals the write (journal first: it is the write-ahead log), then
// writes the image. With fua the write is durable before it returns.
func (v *volume) WriteAt(p []byte, off int64, fua bool) error {
	v.mu.Lock()
	err := v.refuseDrained()
	if err == nil {
		err = v.capture(off, int64(len(p)), int64(len(p)), func() (uint64, error) { return v.jw.Write(off, p) })
	}
	if err == nil {
		err = v.apply(off, int64(len(p)), func() error { return v.img.writeAt(p, off) })
	}
	if err == nil {
		err = v.sealIfFull()
	}
	v.mu.Unlock()
	if err != nil {
		return fmt.Errorf("volume %s: write %d+%d: %w", v.name, off, len(p), err)
	}
	v.writes.Add(1)
	v.written.Add(uint64(len(p)))
	if fua {
		return v.Flush()
	}
	return nil
}

// WriteZeroes journals a zero record (no payload) and zeroes the image range,
// punching a hole unless noHole.
func (v *volume) WriteZeroes(off, length int64, noHole, fua bool) error {
	if err := v.zero(off, length, false, !noHole); err != nil {
		return err
	}
	if fua {
		return v.Flush()
	}
	return nil
}

// Trim journals a trim record and punches a hole, so image and far end agree
// the range reads as zeros.
func (v *volume) Trim(off, length int64) error { return v.zero(off, length, true, true) }

func (v *volume) zero(off, length int64, trim, hole bool) error {
	v.mu.Lock()
	err := v.refuseDrained()
	if err == nil {
		err = v.capture(off, length, 0, func() (uint64, error) { return v.jw.Zero(off, length, trim) })
	}
	if err == nil {
		err = v.apply(off, length, func() error { return v.img.zero(off, length, hole) })
	}
	v.mu.Unlock()
	if err != nil {
		return fmt.Errorf("volume %s: zero %d+%d: %w", v.name, off, length, err)
	}
	v.writes.Add(1)
	return nil
}

// capture journals a change of [off, off+length) with appendFn, or, when the
// buffer is full, records the region in the dirty bitmap. Called under mu.
// payload is the data bytes the record carries.
func (v *volume) capture(off, length, payload int64, appendFn func() (uint64, error)) error {
	if !v.pullAhead && !v.space.fits(payload+recordOverhead) {
		v.pullAhead = true
		v.setState()
		v.log.Warn("source buffer full: volume goes to pull-ahead (writes tracked in the dirty bitmap)",
			"volume", v.name, "buffer_bytes", v.space.used(), "limit", v.space.limit)
	}
	if v.pullAhead {
		v.dirty.set(off, length)
		return nil
	}
	if _, err := appendFn(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// apply changes the image after capture journaled (or, in pull-ahead,
// marked) the change of [off, off+length): the activity log first, then
// write. When either fails, the journal may hold a change the image lacks,
// so the region is marked dirty: resync journals again what the image holds
// and the far end agrees with the image. Called under mu.
func (v *volume) apply(off, length int64, write func() error) error {
	err := v.al.activate(off, length)
	if err == nil {
		err = write()
	}
	if err != nil {
		v.dirty.set(off, length)
		v.setState()
		v.log.Error("image not changed after the change was journaled: the region will be resynced from the image",
			"offset", off, "length", length, "err", err)
	}
	return err
}

// sealIfFull seals the open file once it holds the replication file size
// (or the record limit). The journal defers that seal to this call
// (WriterConfig.DeferSeal), and capture makes it after the image write, so a
// sealed file (which pushing may push and delete at once) only holds
// records already applied to the image: after a crash, only the open file's
// records need redoing. Called under mu.
func (v *volume) sealIfFull() error {
	if err := v.jw.SealIfFull(); err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	return nil
}

// onCoalesce is the journal's callback for a file sealed coalesced.
func (v *volume) onCoalesce(_ string, s journal.CoalesceStats) {
	v.coalesced.Add(uint64(s.BytesIn - s.BytesOut))
	v.coalIn.Add(uint64(s.RecordsIn))
	v.coalOut.Add(uint64(s.RecordsOut))
}

// onSeal is the journal's seal callback.
func (v *volume) onSeal(f journal.SealedFile) {
	v.pushing.setWaiting(f.Seq, f.FirstTime)
	if f.Start != journal.StartNone {
		v.pushing.markStart(f.Seq)
	}
	v.sealedBytes.Add(f.Size)
	v.sealedFiles.Add(1)
	select {
	case v.pushKick <- struct{}{}:
	default:
	}
}

// Flush makes every completed write durable: journal, image and bitmap.
// Then the activity log forgets the extents not written since the flush
// began.
func (v *volume) Flush() error {
	v.mu.Lock()
	g := v.al.begin()
	err := v.jw.Sync() // under the lock: see syncJournal
	v.mu.Unlock()
	if err != nil {
		return fmt.Errorf("volume %s: sync journal: %w", v.name, err)
	}
	if err := v.img.sync(); err != nil {
		return fmt.Errorf("volume %s: %w", v.name, err)
	}
	v.mu.Lock()
	v.al.settle(g)
	err = v.dirty.sync()
	v.mu.Unlock()
	if err != nil {
		return fmt.Errorf("volume %s: %w", v.name, err)
	}
	return nil
}

// syncJournal makes the journal durable. It holds the volume lock: the
// journal's Sync is not yet safe against a seal running at the same time
// (it reads the open file's handles unlocked), and every seal happens under
// the volume lock (size rotation inside appends, age sealing in sealOld).
func (v *volume) syncJournal() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.jw.Sync()
}

// setState recomputes the reported state. Called under mu.
func (v *volume) setState() {
	s := StateNormal
	switch {
	case v.pullAhead:
		s = StatePullAhead
	case v.dirty.count.Load() > 0:
		s = StateResync
	}
	v.state.Store(s)
}

// State returns the volume's state.
func (v *volume) State() string { return v.state.Load().(string) }

// marker appends m to the volume's journal. Called under mu.
func (v *volume) markerLocked(m journal.Record) (uint64, error) {
	if v.pullAhead || v.dirty.count.Load() > 0 {
		return 0, fmt.Errorf("volume %s is in %s: %w", v.name, v.State(), ErrNotConsistent)
	}
	seq, err := v.jw.Marker(m)
	if err != nil {
		return 0, fmt.Errorf("volume %s: marker: %w", v.name, err)
	}
	return seq, nil
}

// srcData is the bytes waiting in the source buffer for this volume: the
// sealed files onSeal counted, and what the journal holds that onSeal has
// not counted yet (the open file, and a file whose onSeal is running),
// estimated as payload plus recordOverhead a record.
func (v *volume) srcData() int64 {
	o := v.jw.OpenStats()
	return v.sealedBytes.Load() + o.PayloadBytes + recordOverhead*int64(o.Records)
}

// sealOld seals the open file when it is older than the age limit, and
// seals a heartbeat file when the volume is idle (see heartbeatDue).
func (v *volume) sealOld() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.jw.SealIfOlder(v.now()); err != nil {
		return fmt.Errorf("volume %s: seal by age: %w", v.name, err)
	}
	if !v.heartbeatDue() {
		return nil
	}
	ok, err := v.jw.Heartbeat()
	if err != nil {
		return fmt.Errorf("volume %s: heartbeat: %w", v.name, err)
	}
	if ok {
		v.heartbeats.Add(1)
	}
	return nil
}

// heartbeatDue reports whether the volume should seal a heartbeat file now:
// heartbeats are on, every write is journaled (not pull-ahead, resync or
// an initialize, where a watermark would claim a completeness the journal
// does not have), nothing waits to be pushed (a file waiting carries a
// watermark already; while the far end is unreachable one heartbeat waits,
// not one per interval), and no record was appended for the interval.
// Called under mu.
func (v *volume) heartbeatDue() bool {
	if v.heartbeat <= 0 || v.pullAhead || v.dirty.count.Load() > 0 || v.initJob.status().Running {
		return false
	}
	if v.sealedFiles.Load() > 0 || v.jw.OpenStats().Records > 0 {
		return false
	}
	last := v.jw.LastAppend()
	if last.Before(v.opened) {
		last = v.opened
	}
	return v.now().Sub(last) >= v.heartbeat
}

// close seals the journal and closes image and bitmap.
func (v *volume) close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	var errs []error
	if v.jw != nil {
		errs = append(errs, v.jw.Close()) // kept: srcData reads its open file's stats; a second Close is a no-op
	}
	if v.img != nil {
		errs = append(errs, v.img.sync(), v.img.close())
		v.img = nil
	}
	if v.al != nil {
		if errors.Join(errs...) == nil {
			errs = append(errs, v.al.clearAll()) // a clean stop: nothing to resync
		}
		errs = append(errs, v.al.close())
		v.al = nil
	}
	if v.dirty != nil {
		errs = append(errs, v.dirty.close())
		v.dirty = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close volume %s: %w", v.name, err)
	}
	return nil
}
