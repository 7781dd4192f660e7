package aimdst

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// rebind switches the volume to the stream whose first file s holds (an
// initialize at the source started it; f is the parsed file). It waits for
// nothing: while destage can still apply held files of the current stream
// it answers push.ErrUnavailable, and the source retries. Then, unless the
// volume never destaged anything, it copies the volume to a snapshot (the
// last state of the old stream, kept whatever the new one brings), persists
// a cursor bound to the new stream just before the file, quarantines the
// held files of the old stream that destage could not reach (superseded by
// the initialize), and holds the file. The old binding stays in the cursor
// and in status.
func (v *volume) rebind(s *sink, f *journal.File) error {
	seq := s.seq
	v.mu.Lock()
	if _, ready := v.q.Ready(); ready || v.rebinding {
		held := v.q.Len()
		v.mu.Unlock()
		return fmt.Errorf("%w: volume %s: the new stream %s starts once the %d files held of the current stream are destaged",
			push.ErrUnavailable, v.name, f.Header.Stream, held)
	}
	old := v.cursor
	fresh := old.File == 0 && old.Record == 0 && old.Stream == ""
	v.rebinding = true
	v.mu.Unlock()
	done := func() {
		v.mu.Lock()
		v.rebinding = false
		v.mu.Unlock()
	}
	now := v.n.cfg.Now()
	var snap string
	if !fresh && !v.n.cfg.NoRebindSnapshot && exists(v.cfg.Path) {
		snap = SnapshotPath(v.n.cfg.SnapshotDir, v.name, "pre-init-"+now.UTC().Format("20060102T150405.000000000Z"))
		v.setState("copying the volume before the new stream: " + snap)
		if _, err := snapshotFile(v.cfg.Path, snap); err != nil {
			done()
			return fmt.Errorf("%w: volume %s: copy of the volume before the new stream %s: %w", push.ErrUnavailable, v.name, f.Header.Stream, err)
		}
	}
	v.curMu.Lock()
	defer v.curMu.Unlock()
	v.mu.Lock()
	defer v.mu.Unlock()
	defer func() { v.rebinding = false }()
	nc := Cursor{File: seq - 1, Record: f.FirstSeq() - 1, Time: old.Time, Stream: f.Header.Stream.String(),
		Format: cursorFormat, Previous: old.Previous}
	if !fresh {
		nc.Previous = &Binding{Stream: old.Stream, File: old.File, Record: old.Record, Newest: old.Time, Until: now.UTC(),
			NewFile: seq, Snapshot: snap}
	}
	// The held files of the old stream go first: after a crash between
	// the two steps they are in quarantine (reported), not taken for files
	// the new cursor has passed.
	v.supersede(seq, f.Header.Stream)
	if err := storeCursor(v.cursorPath, nc); err != nil {
		return fmt.Errorf("%w: volume %s: %w", push.ErrUnavailable, v.name, err)
	}
	v.cursor = nc
	v.q = newFileQueue(seq)
	if err := os.Rename(s.part, v.path(seq)); err != nil {
		return fmt.Errorf("%w: volume %s: %w", push.ErrUnavailable, v.name, err)
	}
	v.hold(seq, f, s.o.SHA256)
	delete(v.starting, f.Header.Stream)
	v.n.metrics.rebinds.WithLabelValues(v.name).Inc()
	if fresh {
		v.n.log.Info("volume bound to a journal stream started by an initialize", "volume", v.name, "stream", nc.Stream, "file", seq)
	} else {
		v.n.log.Warn("volume rebound to a new journal stream (an initialize at the source); the previous binding is kept in status",
			"volume", v.name, "stream", nc.Stream, "kind", f.Header.Start.String(), "file", seq,
			"previous_stream", streamName(old.stream()), "previous_file", old.File, "previous_record", old.Record,
			"copy_before", snap)
	}
	return syncDirs(v.dir)
}

// supersede quarantines the files held of the old stream (destage could not
// reach them: they lie behind a gap that the old stream will never fill)
// and removes partial files not being received. v.mu held.
func (v *volume) supersede(seq uint64, stream journal.StreamID) {
	var held []uint64
	for s := range v.q.held {
		held = append(held, s)
	}
	for _, s := range held {
		err := fmt.Errorf("held file %d of the previous stream is superseded by stream %s (an initialize started at file %d)", s, stream, seq)
		if qerr := v.quarantine(s, reasonSuperseded, err); qerr != nil {
			v.n.log.Error("cannot quarantine a superseded file", "volume", v.name, "file", s, "err", qerr)
		}
	}
	for p := range v.parts {
		if _, busy := v.receiving[p]; !busy && p != seq {
			os.Remove(filepath.Join(v.dir, journal.FileName(p)+partExt))
			v.setPart(p, 0)
		}
	}
}

// expireParts removes partial files that nobody resumed for the expiry
// time (an aborted transfer of a file that is never offered again, e.g. one
// far ahead of the cursor), so they stop counting against the buffer.
func (v *volume) expireParts(now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for p := range v.parts {
		if _, busy := v.receiving[p]; busy {
			continue
		}
		path := filepath.Join(v.dir, journal.FileName(p)+partExt)
		st, err := os.Stat(path)
		if err != nil || now.Sub(st.ModTime()) < v.n.cfg.PartExpiry {
			continue
		}
		if err := os.Remove(path); err != nil {
			v.n.log.Warn("cannot remove an expired partial file", "volume", v.name, "file", path, "err", err)
			continue
		}
		v.setPart(p, 0)
		v.n.metrics.partsExpired.WithLabelValues(v.name).Inc()
		v.n.log.Info("partial file expired (not resumed)", "volume", v.name, "file", path, "age", now.Sub(st.ModTime()).Round(time.Second))
	}
}
