package journal

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/aimwan/aimwan/internal/durable"
)

// Defaults of WriterConfig.
const (
	DefaultMaxFileSize = 4 << 20
	DefaultMaxAge      = 2 * time.Second
)

// WriterConfig configures a Writer. The zero value of every optional field
// means its default.
type WriterConfig struct {
	// Dir is the volume's journal folder (created if missing). Required.
	Dir string
	// Volume is the volume name (ValidName). Required.
	Volume string
	// VolumeSize is the volume size in bytes; records must lie inside it. Required.
	VolumeSize int64
	// MaxFileSize is the payload size at which the open file is sealed
	// (the "replication file size"). Default 4 MiB. A single write larger
	// than this gets a file of its own.
	MaxFileSize int64
	// MaxRecords is the record count at which the open file is sealed.
	// Default and maximum MaxRecords (the package limit).
	MaxRecords int
	// MaxAge seals the open file once its first record is this old, checked
	// on every append and by SealIfOlder. Default 2s.
	MaxAge time.Duration
	// Now is the clock for record timestamps and age. Default time.Now.
	Now func() time.Time
	// OnSeal is called after a file is sealed and durable, with what the
	// file is (its name inside Dir, file sequence, size, records and times),
	// in file order, never with the Writer's lock held. Files sealed by
	// OpenWriter's recovery are reported before it returns. It must not call
	// the Writer (hand the file to another goroutine instead). Optional.
	OnSeal func(SealedFile)
	// Logger receives recovery notes. Default slog.Default().
	Logger *slog.Logger
	// Coalesce seals every file coalesced (see Coalesce and
	// docs/journal-format.md): writes that later records in the file
	// overwrote are dropped, the surviving extents are written in offset
	// order between the markers, and the records are renumbered from the
	// file's base seq. Sequence numbers returned by Write and Zero are then
	// provisional until the file is sealed; Marker seals the open file first
	// when it holds a write, zero or trim, so a marker's sequence is final.
	// Recovery coalesces a crashed open file the same way. Default off.
	Coalesce bool
	// OnCoalesce is called for every coalesced file, just before OnSeal
	// and under the same rules, with its figures. Optional.
	OnCoalesce func(name string, s CoalesceStats)
	// DeferSeal is for an owner that uses the journal as its write-ahead
	// log: a file that an append fills (MaxFileSize or MaxRecords) stays
	// open until the owner calls SealIfFull, or appends again, instead of
	// being sealed inside that append. The owner appends a record, applies
	// it (writes its image), then calls SealIfFull, so a sealed file only
	// ever holds records already applied: a sealed file may be pushed and
	// deleted at once, and after a crash only the open file's records are
	// redone. Seals by age and by SealIfOlder happen before an append or
	// from the owner's ticker, and are not deferred. Default off.
	DeferSeal bool
	// Stream is the stream id for a folder that holds none yet (a new
	// volume, or one whose files are all of format version 1). The folder's
	// own stream, read back from its newest file, always wins, so a
	// restarted Writer continues its stream. Zero means a random id
	// (NewStreamID); tests set it for reproducible files.
	Stream StreamID
}

// SealedFile describes a file the Writer sealed, as OnSeal reports it.
type SealedFile struct {
	Name         string // FileName(Seq), inside the Writer's Dir
	Seq          uint64 // the file sequence
	Size         int64  // bytes of the file
	Records      int    // records in the file (after coalescing)
	PayloadBytes int64  // bytes of its payload region (after coalescing)
	FirstSeq     uint64 // sequence of its first record (the header's base seq)
	LastSeq      uint64 // sequence of its last record
	Stream       StreamID
	Start        StartKind // the file starts its stream (an initialize)
	// FirstTime and LastTime are when the file's first and last records
	// were appended (for a coalesced file: before coalescing, so FirstTime
	// is the window's first write). For a file sealed by recovery they are
	// the timestamps of its first and last records.
	FirstTime, LastTime time.Time
}

// OpenStats describes what the Writer holds that OnSeal has not reported
// yet: the open file, and any file already sealed whose OnSeal call has not
// returned. An owner that counts sealed files in OnSeal and adds OpenStats
// thus never misses a record in between (it may count one twice for the
// length of an OnSeal call).
type OpenStats struct {
	Seq          uint64    // the open file's file sequence
	Records      int       // records appended and not yet reported
	PayloadBytes int64     // their payload bytes
	FirstTime    time.Time // when the first of them was appended; zero when none
}

func (c *WriterConfig) populate() {
	if c.MaxFileSize == 0 {
		c.MaxFileSize = DefaultMaxFileSize
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = MaxRecords
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *WriterConfig) validate() error {
	if c.Dir == "" {
		return errors.New("journal writer: Dir is required")
	}
	if err := ValidName(c.Volume); err != nil {
		return fmt.Errorf("journal writer: volume: %w", err)
	}
	switch {
	case c.VolumeSize <= 0:
		return fmt.Errorf("journal writer: volume size %d must be positive", c.VolumeSize)
	case c.MaxFileSize < 0:
		return fmt.Errorf("journal writer: max file size %d must be positive", c.MaxFileSize)
	case c.MaxRecords < 0 || c.MaxRecords > MaxRecords:
		return fmt.Errorf("journal writer: max records %d must be 1..%d", c.MaxRecords, MaxRecords)
	case c.MaxAge < 0:
		return fmt.Errorf("journal writer: max age %v must be positive", c.MaxAge)
	}
	return nil
}

// Writer appends records to a volume's journal: an open file that it seals
// by size, record count and age. It is safe for concurrent use. After a
// failed write or fsync the Writer is broken: every later call returns the
// first error (the node must restart and recover with OpenWriter).
type Writer struct {
	cfg WriterConfig

	mu       sync.Mutex
	err      error // sticky failure, or ErrClosed
	cur      *openFile
	stream   StreamID // the stream of the open file and of the files after it
	nextSeq  uint64
	lastTime time.Time    // when the last record was appended (zero: none since OpenWriter)
	pending  []sealedFile // sealed, OnSeal not yet returned (in file order)
	notifyMu sync.Mutex   // orders OnSeal calls

	recovered []sealedFile // files sealed by recovery (for RecoveredData)
}

type sealedFile struct {
	SealedFile
	path       string
	payloadOff int64          // the file's header size
	coalesce   *CoalesceStats // set for a coalesced file
}

// OpenWriter opens the journal folder of a volume. A file left open by a
// crash is recovered: the longest prefix of its records whose data is intact
// is sealed, and those records are returned in order so that the caller
// can redo them into its image (RecoveredData gives a write's bytes). File
// and record sequences continue after the last file in the folder.
func OpenWriter(cfg WriterConfig) (*Writer, []Record, error) {
	cfg.populate()
	if err := cfg.validate(); err != nil {
		return nil, nil, err
	}
	w := &Writer{cfg: cfg}
	recs, err := w.recover()
	if err != nil {
		return nil, nil, fmt.Errorf("open journal of volume %s in %s: %w", cfg.Volume, cfg.Dir, err)
	}
	w.notify()
	return w, recs, nil
}

// Write appends a write of data at volume offset off and returns its
// sequence number. data is copied before Write returns.
func (w *Writer) Write(off int64, data []byte) (uint64, error) {
	r := Record{Kind: KindWrite, Offset: off, Length: int64(len(data)), CRC: Checksum(data)}
	return w.appendRecord(r, data)
}

// Zero appends a zeroed range (trim=false, NBD WRITE_ZEROES) or a discarded
// range (trim=true, NBD TRIM). No data bytes are stored.
func (w *Writer) Zero(off, length int64, trim bool) (uint64, error) {
	r := Record{Kind: KindZero, Offset: off, Length: length}
	if trim {
		r.Kind = KindTrim
	}
	return w.appendRecord(r, nil)
}

// Marker appends a snapshot or custom marker; m's Seq and Time are filled
// in. Kind, Label, Args, Group and GroupSeq come from m.
func (w *Writer) Marker(m Record) (uint64, error) {
	if !m.Kind.IsMarker() {
		return 0, fmt.Errorf("%w: marker of kind %s", ErrInvalidRecord, m.Kind)
	}
	m.Args = append([]KV(nil), m.Args...)
	if err := m.Validate(w.cfg.VolumeSize); err != nil {
		return 0, err
	}
	w.mu.Lock()
	var err error
	if w.cfg.Coalesce && w.err == nil && w.cur.hasData() {
		// A marker ends a coalescing window: sealing first puts it at
		// the start of the next file, where compaction never moves it.
		err = w.sealLocked()
	}
	var seq uint64
	if err == nil {
		seq, err = w.appendLocked(m, nil)
	}
	w.unlock()
	return seq, err
}

func (w *Writer) appendRecord(r Record, data []byte) (uint64, error) {
	if err := r.Validate(w.cfg.VolumeSize); err != nil {
		return 0, err
	}
	w.mu.Lock()
	seq, err := w.appendLocked(r, data)
	w.unlock()
	return seq, err
}

func (w *Writer) appendLocked(r Record, data []byte) (uint64, error) {
	if w.err != nil {
		return 0, w.err
	}
	now := w.cfg.Now()
	cur := w.cur
	if cur.records > 0 && (w.full(cur) || cur.payloadLen+int64(len(data)) > w.cfg.MaxFileSize || now.Sub(cur.firstTime) >= w.cfg.MaxAge) {
		if err := w.sealLocked(); err != nil {
			return 0, err
		}
		cur = w.cur
	}
	r.Seq = w.nextSeq
	r.Time = now.Round(0).UTC()
	if r.Kind == KindWrite {
		r.DataOff = cur.payloadLen
	}
	if err := cur.append(&r, data, now); err != nil {
		return 0, w.fail(err)
	}
	w.nextSeq++
	w.lastTime = now
	if !w.cfg.DeferSeal && w.full(cur) {
		if err := w.sealLocked(); err != nil {
			return 0, err
		}
	}
	return r.Seq, nil
}

// full reports whether f reached the size or record limit.
func (w *Writer) full(f *openFile) bool {
	return f.payloadLen >= w.cfg.MaxFileSize || f.records >= w.cfg.MaxRecords
}

// fail makes err sticky and returns it.
func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = fmt.Errorf("journal writer of volume %s broken: %w", w.cfg.Volume, err)
	}
	return w.err
}

// Sync makes every record appended so far durable (it survives power loss).
// Appends from other goroutines go on while it waits for the disk.
func (w *Writer) Sync() error {
	w.mu.Lock()
	if w.err != nil {
		w.mu.Unlock()
		return w.err
	}
	o := w.cur
	w.mu.Unlock()
	err := o.sync()
	if err == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if o.sealed && w.err == nil && errors.Is(err, os.ErrClosed) {
		// Sealed (and closed) meanwhile: sealing fsynced every record.
		return nil
	}
	return w.fail(err)
}

// Seal seals the open file now. It does nothing when the file holds no
// records.
func (w *Writer) Seal() error {
	w.mu.Lock()
	err := w.sealIfLocked(func(*openFile) bool { return true })
	w.unlock()
	return err
}

// SealIfOlder seals the open file when its first record is MaxAge old or
// older at now. The owner calls it from a ticker so that a quiet volume's
// records still leave within MaxAge.
func (w *Writer) SealIfOlder(now time.Time) error {
	w.mu.Lock()
	err := w.sealIfLocked(func(f *openFile) bool { return now.Sub(f.firstTime) >= w.cfg.MaxAge })
	w.unlock()
	return err
}

// SealIfFull seals the open file when it has reached MaxFileSize or
// MaxRecords. With DeferSeal the owner calls it once it has applied the
// records it appended (see DeferSeal); without, appends seal a full file
// themselves and it does nothing.
func (w *Writer) SealIfFull() error {
	w.mu.Lock()
	err := w.sealIfLocked(w.full)
	w.unlock()
	return err
}

// OpenStats returns what the open file holds, with the sealed files whose
// OnSeal has not returned yet (see OpenStats).
func (w *Writer) OpenStats() OpenStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	var st OpenStats
	for _, p := range w.pending {
		st.add(p.Records, p.PayloadBytes, p.FirstTime)
	}
	if o := w.cur; o != nil {
		st.Seq = o.hdr.FileSeq
		st.add(o.records, o.payloadLen, o.firstTime)
	}
	return st
}

func (st *OpenStats) add(records int, payload int64, first time.Time) {
	if records == 0 {
		return
	}
	st.Records += records
	st.PayloadBytes += payload
	if st.FirstTime.IsZero() || first.Before(st.FirstTime) {
		st.FirstTime = first
	}
}

func (w *Writer) sealIfLocked(cond func(*openFile) bool) error {
	if w.err != nil {
		return w.err
	}
	if w.cur.records == 0 || !cond(w.cur) {
		return nil
	}
	return w.sealLocked()
}

// sealLocked seals the current open file and opens the next one.
func (w *Writer) sealLocked() error {
	seal := w.cur.seal
	if w.cfg.Coalesce {
		seal = func(dir string, now time.Time, stream StreamID) (sealedFile, *openFile, error) {
			return w.cur.sealCoalesced(dir, now, stream, w.cfg.Logger)
		}
	}
	sf, next, err := seal(w.cfg.Dir, w.cfg.Now(), w.stream)
	if err != nil {
		return w.fail(err)
	}
	w.cur.sealed = true
	w.cur = next
	w.nextSeq = next.hdr.BaseSeq // a coalesced file may hold fewer records than were appended
	w.pending = append(w.pending, sf)
	return nil
}

// Heartbeat seals a heartbeat file: a file holding one watermark record
// (KindWatermark), whose timestamp, taken under the Writer's lock, says that
// every record appended before it is in this file or an earlier one. The
// owner calls it when a volume is idle, so that the far end learns how
// current it is without any write (see docs/journal-format.md). It does
// nothing and returns false when the open file holds records (they leave by
// age with their own timestamps) or was created by an older format version.
func (w *Writer) Heartbeat() (bool, error) {
	w.mu.Lock()
	if w.err != nil || w.cur.records > 0 || w.cur.hdr.Version < 3 {
		err := w.err
		w.mu.Unlock()
		return false, err
	}
	_, err := w.appendLocked(Record{Kind: KindWatermark}, nil)
	if err == nil {
		err = w.sealLocked()
	}
	w.unlock()
	return err == nil, err
}

// LastAppend returns when the last record (of any kind, a heartbeat's
// watermark included) was appended since OpenWriter; zero when none was.
func (w *Writer) LastAppend() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastTime
}

// Stream returns the id of the stream the Writer appends to.
func (w *Writer) Stream() StreamID {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stream
}

// StartStream begins stream id: the open file is sealed when it holds
// records, and the next file (the new open file) belongs to id and says in
// its header that it starts the stream, the way kind (StartFull or
// StartDelta) says. Every record appended afterwards goes to the new
// stream, in files that continue the folder's file and record sequences. A
// destination rebinds a volume to a new stream only at such a file, so only
// an initialize calls this. When the Writer's stream is id already it does
// nothing (a resumed initialize).
func (w *Writer) StartStream(id StreamID, kind StartKind) error {
	if id.IsZero() || kind == StartNone || kind > StartDelta {
		return fmt.Errorf("%w: stream start %q of kind %d", ErrInvalidRecord, id, kind)
	}
	w.mu.Lock()
	defer w.unlock()
	if w.err != nil {
		return w.err
	}
	if w.stream == id {
		return nil
	}
	if w.cur.records > 0 {
		if err := w.sealLocked(); err != nil {
			return err
		}
	}
	// The open file is empty: replace it (atomically, under a temporary
	// name) by one of the same numbers that starts the new stream.
	hdr := w.cur.hdr
	hdr.Version, hdr.Stream, hdr.Start, hdr.Created = Version, id, kind, w.cfg.Now().Round(0).UTC()
	if err := w.cur.close(); err != nil {
		return w.fail(err)
	}
	o, err := createOpen(w.cfg.Dir, hdr)
	if err == nil {
		err = durable.SyncDir(w.cfg.Dir)
	}
	if err != nil {
		return w.fail(fmt.Errorf("start stream %s: %w", id, err))
	}
	w.cur, w.stream = o, id
	return nil
}

// OpenStart returns the open file's sequence and its stream start kind:
// StartNone unless the open file is the first of a stream begun by
// StartStream (until it is sealed).
func (w *Writer) OpenStart() (uint64, StartKind) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur.hdr.FileSeq, w.cur.hdr.Start
}

// NextSeq returns the sequence number the next record will take.
func (w *Writer) NextSeq() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.nextSeq
}

// Close seals the open file if it holds records and closes the Writer. An
// empty open file stays in the folder: it carries the next file and record
// sequence numbers across restarts.
func (w *Writer) Close() error {
	w.mu.Lock()
	if errors.Is(w.err, ErrClosed) {
		w.mu.Unlock()
		return nil
	}
	err := w.sealIfLocked(func(*openFile) bool { return true })
	if cerr := w.cur.close(); err == nil && w.err == nil {
		err = cerr
	}
	w.err = ErrClosed
	w.unlock()
	return err
}

// unlock releases mu and reports files sealed meanwhile to OnSeal.
func (w *Writer) unlock() {
	sealed := len(w.pending) > 0
	w.mu.Unlock()
	if sealed {
		w.notify()
	}
}

// notify calls OnSeal for sealed files, in order, without holding mu. A
// file leaves pending only once its OnSeal has returned, so OpenStats
// counts it until then (notifyMu makes this goroutine the only one that
// removes from pending).
func (w *Writer) notify() {
	w.notifyMu.Lock()
	defer w.notifyMu.Unlock()
	for {
		w.mu.Lock()
		if len(w.pending) == 0 {
			w.mu.Unlock()
			return
		}
		s := w.pending[0]
		w.mu.Unlock()
		if s.coalesce != nil && w.cfg.OnCoalesce != nil {
			w.cfg.OnCoalesce(s.Name, *s.coalesce)
		}
		if w.cfg.OnSeal != nil {
			w.cfg.OnSeal(s.SealedFile)
		}
		w.mu.Lock()
		w.pending = w.pending[1:]
		w.mu.Unlock()
	}
}
