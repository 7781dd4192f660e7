package journal

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// op is one append in a test scenario; data is generated from seed.
type op struct {
	kind   Kind
	off    int64
	length int64
	marker Record // for markers
}

func writeOp(off, n int64) op { return op{kind: KindWrite, off: off, length: n} }
func zeroOp(off, n int64, trim bool) op {
	return op{kind: map[bool]Kind{false: KindZero, true: KindTrim}[trim], off: off, length: n}
}
func markerOp(m Record) op { return op{kind: m.Kind, marker: m} }

// opData returns deterministic data for the write with sequence seq.
func opData(seq uint64, n int64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seq, 0x5eed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// apply performs o on w and returns the record as it should read back.
func apply(t testing.TB, w *Writer, o op) Record {
	t.Helper()
	var seq uint64
	var err error
	switch o.kind {
	case KindWrite:
		seq = w.NextSeq()
		seq, err = w.Write(o.off, opData(seq, o.length))
	case KindZero, KindTrim:
		seq, err = w.Zero(o.off, o.length, o.kind == KindTrim)
	default:
		seq, err = w.Marker(o.marker)
	}
	if err != nil {
		t.Fatalf("append %v: %v", o.kind, err)
	}
	r := o.marker
	r.Kind, r.Seq = o.kind, seq
	if !o.kind.IsMarker() {
		r.Offset, r.Length = o.off, o.length
	}
	return r
}

// fakeClock is an injectable clock for WriterConfig.Now.
type fakeClock struct{ t time.Time }

func newClock() *fakeClock                   { return &fakeClock{t: time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)} }
func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// readAll parses every sealed file in dir, in order, and returns the records
// with their data (nil for non-writes).
func readAll(t testing.TB, dir, volume string) ([]Record, [][]byte, []*File) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"+Ext))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	var recs []Record
	var datas [][]byte
	var files []*File
	for i, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		f, err := ParseExpect(n, b, volume)
		if err != nil {
			t.Fatalf("sealed file: %v", err)
		}
		if i > 0 && f.Header.FileSeq != files[i-1].Header.FileSeq+1 {
			t.Fatalf("file seq %d follows %d", f.Header.FileSeq, files[i-1].Header.FileSeq)
		}
		files = append(files, f)
		for _, r := range f.Records {
			recs = append(recs, r)
			datas = append(datas, f.Data(r))
		}
	}
	return recs, datas, files
}

// checkRecords compares read-back records with the expected ones (kind,
// sequence, range, marker fields) and checks write data against opData.
func checkRecords(t testing.TB, got []Record, datas [][]byte, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		same := g.Kind == w.Kind && g.Seq == w.Seq && g.Offset == w.Offset && g.Length == w.Length &&
			g.Label == w.Label && g.Group == w.Group && g.GroupSeq == w.GroupSeq && fmt.Sprint(g.Args) == fmt.Sprint(w.Args) &&
			fmt.Sprint(g.Members) == fmt.Sprint(w.Members)
		if !same {
			t.Fatalf("record %d = %+v, want %+v", i, g, w)
		}
		if g.Kind == KindWrite && !bytes.Equal(datas[i], opData(g.Seq, g.Length)) {
			t.Fatalf("record %d (seq %d): data differs", i, g.Seq)
		}
	}
}

// encodeRaw builds a file from header and records without any validation,
// so tests can make files that are well sealed but wrong inside.
func encodeRaw(h Header, recs []Record, payload []byte) []byte {
	b := encodeHeader(h)
	b = append(b, payload...)
	var index []byte
	var c counts
	for i := range recs {
		index = appendRecord(index, &recs[i], h.Version)
		c.add(recs[i].Kind)
	}
	b = append(b, index...)
	ft := footer{
		PayloadOff: h.Size(), PayloadLen: int64(len(payload)),
		IndexOff: h.Size() + int64(len(payload)), IndexLen: int64(len(index)),
		Records: c.records, Writes: c.writes, Zeros: c.zeros, Trims: c.trims, Markers: c.markers,
	}
	if len(recs) > 0 {
		ft.FirstSeq, ft.LastSeq = recs[0].Seq, recs[len(recs)-1].Seq
	}
	ft.SHA256 = sha256.Sum256(b)
	return append(b, encodeFooter(ft, h.Version)...)
}

// reseal recomputes the footer's SHA-256 and CRC after a test edited b.
func reseal(b []byte) []byte {
	b = bytes.Clone(b)
	end := len(b) - FooterSize
	sum := sha256.Sum256(b[:end])
	copy(b[end+88:], sum[:])
	le.PutUint32(b[end+124:], Checksum(b[end:end+124]))
	return b
}

// sampleStream is the stream id of sampleFile.
var sampleStream = StreamID{0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, 0xb0}

// sampleFile returns a valid file with writes, a zero, a trim and markers.
func sampleFile() (Header, []Record, []byte) {
	h := Header{Volume: "vol-1", VolumeSize: 1 << 20, FileSeq: 7, BaseSeq: 100, Created: time.Unix(0, 1_700_000_000_123_456_789).UTC(),
		Stream: sampleStream, Version: Version}
	t0 := time.Unix(0, 1_700_000_001_000_000_000).UTC()
	var payload []byte
	var recs []Record
	add := func(r Record, data []byte) {
		r.Seq = h.BaseSeq + uint64(len(recs))
		r.Time = t0.Add(time.Duration(len(recs)) * time.Millisecond)
		if r.Kind == KindWrite {
			r.DataOff, r.Length, r.CRC = int64(len(payload)), int64(len(data)), Checksum(data)
			payload = append(payload, data...)
		}
		recs = append(recs, r)
	}
	add(Record{Kind: KindWrite, Offset: 0}, opData(1, 4096))
	add(Record{Kind: KindWrite, Offset: 8192}, opData(2, 1000))
	add(Record{Kind: KindZero, Offset: 65536, Length: 65536}, nil)
	add(Record{Kind: KindTrim, Offset: 1 << 19, Length: 4096}, nil)
	add(Record{Kind: KindSnapshot, Label: "daily-1"}, nil)
	add(Record{Kind: KindCustom, Label: "app_ckpt", Args: []KV{{"db", "orders"}, {"lsn", "12345"}}, Group: "g1", GroupSeq: 9, Members: []string{"vol-1", "vol-2"}}, nil)
	add(Record{Kind: KindWrite, Offset: 1<<20 - 512}, opData(3, 512))
	return h, recs, payload
}

// shmTempDir returns a temporary folder on tmpfs when /dev/shm exists (fsync
// is cheap there), else t.TempDir().
func shmTempDir(t testing.TB) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "aimwan-journal-test-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}
