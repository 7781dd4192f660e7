package journal

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/aimwan/aimwan/internal/durable"
)

// MaxCoalescedExtent is the largest write record a coalesced file joins
// touching writes into (a single larger write keeps its size).
const MaxCoalescedExtent = 1 << 20

// CoalesceStats describes one file sealed with coalescing: its records and
// payload bytes before and after.
type CoalesceStats struct {
	RecordsIn, RecordsOut int
	BytesIn, BytesOut     int64
}

// errCoalesceTooMany: the coalesced form of a file would hold more than
// MaxRecords records (zeros or trims splitting writes can add records).
// Such a file is sealed as it is.
var errCoalesceTooMany = errors.New("coalesced file above the record limit")

// coalesceRecordLimit is MaxRecords; tests lower it.
var coalesceRecordLimit = MaxRecords

// ExtCompact is the suffix of a coalesced file being written; recovery
// removes leftovers.
const ExtCompact = ".aimj.tmp"

func compactPath(dir string, seq uint64) string { return filepath.Join(dir, FileName(seq)+".tmp") }

// compacted is a coalesced file written under its temporary name, fsynced,
// not yet renamed.
type compacted struct {
	sf   sealedFile
	recs []Record
}

// sealCoalesced seals o as a coalesced file: the open file is made durable
// (so recovery after a crash at any later step redoes the same compaction),
// the compacted file is written as N.aimj.tmp and fsynced, the next open file
// is created with the base seq following the compacted file's last record,
// then the compacted file is renamed to N.aimj, the folder fsynced, and the
// open file and its sidecar removed (the folder fsynced again, so a
// removed open file cannot come back after its sealed file was pushed).
//
// When the compacted file cannot be written (more records than the limit,
// or an I/O error such as a full disk: it needs room for a copy), the file
// is sealed as it is, in place: nothing dropped, nothing lost.
func (o *openFile) sealCoalesced(dir string, now time.Time, log *slog.Logger) (sealedFile, *openFile, error) {
	if err := o.sync(); err != nil {
		return sealedFile{}, nil, err
	}
	c, err := o.writeCompacted()
	if err != nil {
		log.Warn("journal: cannot coalesce a file; sealing it as it is", "file", o.openName(), "err", err)
		return o.seal(dir, now)
	}
	next, err := createOpen(dir, Header{
		Volume: o.hdr.Volume, VolumeSize: o.hdr.VolumeSize, FileSeq: o.hdr.FileSeq + 1,
		Created: now.Round(0).UTC(), BaseSeq: c.sf.LastSeq + 1,
	})
	if err != nil {
		return sealedFile{}, nil, fmt.Errorf("open next journal file: %w", err)
	}
	if err := o.finishCompacted(); err != nil {
		next.close()
		return sealedFile{}, nil, err
	}
	return c.sf, next, nil
}

// writeCompacted writes the coalesced form of o's records to N.aimj.tmp and
// fsyncs it. The data is copied from the open file, span by span.
func (o *openFile) writeCompacted() (compacted, error) {
	in, err := o.decodeIndex()
	if err != nil {
		return compacted{}, fmt.Errorf("coalesce %s: %w", o.openName(), err)
	}
	out := Coalesce(in, MaxCoalescedExtent)
	if len(out) > coalesceRecordLimit {
		return compacted{}, fmt.Errorf("coalesce %s: %d records, more than %d: %w", o.openName(), len(out), coalesceRecordLimit, errCoalesceTooMany)
	}
	tmp := compactPath(o.dir, o.hdr.FileSeq)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return compacted{}, fmt.Errorf("coalesce %s: %w", o.openName(), err)
	}
	c, err := o.copyCompacted(f, out)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return compacted{}, fmt.Errorf("coalesce %s into %s: %w", o.openName(), filepath.Base(tmp), err)
	}
	st := &CoalesceStats{RecordsIn: len(in), RecordsOut: len(out), BytesIn: o.payloadLen}
	for _, r := range c.recs {
		if r.Kind == KindWrite {
			st.BytesOut += r.Length
		}
	}
	c.sf.coalesce = st
	return c, nil
}

// copyCompacted writes header, payload, index and footer of the coalesced
// records out to f.
func (o *openFile) copyCompacted(f *os.File, out []Coalesced) (compacted, error) {
	sum := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, sum), 1<<20)
	bw.Write(encodeHeader(o.hdr))
	var (
		index   []byte
		cnt     counts
		buf     []byte
		payload int64
		recs    = make([]Record, 0, len(out))
	)
	for i := range out {
		r := out[i].Record
		if r.Kind == KindWrite {
			buf = buf[:0]
			for _, s := range out[i].Src {
				n := len(buf)
				buf = append(buf, make([]byte, s.Length)...)
				if _, err := o.f.ReadAt(buf[n:], HeaderSize+s.DataOff); err != nil {
					return compacted{}, fmt.Errorf("read %s: %w", o.openName(), err)
				}
			}
			r.CRC = Checksum(buf)
			bw.Write(buf)
			payload += r.Length
		}
		index = appendRecord(index, &r)
		cnt.add(r.Kind)
		recs = append(recs, r)
	}
	bw.Write(index)
	if err := bw.Flush(); err != nil {
		return compacted{}, err
	}
	last := o.hdr.BaseSeq + uint64(len(recs)) - 1
	ft := footer{
		PayloadOff: HeaderSize, PayloadLen: payload, IndexOff: HeaderSize + payload, IndexLen: int64(len(index)),
		Records: cnt.records, Writes: cnt.writes, Zeros: cnt.zeros, Trims: cnt.trims, Markers: cnt.markers,
		FirstSeq: o.hdr.BaseSeq, LastSeq: last,
	}
	copy(ft.SHA256[:], sum.Sum(nil))
	if _, err := f.Write(encodeFooter(ft)); err != nil {
		return compacted{}, err
	}
	size := HeaderSize + payload + int64(len(index)) + FooterSize
	return compacted{sf: o.sealedAs(size, len(recs), payload, last), recs: recs}, nil
}

// finishCompacted renames the compacted file to its final name, fsyncs the
// folder, removes the open file and its sidecar, and fsyncs the folder
// again.
func (o *openFile) finishCompacted() error {
	seq := o.hdr.FileSeq
	name := FileName(seq)
	if err := os.Rename(compactPath(o.dir, seq), filepath.Join(o.dir, name)); err != nil {
		return fmt.Errorf("seal %s: %w", name, err)
	}
	if err := durable.SyncDir(o.dir); err != nil {
		return fmt.Errorf("seal %s: %w", name, err)
	}
	cerr := o.close()
	if err := removeOpen(o.dir, seq); err != nil {
		return fmt.Errorf("seal %s: %w", name, err)
	}
	return cerr
}

// removeOpen removes the open file and sidecar of seq (either may be gone)
// and fsyncs the folder.
func removeOpen(dir string, seq uint64) error {
	for _, p := range []string{openPath(dir, seq), sidecarPath(dir, seq)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return durable.SyncDir(dir)
}
