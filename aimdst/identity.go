package aimdst

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// heldInfo is what destage and the duplicate rule need of a held file.
type heldInfo struct {
	first, last uint64 // sequence range of its records
	stream      journal.StreamID
	start       journal.StartKind
	sha         [32]byte // SHA-256 of the whole file, once known
	shaKnown    bool
}

// Refusal reasons (the reason label of aimwan_dst_refused_files_total).
const (
	reasonStream     = "stream"     // a file of another journal stream
	reasonMismatch   = "mismatch"   // the number of a file held or destaged, other contents
	reasonOld        = "unverified" // the number of a file destaged so long ago its digest is gone
	reasonSequence   = "sequence"   // records that do not follow
	reasonSuperseded = "superseded" // a held file of a stream an initialize replaced (quarantined)
)

// Refusal is a file the volume refused (or quarantined), for status: the
// newest per file number.
type Refusal struct {
	File   uint64    `json:"file"`
	Reason string    `json:"reason"`
	Error  string    `json:"error"`
	Count  int       `json:"count"` // times refused
	Last   time.Time `json:"last"`
}

// maxRefusals bounds the refusals a volume keeps for status.
const maxRefusals = 16

// advice is what an operator does about a file of another stream.
func advice(volume string) string {
	return fmt.Sprintf("to resume, initialize the volume from the source: `aimwan src init --volume %s` (a full copy), "+
		"or `aimwan src init --volume %s --delta` (by checksum comparison)", volume, volume)
}

// conflict builds a refusal error (push.ErrConflict: not stored, not acked).
func conflict(format string, args ...any) error {
	return fmt.Errorf("%w: %s", push.ErrConflict, fmt.Sprintf(format, args...))
}

// refuse records and logs a refusal of file seq for reason. v.mu held.
func (v *volume) refuse(seq uint64, reason string, err error) error {
	if v.refusals == nil {
		v.refusals = map[uint64]*Refusal{}
	}
	r := v.refusals[seq]
	if r == nil {
		if len(v.refusals) >= maxRefusals {
			var oldest uint64
			for s, x := range v.refusals {
				if oldest == 0 || x.Last.Before(v.refusals[oldest].Last) {
					oldest = s
				}
			}
			delete(v.refusals, oldest)
		}
		r = &Refusal{File: seq}
		v.refusals[seq] = r
	}
	r.Reason, r.Error, r.Last = reason, err.Error(), v.n.cfg.Now()
	r.Count++
	v.n.metrics.refused.WithLabelValues(v.name, reason).Inc()
	v.n.log.Error("journal file refused: not stored, not acked", "volume", v.name, "file", seq, "reason", reason,
		"times", r.Count, "err", err)
	return err
}

// refusalList returns the refusals, by file. v.mu held.
func (v *volume) refusalList() []Refusal {
	out := make([]Refusal, 0, len(v.refusals))
	for _, r := range v.refusals {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out
}

// judgeOffer applies the duplicate rule to an offer of file seq: a file the
// volume holds or has destaged is a duplicate (acked, not stored again) only
// when its SHA-256 matches too. It returns dup for a true duplicate, below
// for a number the cursor has passed whose contents differ or are no longer
// known (the header decides: only the first file of a new stream may reuse
// such a number), and a conflict error for a held file with other contents.
// v.mu held.
func (v *volume) judgeOffer(o push.Offer) (dup, below bool, err error) {
	seq := o.Seq
	if v.q.Holds(seq) {
		info, err := v.hashHeld(seq)
		if err != nil {
			return false, false, err
		}
		if info.sha == o.SHA256 {
			return true, false, nil
		}
		return false, false, v.refuse(seq, reasonMismatch, conflict(
			"volume %s: file %d is held already with other contents (SHA-256 %x, offered %x): the source's journal restarted its numbering, "+
				"or something else pushes files of this volume; %s", v.name, seq, info.sha[:6], o.SHA256[:6], advice(v.name)))
	}
	if seq > v.cursor.File {
		return false, false, nil
	}
	if d, ok := v.cursor.digest(seq); ok && d.SHA256 == hex.EncodeToString(o.SHA256[:]) {
		return true, false, nil
	}
	return false, true, nil
}

// hashHeld returns the info of held file seq with its SHA-256, computed
// once (a file found at start is read for it). v.mu held.
func (v *volume) hashHeld(seq uint64) (heldInfo, error) {
	info, ok := v.info[seq]
	if ok && info.shaKnown {
		return info, nil
	}
	b, err := os.ReadFile(v.path(seq))
	if err == nil && !ok {
		var f *journal.File
		if f, err = journal.ParseExpect(v.path(seq), b, v.name); err == nil {
			info = infoOf(f)
		}
	}
	if err != nil {
		return heldInfo{}, fmt.Errorf("volume %s: read held file %d: %w", v.name, seq, err)
	}
	info.sha, info.shaKnown = sha256.Sum256(b), true
	v.info[seq] = info
	return info, nil
}

// infoOf is the heldInfo of a parsed file (without its SHA-256).
func infoOf(f *journal.File) heldInfo {
	return heldInfo{first: f.FirstSeq(), last: f.LastSeq(), stream: f.Header.Stream, start: f.Header.Start}
}

// boundStream is the stream the volume replicates: the cursor's, or while
// it has none, the stream of the files held (a volume binds to its first
// stream when destage reaches it). v.mu held.
func (v *volume) boundStream() journal.StreamID {
	if id := v.cursor.stream(); !id.IsZero() {
		return id
	}
	var first uint64
	var id journal.StreamID
	for seq, info := range v.info {
		if !info.stream.IsZero() && (first == 0 || seq < first) {
			first, id = seq, info.stream
		}
	}
	return id
}

// judgeHeader decides, from its header, whether file seq may be stored:
// it must be of the stream the volume replicates, or start a new stream
// (rebind: true; the switch happens at commit). below says the cursor has
// passed seq (judgeOffer). v.mu held.
func (v *volume) judgeHeader(seq uint64, h journal.Header, below bool) (rebind bool, err error) {
	bound := v.boundStream()
	switch {
	case h.Stream == bound && !below:
		return false, nil
	case h.Stream == bound:
		if _, ok := v.cursor.digest(seq); !ok {
			return false, v.refuse(seq, reasonOld, conflict(
				"volume %s: file %d was destaged long ago (the destage cursor is at file %d) and its digest is no longer kept, so this copy "+
					"cannot be checked against it; not acked. If the source's buffer was restored from a backup, %s", v.name, seq, v.cursor.File, advice(v.name)))
		}
		return false, v.refuse(seq, reasonMismatch, conflict(
			"volume %s: file %d of stream %s was destaged already with other contents; not acked. The source's journal restarted its "+
				"numbering (a restored or copied buffer?); %s", v.name, seq, streamName(h.Stream), advice(v.name)))
	case h.Start != journal.StartNone:
		return true, nil
	case bound.IsZero() && !below:
		return false, nil // the first stream of an unbound volume (or one continuing version 1 files)
	}
	if at, ok := v.starting[h.Stream]; ok && seq > at {
		return false, fmt.Errorf("%w: volume %s: file %d of stream %s waits for the stream's first file (%d) to be stored",
			push.ErrUnavailable, v.name, seq, h.Stream, at)
	}
	return false, v.refuse(seq, reasonStream, conflict(
		"volume %s: file %d is from journal stream %s, but this destination volume replicates stream %s (destaged up to file %d, record %d); "+
			"nothing was stored or applied. The source's journal was replaced (a new host, a wiped or restored source buffer): %s",
		v.name, seq, streamName(h.Stream), streamName(bound), v.cursor.File, v.cursor.Record, advice(v.name)))
}

// streamName names a stream in messages.
func streamName(id journal.StreamID) string {
	if id.IsZero() {
		return "(none: format version 1)"
	}
	return id.String()
}

// checkFollows checks, when the file before seq is known (held, or the
// cursor's last file), that the records of f follow its last record; else
// that they lie above the destage cursor. A start file of a new stream
// (rebind) follows nothing. v.mu held.
func (v *volume) checkFollows(seq uint64, f *journal.File) error {
	first, last := f.FirstSeq(), f.LastSeq()
	prevLast, known := uint64(0), false
	if p, ok := v.info[seq-1]; ok && p.stream == f.Header.Stream {
		prevLast, known = p.last, true
	} else if seq-1 == v.cursor.File && v.cursor.InFile == 0 && v.cursor.Format == cursorFormat {
		prevLast, known = v.cursor.Record, true
	}
	switch {
	case known && first != prevLast+1:
		return v.refuse(seq, reasonSequence, conflict(
			"volume %s: records %d..%d of file %d do not follow record %d, the last of file %d; not stored. A lost or forged file, "+
				"or a source whose journal was reset: %s", v.name, first, last, seq, prevLast, seq-1, advice(v.name)))
	case !known && first <= v.cursor.Record:
		return v.refuse(seq, reasonSequence, conflict(
			"volume %s: records %d..%d of file %d are at or below record %d, which is destaged already; not stored: %s",
			v.name, first, last, seq, v.cursor.Record, advice(v.name)))
	}
	return nil
}

// destageCheck is the last check before file seq (f) is applied: of the
// bound stream, records following the cursor (or, resuming after a marker
// inside it, holding the cursor). A file that fails is quarantined.
func destageCheck(v *volume, seq uint64, f *journal.File, cur Cursor) (reason string, err error) {
	if bound := cur.stream(); !bound.IsZero() && f.Header.Stream != bound {
		return reasonStream, fmt.Errorf("file %d is from stream %s, the volume replicates stream %s", seq, streamName(f.Header.Stream), bound)
	}
	first, last := f.FirstSeq(), f.LastSeq()
	inside := first <= cur.Record && cur.Record <= last
	switch {
	case first == cur.Record+1:
	case inside && cur.InFile == seq:
	case inside && cur.Format < cursorFormat:
		// A cursor of an older build stopped inside this file at a marker.
	default:
		return reasonSequence, fmt.Errorf("records %d..%d of file %d do not follow the destaged record %d", first, last, seq, cur.Record)
	}
	return "", nil
}

// quarantineDir holds files moved out of the way, per volume.
const quarantineDir = "quarantine"

// QuarantinedFile is a received file that destage will not apply (it does
// not follow, or belongs to a stream the volume no longer replicates),
// moved to <buffer>/<volume>/quarantine/ and kept for the operator.
type QuarantinedFile struct {
	File   uint64    `json:"file"`
	Path   string    `json:"path"`
	Reason string    `json:"reason"`
	Error  string    `json:"error"`
	Size   int64     `json:"size"`
	Time   time.Time `json:"time"`
}

// quarantine moves held file seq out of the reorder buffer into the
// quarantine folder, reporting why; the volume then waits for another file
// of that number. v.mu held.
func (v *volume) quarantine(seq uint64, reason string, cause error) error {
	dir := v.dir + "/" + quarantineDir
	if err := mkdirPrivate(dir); err != nil {
		return fmt.Errorf("volume %s: quarantine: %w", v.name, err)
	}
	name := journal.FileName(seq)
	dst := dir + "/" + name
	if _, err := os.Stat(dst); err == nil {
		dst = fmt.Sprintf("%s/%s.%d", dir, name, v.n.cfg.Now().UnixNano())
	}
	if err := os.Rename(v.path(seq), dst); err != nil {
		return fmt.Errorf("volume %s: quarantine %s: %w", v.name, name, err)
	}
	size, _ := v.q.Remove(seq)
	delete(v.info, seq)
	v.quarantined = append(v.quarantined, QuarantinedFile{File: seq, Path: dst, Reason: reason, Error: cause.Error(),
		Size: size, Time: v.n.cfg.Now()})
	v.n.metrics.refused.WithLabelValues(v.name, reason).Inc()
	v.n.log.Error("journal file quarantined: held, not applied", "volume", v.name, "file", seq, "reason", reason,
		"path", dst, "err", cause, "advice", advice(v.name))
	return syncDirs(v.dir, dir)
}
