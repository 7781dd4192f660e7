package journal

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

const coalesceVol = 1 << 20 // volume size of the coalescing tests

// model is the expected volume: every change applied as it was made.
type model struct{ vol []byte }

func newModel() *model { return &model{vol: make([]byte, coalesceVol)} }

func (m *model) apply(r Record, data []byte) {
	if r.Kind.IsMarker() {
		return
	}
	copy(m.vol[r.Offset:r.Offset+r.Length], make([]byte, r.Length))
	if r.Kind == KindWrite {
		copy(m.vol[r.Offset:], data)
	}
}

// replaySealed applies every sealed file in dir in order (checking that the
// sequences run on from file to file) and returns the volume, the records
// and the payload bytes of the files.
func replaySealed(t *testing.T, dir string) ([]byte, []Record, int64) {
	t.Helper()
	recs, datas, files := readAll(t, dir, "vol1")
	m := newModel()
	for i, r := range recs {
		if i > 0 && r.Seq != recs[i-1].Seq+1 {
			t.Fatalf("seq %d follows %d: files not continuous", r.Seq, recs[i-1].Seq)
		}
		m.apply(r, datas[i])
	}
	var payload int64
	for _, f := range files {
		payload += int64(len(f.Payload()))
	}
	return m.vol, recs, payload
}

func coalesceConfig(dir string) WriterConfig {
	return WriterConfig{Dir: dir, Volume: "vol1", VolumeSize: coalesceVol, Now: newClock().Now,
		MaxFileSize: 1 << 30, Coalesce: true}
}

// rewrite writes the same 4 blocks n times (4 KiB each) and returns the
// last data written.
func rewrite(t *testing.T, w *Writer, m *model, n int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < n; i++ {
		for b := int64(0); b < 4; b++ {
			d := make([]byte, 4096)
			for k := range d {
				d[k] = byte(rng.Uint32())
			}
			off := (3 - b) * 8192 // descending: the sealed file sorts them
			if _, err := w.Write(off, d); err != nil {
				t.Fatal(err)
			}
			m.apply(Record{Kind: KindWrite, Offset: off, Length: 4096}, d)
		}
	}
}

func TestWriterCoalesce(t *testing.T) {
	dir := shmTempDir(t)
	cfg := coalesceConfig(dir)
	var stats []CoalesceStats
	cfg.OnCoalesce = func(_ string, s CoalesceStats) { stats = append(stats, s) }
	w := openTest(t, cfg)
	m := newModel()
	rewrite(t, w, m, 10, 1)
	if _, err := w.Zero(8192, 4096, false); err != nil {
		t.Fatal(err)
	}
	m.apply(Record{Kind: KindZero, Offset: 8192, Length: 4096}, nil)
	seq, err := w.Marker(Record{Kind: KindSnapshot, Label: "snap"})
	if err != nil {
		t.Fatal(err)
	}
	rewrite(t, w, m, 5, 2)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	vol, recs, payload := replaySealed(t, dir)
	if !bytes.Equal(vol, m.vol) {
		t.Fatal("replaying the coalesced files does not give the volume")
	}
	// Before the marker: 3 blocks written + 1 zeroed; after: 4 blocks.
	if want := int64(7 * 4096); payload != want {
		t.Fatalf("files carry %d payload bytes, want %d (each block once per window)", payload, want)
	}
	var marker Record
	for _, r := range recs {
		if r.Kind == KindSnapshot {
			marker = r
		}
	}
	if marker.Seq != seq {
		t.Fatalf("marker sealed with seq %d, Marker returned %d", marker.Seq, seq)
	}
	if len(stats) != 2 || stats[0].RecordsIn != 41 || stats[0].BytesIn != 40*4096 || stats[0].BytesOut != 3*4096 {
		t.Fatalf("coalesce stats %+v", stats)
	}
	// Sequences continue after a restart.
	w = openTest(t, cfg)
	if w.NextSeq() != recs[len(recs)-1].Seq+1 {
		t.Fatalf("next seq %d after %d", w.NextSeq(), recs[len(recs)-1].Seq)
	}
	w.Close()
}

// TestWriterCoalesceAgeAndOff: with Coalesce off nothing is dropped; with it
// on, the age rotation ends the window.
func TestWriterCoalesceAgeAndOff(t *testing.T) {
	for _, on := range []bool{false, true} {
		dir := shmTempDir(t)
		cfg := coalesceConfig(dir)
		clk := newClock()
		cfg.Coalesce, cfg.Now, cfg.MaxAge = on, clk.Now, 5e9
		w := openTest(t, cfg)
		m := newModel()
		rewrite(t, w, m, 3, 1)
		clk.Advance(6e9)
		if err := w.SealIfOlder(clk.Now()); err != nil {
			t.Fatal(err)
		}
		rewrite(t, w, m, 3, 2)
		w.Close()
		vol, _, payload := replaySealed(t, dir)
		if !bytes.Equal(vol, m.vol) {
			t.Fatalf("coalesce=%v: replay differs", on)
		}
		want := int64(2 * 3 * 4 * 4096)
		if on {
			want = 2 * 4 * 4096
		}
		if payload != want {
			t.Fatalf("coalesce=%v: %d payload bytes, want %d", on, payload, want)
		}
	}
}

// crashAt leaves the folder as a coalesced seal of file 1 would if the
// process died after step (1: compacted temp file written, 2: next open file
// created, 3: renamed, 4: open file removed). 0 = before sealing.
func crashAt(t *testing.T, dir string, step int) *model {
	t.Helper()
	w := openTest(t, coalesceConfig(dir))
	m := newModel()
	rewrite(t, w, m, 4, 7)
	if _, err := w.Zero(0, 1024, true); err != nil {
		t.Fatal(err)
	}
	m.apply(Record{Kind: KindTrim, Offset: 0, Length: 1024}, nil)
	if _, err := w.Marker(Record{Kind: KindCustom, Label: "c", Args: []KV{{"k", "v"}}}); err != nil {
		t.Fatal(err)
	}
	rewrite(t, w, m, 3, 8) // file 2 holds the marker and these
	o := w.cur
	var next *openFile
	if step >= 1 {
		c, err := o.writeCompacted()
		if err != nil {
			t.Fatal(err)
		}
		if step >= 2 {
			next, err = createOpen(dir, Header{Volume: "vol1", VolumeSize: coalesceVol, FileSeq: 3, BaseSeq: c.sf.LastSeq + 1})
			if err != nil {
				t.Fatal(err)
			}
		}
		if step >= 3 {
			if err := os.Rename(compactPath(dir, 2), filepath.Join(dir, FileName(2))); err != nil {
				t.Fatal(err)
			}
		}
		if step >= 4 {
			if err := os.Remove(openPath(dir, 2)); err != nil {
				t.Fatal(err)
			}
		}
	}
	o.close() // the crash
	if next != nil {
		next.close()
	}
	return m
}

func TestRecoverCoalescedSeal(t *testing.T) {
	for step := 0; step <= 4; step++ {
		for _, coalesce := range []bool{true, false} {
			dir := shmTempDir(t)
			m := crashAt(t, dir, step)
			// The image before the crashed file: the files sealed before it.
			base := newModel()
			if step < 3 {
				brecs, bdatas, _ := readAll(t, dir, "vol1")
				for i, r := range brecs {
					base.apply(r, bdatas[i])
				}
			}
			cfg := coalesceConfig(dir)
			cfg.Coalesce = coalesce
			w, recs, err := OpenWriter(cfg)
			if err != nil {
				t.Fatalf("step %d coalesce=%v: %v", step, coalesce, err)
			}
			if want := step < 3; (len(recs) > 0) != want {
				t.Fatalf("step %d coalesce=%v: %d records recovered", step, coalesce, len(recs))
			}
			// Redo the recovered records onto the state before file 2: the
			// image must come out as the model (the journal is its WAL).
			for _, r := range recs {
				var data []byte
				if r.Kind == KindWrite {
					if data, err = w.RecoveredData(r); err != nil {
						t.Fatal(err)
					}
				}
				base.apply(r, data)
			}
			if step < 3 && !bytes.Equal(base.vol, m.vol) {
				t.Fatalf("step %d coalesce=%v: redoing the recovered records does not give the volume", step, coalesce)
			}
			// One more write after recovery must continue the sequence.
			d := bytes.Repeat([]byte{9}, 100)
			if _, err := w.Write(500, d); err != nil {
				t.Fatal(err)
			}
			m.apply(Record{Kind: KindWrite, Offset: 500, Length: 100}, d)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			vol, _, payload := replaySealed(t, dir)
			if !bytes.Equal(vol, m.vol) {
				t.Fatalf("step %d coalesce=%v: replay differs from the volume", step, coalesce)
			}
			if coalesce && payload > 4*4096+4*4096+100 {
				t.Fatalf("step %d: %d payload bytes: recovery did not coalesce", step, payload)
			}
			leftovers, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
			if len(leftovers) > 0 {
				t.Fatalf("step %d: leftovers %v", step, leftovers)
			}
		}
	}
}

// A sealed file beside an open file of the same seq wins only when valid:
// else recovery stops and removes nothing.
func TestRecoverCoalescedSealedCorrupt(t *testing.T) {
	dir := shmTempDir(t)
	crashAt(t, dir, 3)
	p := filepath.Join(dir, FileName(2))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[HeaderSize+10] ^= 1
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = OpenWriter(coalesceConfig(dir))
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(openPath(dir, 2)); err != nil {
		t.Fatalf("open file removed: %v", err)
	}
}

// A file whose coalesced form would exceed the record limit (each zero
// splits a write in two) is sealed as it is, at sealing and at recovery:
// nothing is dropped, the writer keeps working.
func TestCoalesceAboveRecordLimit(t *testing.T) {
	const n = 50 // 2n records in, 3n out
	defer func(l int) { coalesceRecordLimit = l }(coalesceRecordLimit)
	coalesceRecordLimit = 2*n + 10
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			dir := shmTempDir(t)
			cfg := coalesceConfig(dir)
			w := openTest(t, cfg)
			vol := make([]byte, coalesceVol)
			for i := int64(0); i < n; i++ {
				d := []byte{byte(i), byte(i >> 8), 0xff}
				if _, err := w.Write(4*i, d); err != nil {
					t.Fatal(err)
				}
				copy(vol[4*i:], d)
			}
			for i := int64(0); i < n; i++ {
				if _, err := w.Zero(4*i+1, 1, false); err != nil {
					t.Fatal(err)
				}
				vol[4*i+1] = 0
			}
			if crash {
				w.cur.close() // the crash: no seal, no Close
				var recs []Record
				var err error
				if w, recs, err = OpenWriter(cfg); err != nil {
					t.Fatal(err)
				}
				if len(recs) != 2*n {
					t.Fatalf("recovered %d records, want %d", len(recs), 2*n)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			recs, datas, _ := readAll(t, dir, "vol1")
			if len(recs) != 2*n {
				t.Fatalf("%d records sealed, want the %d appended", len(recs), 2*n)
			}
			got := make([]byte, coalesceVol)
			for i, r := range recs {
				if r.Kind == KindWrite {
					copy(got[r.Offset:], datas[i])
				} else {
					clear(got[r.Offset : r.Offset+r.Length])
				}
			}
			if !bytes.Equal(got, vol) {
				t.Fatal("replay differs from the writes")
			}
		})
	}
}

// When the compacted file cannot be written (here its temporary name is
// taken by a folder; in life, a full disk), the file is sealed as it is and
// the writer goes on: nothing is dropped, nothing lost.
func TestCoalesceWriteFailureSealsInPlace(t *testing.T) {
	dir := shmTempDir(t)
	w := openTest(t, coalesceConfig(dir))
	m := newModel()
	rewrite(t, w, m, 5, 3) // 20 writes over 4 blocks
	if err := os.Mkdir(compactPath(dir, 1), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := w.Seal(); err != nil {
		t.Fatalf("seal with the compacted file unwritable: %v", err)
	}
	rewrite(t, w, m, 2, 4) // the writer still works, and coalesces again
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	vol, recs, _ := replaySealed(t, dir)
	if !bytes.Equal(vol, m.vol) {
		t.Fatal("replay differs from the writes")
	}
	if len(recs) != 20+4 {
		t.Fatalf("%d records sealed, want 20 (file 1 as it is) + 4 (file 2 coalesced)", len(recs))
	}
}
