package aimdst

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/aimwan/aimwan/journal"
)

// destageNext applies the next file of the volume when it is held: every
// record after the cursor, in sequence order, stopping durably at each marker
// (see Cursor for why this never changes the result). It returns whether a
// file was destaged. The file is deleted only after the cursor naming it is
// persisted. After an error the volume is closed (an NBD connection is
// dialled again on the retry); after success a reusable volume stays open
// for the next file.
func (v *volume) destageNext(ctx context.Context) (progressed bool, err error) {
	v.mu.Lock()
	seq, ok := v.q.Ready()
	cur := v.cursor
	v.mu.Unlock()
	if !ok {
		return false, nil
	}
	path := v.path(seq)
	b, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("destage %s: %w", path, err)
	}
	f, err := journal.ParseExpect(path, b, v.name)
	if err != nil {
		return false, fmt.Errorf("destage %s: %w", path, err)
	}
	if reason, err := destageCheck(v, seq, f, cur); err != nil {
		v.mu.Lock()
		qerr := v.quarantine(seq, reason, err)
		v.mu.Unlock()
		return qerr == nil, qerr
	}
	if cur.Stream == "" && !f.Header.Stream.IsZero() {
		cur.Stream = f.Header.Stream.String() // the volume binds to its first stream
		v.n.log.Info("volume bound to a journal stream", "volume", v.name, "stream", cur.Stream, "file", seq)
	}
	v.setState(stateDestaging)
	vf, err := v.volumeFor(f.Header.VolumeSize)
	if err != nil {
		return false, offline(err)
	}
	defer func() { v.releaseVolume(err == nil) }()
	for _, r := range f.Records {
		if r.Seq <= cur.Record {
			continue // applied and persisted before a crash or a retry
		}
		if r.Kind.IsMarker() {
			if err := v.passMarker(ctx, vf, &cur, seq, r); err != nil {
				return false, err
			}
			continue
		}
		if r.Kind.HasRange() {
			if err := v.apply(vf, f, r); err != nil {
				return false, err
			}
		} // a watermark changes nothing on the volume
		cur.Record = r.Seq
		cur.advance(r.Time)
		if r.Kind == journal.KindWrite && r.Time.After(cur.Time) {
			cur.Time = r.Time
		}
	}
	if err := vf.Sync(); err != nil {
		return false, offline(err)
	}
	cur.File, cur.InFile = seq, 0
	cur.addDigest(FileDigest{File: seq, Last: f.LastSeq(), SHA256: hex.EncodeToString(sha256Of(b))})
	if err := v.commitCursor(cur); err != nil {
		return false, err
	}
	v.mu.Lock()
	size := v.q.held[seq]
	err = v.q.Done(seq)
	delete(v.info, seq)
	delete(v.refusals, seq)
	v.mu.Unlock()
	if err != nil {
		return false, err
	}
	v.n.bufBytes.Add(-size)
	if err := os.Remove(path); err != nil {
		v.n.log.Warn("remove destaged file", "volume", v.name, "file", path, "err", err)
	}
	v.n.metrics.filesDestaged.WithLabelValues(v.name).Inc()
	v.n.log.Debug("file destaged", "volume", v.name, "file", seq, "records", len(f.Records), "seq", cur.Record)
	return true, nil
}

// sha256Of returns the SHA-256 of b.
func sha256Of(b []byte) []byte {
	sum := sha256.Sum256(b)
	return sum[:]
}

// apply performs one write, zero or trim on the volume.
func (v *volume) apply(vf volumeFile, f *journal.File, r journal.Record) error {
	switch r.Kind {
	case journal.KindWrite:
		data := f.Data(r)
		if int64(len(data)) != r.Length {
			return fmt.Errorf("record seq %d: data outside the payload region", r.Seq)
		}
		if _, err := vf.WriteAt(data, r.Offset); err != nil {
			return offline(err)
		}
		v.mu.Lock()
		v.logical += r.Length
		v.mu.Unlock()
		v.n.metrics.logicalBytes.WithLabelValues(v.name).Add(float64(r.Length))
	case journal.KindZero, journal.KindTrim:
		if err := vf.Zero(r.Offset, r.Length); err != nil {
			return offline(err)
		}
	default:
		return fmt.Errorf("record seq %d: unknown kind %v", r.Seq, r.Kind)
	}
	return nil
}

// passMarker stops at a marker: every write before it is made durable, the
// marker's action is taken (snapshot, hook, group barrier), and the cursor is
// persisted naming the marker before anything after it is applied.
func (v *volume) passMarker(ctx context.Context, vf volumeFile, cur *Cursor, fileSeq uint64, r journal.Record) error {
	if err := vf.Sync(); err != nil {
		return offline(err)
	}
	if err := v.n.marker(ctx, v, r); err != nil {
		return err
	}
	cur.Record = r.Seq
	cur.File = fileSeq - 1
	cur.InFile = fileSeq
	cur.Marker = r.Label
	cur.MarkerTime = r.Time
	if r.Kind == journal.KindSnapshot {
		cur.Snapshot, cur.SnapshotTime = r.Label, r.Time
	}
	cur.advance(r.Time)
	return v.commitCursor(*cur)
}

// commitCursor persists c and makes it the volume's cursor. Only destage
// calls it; a rebind (which waits until destage has nothing to apply)
// replaces the cursor itself, under the same curMu.
func (v *volume) commitCursor(c Cursor) error {
	v.curMu.Lock()
	defer v.curMu.Unlock()
	c.Format = cursorFormat
	if err := storeCursor(v.cursorPath, c); err != nil {
		return fmt.Errorf("volume %s: %w", v.name, err)
	}
	v.mu.Lock()
	v.cursor = c
	v.mu.Unlock()
	return nil
}
