package journal

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aimwan/aimwan/internal/durable"
)

// folder is what recovery found in a volume's journal folder.
type folder struct {
	sealed   []uint64        // sealed file sequences, ascending
	opens    []uint64        // open file sequences, ascending
	sidecars map[uint64]bool // sidecar file sequences
}

func scanFolder(dir string) (folder, error) {
	fo := folder{sidecars: map[uint64]bool{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fo, err
	}
	for _, e := range entries {
		name := e.Name()
		if seq, err := ParseFileName(name); err == nil {
			fo.sealed = append(fo.sealed, seq)
		} else if base, ok := strings.CutSuffix(name, ".open"); ok {
			if seq, err := ParseFileName(base); err == nil {
				fo.opens = append(fo.opens, seq)
			}
		} else if base, ok := strings.CutSuffix(name, ".idx"); ok {
			if seq, err := ParseFileName(base); err == nil {
				fo.sidecars[seq] = true
			}
		} else if strings.HasSuffix(name, ExtOpen+".tmp") || strings.HasSuffix(name, ExtCompact) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return fo, err
			}
		}
	}
	slices.Sort(fo.sealed)
	slices.Sort(fo.opens)
	return fo, nil
}

// recover brings the folder to a consistent state: leftover open files are
// sealed (or reused when empty), and w.cur is the open file to append to.
func (w *Writer) recover() ([]Record, error) {
	dir := w.cfg.Dir
	if err := durable.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	fo, err := scanFolder(dir)
	if err != nil {
		return nil, err
	}
	nextFile, nextSeq := uint64(1), uint64(1)
	known := false // nextSeq follows a file that exists (sealed or recovered)
	if n := len(fo.sealed); n > 0 {
		last := fo.sealed[n-1]
		ft, err := readFooter(filepath.Join(dir, FileName(last)), w.cfg.Volume)
		if err != nil {
			return nil, fmt.Errorf("last sealed file: %w", err)
		}
		nextFile, nextSeq, known = last+1, ft.LastSeq+1, true
	}
	for seq := range fo.sidecars {
		if !slices.Contains(fo.opens, seq) {
			if err := os.Remove(sidecarPath(dir, seq)); err != nil {
				return nil, err
			}
		}
	}
	var recs []Record
	var reuse *openFile
	for i, seq := range fo.opens {
		if slices.Contains(fo.sealed, seq) {
			// A coalesced seal stopped after its rename: the sealed
			// file wins.
			if err := w.dropSealedOpen(seq); err != nil {
				return nil, err
			}
			continue
		}
		if seq < nextFile {
			return nil, fmt.Errorf("open file %s is older than sealed file %s: move one aside", filepath.Base(openPath(dir, seq)), FileName(nextFile-1))
		}
		o, err := w.recoverOpen(seq)
		if err != nil {
			return nil, err
		}
		if o.records == 0 {
			if !known || seq != nextFile {
				// Else the base seq must follow the file before it
				// (it may not: a seal stopped after creating this file
				// and recovery sealed the previous one otherwise).
				nextSeq = max(nextSeq, o.hdr.BaseSeq)
			}
			nextFile = seq
			if i == len(fo.opens)-1 {
				reuse = o
				break
			}
			o.close()
			if err := errors.Join(os.Remove(openPath(dir, seq)), os.Remove(sidecarPath(dir, seq))); err != nil {
				return nil, err
			}
			continue
		}
		if o.hdr.BaseSeq < nextSeq {
			o.close()
			return nil, fmt.Errorf("open file %s starts at seq %d, already used by sealed files", filepath.Base(openPath(dir, seq)), o.hdr.BaseSeq)
		}
		rs, err := w.sealRecovered(o)
		if err != nil {
			return nil, err
		}
		recs = append(recs, rs...)
		nextFile, nextSeq, known = seq+1, rs[len(rs)-1].Seq+1, true
	}
	return recs, w.startOpen(reuse, nextFile, nextSeq)
}

// sealRecovered seals a recovered open file that holds records and returns
// them.
func (w *Writer) sealRecovered(o *openFile) ([]Record, error) {
	rs, err := o.decodeIndex()
	if err != nil {
		o.close()
		return nil, err
	}
	var sf sealedFile
	switch {
	case o.complete > 0:
		sf = o.sealedFile(o.complete)
		err = o.finish(w.cfg.Dir)
	case w.cfg.Coalesce:
		var c compacted
		if c, err = o.writeCompacted(); err == nil {
			sf, rs = c.sf, c.recs
			err = o.finishCompacted()
			break
		}
		w.cfg.Logger.Warn("journal: cannot coalesce a recovered file; sealing it as it is", "file", o.openName(), "err", err)
		fallthrough // sealed as it is
	default:
		if sf, err = o.writeTail(); err == nil {
			err = o.finish(w.cfg.Dir)
		}
	}
	if err != nil {
		o.close()
		return nil, fmt.Errorf("seal recovered file: %w", err)
	}
	w.cfg.Logger.Warn("journal: sealed a file left open by a crash", "volume", w.cfg.Volume, "file", sf.Name,
		"records", len(rs), "first_seq", sf.FirstSeq, "last_seq", sf.LastSeq)
	w.pending = append(w.pending, sf)
	w.recovered = append(w.recovered, sf)
	return rs, nil
}

// dropSealedOpen removes the open file of seq when the sealed file of the
// same seq exists: a coalesced seal renames the compacted file before it
// removes the open one. The sealed file must be valid (it is parsed in
// full), else nothing is removed.
func (w *Writer) dropSealedOpen(seq uint64) error {
	path := filepath.Join(w.cfg.Dir, FileName(seq))
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if _, err := ParseExpect(path, b, w.cfg.Volume); err != nil {
		return fmt.Errorf("open file %s beside sealed file %s, which is not valid: %w",
			filepath.Base(openPath(w.cfg.Dir, seq)), FileName(seq), err)
	}
	w.cfg.Logger.Warn("journal: removed an open file already sealed (coalesced) before a crash",
		"volume", w.cfg.Volume, "file", FileName(seq))
	return removeOpen(w.cfg.Dir, seq)
}

// startOpen makes w.cur the open file for (fileSeq, baseSeq): reuse when it
// matches, else a new one.
func (w *Writer) startOpen(reuse *openFile, fileSeq, baseSeq uint64) error {
	w.nextSeq = baseSeq
	if reuse != nil {
		h := reuse.hdr
		if h.FileSeq == fileSeq && h.BaseSeq == baseSeq && h.VolumeSize == w.cfg.VolumeSize {
			w.cur = reuse
			return nil
		}
		reuse.close()
	}
	o, err := createOpen(w.cfg.Dir, Header{
		Volume: w.cfg.Volume, VolumeSize: w.cfg.VolumeSize, FileSeq: fileSeq,
		Created: w.cfg.Now().Round(0).UTC(), BaseSeq: baseSeq,
	})
	if err != nil {
		return err
	}
	if err := durable.SyncDir(w.cfg.Dir); err != nil {
		o.close()
		return err
	}
	w.cur = o
	return nil
}

// recoverOpen opens a leftover open file and keeps the longest prefix of its
// sidecar records whose data is present and intact; the rest of both files
// is cut off. A file that was sealed but not yet renamed keeps all records.
func (w *Writer) recoverOpen(seq uint64) (*openFile, error) {
	dir := w.cfg.Dir
	b, err := os.ReadFile(openPath(dir, seq))
	if err != nil {
		return nil, err
	}
	name := filepath.Base(openPath(dir, seq))
	hdr, err := decodeHeader(name, b)
	if err != nil {
		return nil, err
	}
	if hdr.Volume != w.cfg.Volume || hdr.FileSeq != seq {
		return nil, formatErr(name, ErrWrongVolume, "header says volume %q file %d", hdr.Volume, hdr.FileSeq)
	}
	o := &openFile{dir: dir, hdr: hdr, sum: sha256.New()}
	if f, err := Parse(name, b); err == nil {
		// Sealed but not renamed: keep the file exactly as it is (its
		// sidecar may hold fewer records than its index).
		o.adopt(f.Records, f.payloadLen, f.Bytes()[f.payloadOff+f.payloadLen:f.Size-FooterSize])
		o.complete = f.Size
		return o, nil
	}
	if err := o.scanSidecar(b); err != nil {
		return nil, err
	}
	o.sum.Write(b[:HeaderSize+o.payloadLen])
	if o.f, err = os.OpenFile(openPath(dir, seq), os.O_RDWR, 0); err != nil {
		return nil, err
	}
	if o.idx, err = os.OpenFile(sidecarPath(dir, seq), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		o.close()
		return nil, err
	}
	if err := o.cut(); err != nil {
		o.close()
		return nil, err
	}
	return o, nil
}

// adopt sets the state of o to the given records (as in a sealed file).
func (o *openFile) adopt(recs []Record, payloadLen int64, index []byte) {
	o.index = append([]byte(nil), index...)
	o.payloadLen = payloadLen
	o.records = len(recs)
	for _, r := range recs {
		o.counts.add(r.Kind)
		o.lastSeq = r.Seq
		o.noteTime(r.Time)
	}
}

// noteTime takes the timestamp of a recovered record as its append time.
func (o *openFile) noteTime(t time.Time) {
	if o.firstTime.IsZero() {
		o.firstTime = t
	}
	o.lastTime = t
}

// scanSidecar reads the sidecar and adopts the longest valid prefix of its
// records whose data in b (the open file) is complete and matches its CRC.
func (o *openFile) scanSidecar(b []byte) error {
	side, err := os.ReadFile(sidecarPath(o.dir, o.hdr.FileSeq))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	o.sideLen = sidecarHeaderSize
	if len(side) < sidecarHeaderSize || [8]byte(side[:8]) != sidecarMagic || le.Uint64(side[8:]) != o.hdr.FileSeq {
		return nil
	}
	p := side[sidecarHeaderSize:]
	for o.records < MaxRecords && len(p) >= frameOverhead {
		n := int64(le.Uint32(p))
		if n < RecordFixed || n > maxRecordSize || n > int64(len(p)-frameOverhead) {
			break
		}
		frame := p[:4+n]
		if Checksum(frame) != le.Uint32(p[4+n:]) {
			break
		}
		r, used, err := decodeRecord(frame[4:])
		if err != nil || int64(used) != n || !o.fits(&r, b) {
			break
		}
		o.index = append(o.index, frame[4:]...)
		if r.Kind == KindWrite {
			o.payloadLen += r.Length
		}
		o.records++
		o.counts.add(r.Kind)
		o.lastSeq = r.Seq
		o.noteTime(r.Time)
		o.sideLen += n + frameOverhead
		p = p[n+frameOverhead:]
	}
	return nil
}

// fits reports whether r is the next record of o: right sequence, valid, and
// for a write, data back to back, fully present in b and matching its CRC.
func (o *openFile) fits(r *Record, b []byte) bool {
	if r.Seq != o.hdr.BaseSeq+uint64(o.records) || r.Validate(o.hdr.VolumeSize) != nil {
		return false
	}
	if r.Kind != KindWrite {
		return true
	}
	start := HeaderSize + o.payloadLen
	if r.DataOff != o.payloadLen || r.Length > int64(len(b))-start {
		return false
	}
	return Checksum(b[start:start+r.Length]) == r.CRC
}

// cut truncates the open file and the sidecar to what o holds, and fsyncs.
func (o *openFile) cut() error {
	if err := o.f.Truncate(HeaderSize + o.payloadLen); err != nil {
		return err
	}
	if o.records == 0 {
		// Rewrite the sidecar header in case it was missing or damaged.
		if _, err := o.idx.WriteAt(sidecarHeader(o.hdr.FileSeq), 0); err != nil {
			return err
		}
	}
	if err := o.idx.Truncate(o.sideLen); err != nil {
		return err
	}
	return o.sync()
}

// decodeIndex decodes o's in-memory index.
func (o *openFile) decodeIndex() ([]Record, error) {
	recs := make([]Record, 0, o.records)
	for p := o.index; len(p) > 0; {
		r, n, err := decodeRecord(p)
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
		p = p[n:]
	}
	return recs, nil
}

// readFooter reads the header and footer of a sealed file (not its
// contents) and checks that it belongs to volume.
func readFooter(path, volume string) (footer, error) {
	f, err := os.Open(path)
	if err != nil {
		return footer{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return footer{}, err
	}
	if st.Size() < HeaderSize+FooterSize {
		return footer{}, formatErr(path, ErrTruncated, "%d bytes", st.Size())
	}
	hb := make([]byte, HeaderSize)
	if _, err := f.ReadAt(hb, 0); err != nil {
		return footer{}, err
	}
	h, err := decodeHeader(path, hb)
	if err != nil {
		return footer{}, err
	}
	if h.Volume != volume {
		return footer{}, formatErr(path, ErrWrongVolume, "file of volume %q in the folder of %q", h.Volume, volume)
	}
	fb := make([]byte, FooterSize)
	if _, err := f.ReadAt(fb, st.Size()-FooterSize); err != nil && err != io.EOF {
		return footer{}, err
	}
	return decodeFooterAt(path, fb, st.Size())
}

// RecoveredData returns the bytes of a write record that OpenWriter
// recovered, read back from the file it was sealed into and checked against
// the record's CRC32C. It is meant for redoing recovered writes into the
// volume image.
func (w *Writer) RecoveredData(r Record) ([]byte, error) {
	if r.Kind != KindWrite {
		return nil, fmt.Errorf("%w: %s record has no data", ErrInvalidRecord, r.Kind)
	}
	for _, sf := range w.recovered {
		if r.Seq < sf.FirstSeq || r.Seq > sf.LastSeq {
			continue
		}
		if r.DataOff < 0 || r.Length < 0 || r.Length > sf.Size {
			return nil, fmt.Errorf("%w: seq %d: data range [%d,+%d)", ErrInvalidRecord, r.Seq, r.DataOff, r.Length)
		}
		f, err := os.Open(sf.path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		data := make([]byte, r.Length)
		if _, err := f.ReadAt(data, HeaderSize+r.DataOff); err != nil {
			return nil, fmt.Errorf("read seq %d from %s: %w", r.Seq, sf.Name, err)
		}
		if Checksum(data) != r.CRC {
			return nil, formatErr(sf.path, ErrCorrupt, "seq %d: data CRC32C mismatch", r.Seq)
		}
		return data, nil
	}
	return nil, fmt.Errorf("%w: seq %d was not recovered by OpenWriter", ErrInvalidRecord, r.Seq)
}
