package journal

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"time"

	"github.com/aimwan/aimwan/internal/durable"
)

// openFile is the file being written: NNN.aimj.open holds the header and the
// payload region, NNN.aimj.idx (the sidecar) holds every record framed with
// a CRC32C. The index is also kept in memory for sealing.
type openFile struct {
	dir        string
	hdr        Header
	f, idx     *os.File
	payloadLen int64
	sideLen    int64 // bytes of the sidecar
	index      []byte
	counts     counts
	records    int
	firstTime  time.Time // when the first record was appended
	lastTime   time.Time // when the last record was appended
	lastSeq    uint64
	sum        hash.Hash // SHA-256 of header and payload so far
	sealed     bool      // set under the Writer's lock once sealed
	closed     bool
	complete   int64 // recovery: size of an already sealed (not renamed) file
}

func openPath(dir string, seq uint64) string    { return filepath.Join(dir, FileName(seq)+".open") }
func sidecarPath(dir string, seq uint64) string { return filepath.Join(dir, FileName(seq)+".idx") }

// openName and sideName name the files in errors (o.f.Name() would be the
// temporary name it was created under).
func (o *openFile) openName() string { return openPath(o.dir, o.hdr.FileSeq) }
func (o *openFile) sideName() string { return sidecarPath(o.dir, o.hdr.FileSeq) }

// sidecarHeader returns the 16 bytes a sidecar starts with.
func sidecarHeader(seq uint64) []byte {
	b := append(make([]byte, 0, sidecarHeaderSize), sidecarMagic[:]...)
	return le.AppendUint64(b, seq)
}

// createOpen creates (or replaces) the open file and sidecar of hdr.FileSeq
// and fsyncs both. The caller fsyncs the folder.
func createOpen(dir string, hdr Header) (*openFile, error) {
	o := &openFile{dir: dir, hdr: hdr, sum: sha256.New()}
	var err error
	o.idx, err = os.OpenFile(sidecarPath(dir, hdr.FileSeq), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	if _, err := o.idx.WriteAt(sidecarHeader(hdr.FileSeq), 0); err != nil {
		o.close()
		return nil, err
	}
	o.sideLen = sidecarHeaderSize
	// The open file is created under a temporary name and renamed, so a
	// half-written header never replaces an existing open file.
	tmp := openPath(dir, hdr.FileSeq) + ".tmp"
	o.f, err = os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		o.close()
		return nil, err
	}
	h := encodeHeader(hdr)
	o.sum.Write(h)
	if _, err := o.f.WriteAt(h, 0); err != nil {
		o.close()
		return nil, err
	}
	if err := o.sync(); err != nil {
		o.close()
		return nil, err
	}
	if err := os.Rename(tmp, openPath(dir, hdr.FileSeq)); err != nil {
		o.close()
		return nil, err
	}
	return o, nil
}

// append writes data to the payload region and the framed record to the
// sidecar. Both reach the page cache before append returns, so a process
// crash loses nothing; sync makes them survive power loss.
func (o *openFile) append(r *Record, data []byte, now time.Time) error {
	if len(data) > 0 {
		if _, err := o.f.WriteAt(data, HeaderSize+o.payloadLen); err != nil {
			return fmt.Errorf("write %s: %w", o.openName(), err)
		}
	}
	start := len(o.index)
	o.index = appendRecord(o.index, r)
	frame := appendFrame(make([]byte, 0, len(o.index)-start+frameOverhead), o.index[start:])
	if _, err := o.idx.WriteAt(frame, o.sideLen); err != nil {
		o.index = o.index[:start]
		return fmt.Errorf("write %s: %w", o.sideName(), err)
	}
	o.sum.Write(data)
	o.sideLen += int64(len(frame))
	o.payloadLen += int64(len(data))
	if o.records == 0 {
		o.firstTime = now
	}
	o.lastTime = now
	o.records++
	o.counts.add(r.Kind)
	o.lastSeq = r.Seq
	return nil
}

// appendFrame appends rec framed for the sidecar: u32 length, the record,
// u32 CRC32C of length and record.
func appendFrame(b, rec []byte) []byte {
	start := len(b)
	b = le.AppendUint32(b, uint32(len(rec)))
	b = append(b, rec...)
	return le.AppendUint32(b, Checksum(b[start:]))
}

// hasData reports whether o holds a write, zero or trim record.
func (o *openFile) hasData() bool { return o.counts.records > o.counts.markers }

func (o *openFile) sync() error {
	if err := o.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", o.openName(), err)
	}
	if err := o.idx.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", o.sideName(), err)
	}
	return nil
}

// close closes both files once. The handles stay set, so a Sync racing with
// sealing sees os.ErrClosed rather than a nil file.
func (o *openFile) close() error {
	if o.closed {
		return nil
	}
	o.closed = true
	var errs []error
	if o.f != nil {
		errs = append(errs, o.f.Close())
	}
	if o.idx != nil {
		errs = append(errs, o.idx.Close())
	}
	return errors.Join(errs...)
}

// footer returns the footer for the file's current contents, with sum the
// SHA-256 of everything before it.
func (o *openFile) footer(sum []byte) footer {
	ft := footer{
		PayloadOff: HeaderSize, PayloadLen: o.payloadLen,
		IndexOff: HeaderSize + o.payloadLen, IndexLen: int64(len(o.index)),
		Records: o.counts.records, Writes: o.counts.writes, Zeros: o.counts.zeros,
		Trims: o.counts.trims, Markers: o.counts.markers,
		FirstSeq: o.hdr.BaseSeq, LastSeq: o.lastSeq,
	}
	copy(ft.SHA256[:], sum)
	return ft
}

// seal appends the index and footer, fsyncs, creates the next open file,
// renames this one to its final name, fsyncs the folder and removes the
// sidecar. The next open file exists before the rename, so the folder
// always holds the sequence numbers to continue from, even when every
// sealed file has been pushed and deleted.
func (o *openFile) seal(dir string, now time.Time) (sealedFile, *openFile, error) {
	sf, err := o.writeTail()
	if err != nil {
		return sealedFile{}, nil, err
	}
	next, err := createOpen(dir, Header{
		Volume: o.hdr.Volume, VolumeSize: o.hdr.VolumeSize, FileSeq: o.hdr.FileSeq + 1,
		Created: now.Round(0).UTC(), BaseSeq: o.lastSeq + 1,
	})
	if err != nil {
		return sealedFile{}, nil, fmt.Errorf("open next journal file: %w", err)
	}
	if err := o.finish(dir); err != nil {
		next.close()
		return sealedFile{}, nil, err
	}
	return sf, next, nil
}

// writeTail appends the index and the footer after the payload region and
// fsyncs the file.
func (o *openFile) writeTail() (sealedFile, error) {
	o.sum.Write(o.index)
	tail := append(append([]byte(nil), o.index...), encodeFooter(o.footer(o.sum.Sum(nil)))...)
	if _, err := o.f.WriteAt(tail, HeaderSize+o.payloadLen); err != nil {
		return sealedFile{}, fmt.Errorf("seal %s: %w", o.openName(), err)
	}
	if err := o.f.Sync(); err != nil {
		return sealedFile{}, fmt.Errorf("seal %s: fsync: %w", o.openName(), err)
	}
	return o.sealedFile(HeaderSize + o.payloadLen + int64(len(tail))), nil
}

// sealedFile describes o once sealed as it is, with the given size.
func (o *openFile) sealedFile(size int64) sealedFile {
	return o.sealedAs(size, o.records, o.payloadLen, o.lastSeq)
}

// sealedAs describes o once sealed with the given size, records, payload
// bytes and last seq (a coalesced file has fewer than o).
func (o *openFile) sealedAs(size int64, records int, payload int64, lastSeq uint64) sealedFile {
	name := FileName(o.hdr.FileSeq)
	return sealedFile{SealedFile: SealedFile{Name: name, Seq: o.hdr.FileSeq, Size: size, Records: records,
		PayloadBytes: payload, FirstSeq: o.hdr.BaseSeq, LastSeq: lastSeq, FirstTime: o.firstTime, LastTime: o.lastTime},
		path: filepath.Join(o.dir, name)}
}

// finish renames the sealed open file to its final name, fsyncs the folder,
// removes the sidecar and closes the handles.
func (o *openFile) finish(dir string) error {
	seq := o.hdr.FileSeq
	if err := os.Rename(openPath(dir, seq), filepath.Join(dir, FileName(seq))); err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("seal %s: %w", FileName(seq), err)
	}
	cerr := o.close()
	// The sidecar may be gone already: recovery of a file sealed but not
	// renamed whose sidecar's folder entry was lost.
	if err := os.Remove(sidecarPath(dir, seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("seal %s: remove sidecar: %w", FileName(seq), err)
	}
	return cerr
}
