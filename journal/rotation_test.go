package journal

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// sealLog collects what OnSeal reports.
type sealLog struct{ files []SealedFile }

func (l *sealLog) onSeal(f SealedFile) { l.files = append(l.files, f) }

// TestDeferSealWaitsForTheOwner: with DeferSeal a file that an append
// filled stays open (its records are not in a sealed file yet) until
// SealIfFull, or until the next append, which seals it first and lands in
// the next file. Without DeferSeal the filling append seals it at once.
func TestDeferSealWaitsForTheOwner(t *testing.T) {
	for _, tt := range []struct {
		name       string
		maxRecords int
		fill       []op // the appends that fill the first file
	}{
		{"size", 0, []op{writeOp(0, 40<<10), writeOp(0, 24<<10)}},
		{"records", 3, []op{zeroOp(0, 10, false), writeOp(0, 10), zeroOp(0, 10, true)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, deferred := range []bool{false, true} {
				dir := t.TempDir()
				var log sealLog
				cfg := testConfig(dir, newClock())
				cfg.MaxRecords, cfg.DeferSeal, cfg.OnSeal = tt.maxRecords, deferred, log.onSeal
				w := openTest(t, cfg)
				for _, o := range tt.fill {
					apply(t, w, o)
				}
				if want := map[bool]int{false: 1, true: 0}[deferred]; len(log.files) != want {
					t.Fatalf("DeferSeal=%v: %d files sealed by the filling append, want %d", deferred, len(log.files), want)
				}
				if !deferred {
					w.Close()
					continue
				}
				if st := w.OpenStats(); st.Seq != 1 || st.Records != len(tt.fill) {
					t.Fatalf("open file before SealIfFull: %+v, want file 1 with %d records", st, len(tt.fill))
				}
				if err := w.SealIfFull(); err != nil || len(log.files) != 1 || log.files[0].Records != len(tt.fill) {
					t.Fatalf("SealIfFull: %v, sealed %+v", err, log.files)
				}
				if err := w.SealIfFull(); err != nil || len(log.files) != 1 {
					t.Fatalf("SealIfFull on a file that is not full: %v, %d seals", err, len(log.files))
				}
				// Filled again, not sealed by the owner: the next append
				// (even one without data) seals it first.
				for _, o := range tt.fill {
					apply(t, w, o)
				}
				apply(t, w, zeroOp(0, 10, false))
				if len(log.files) != 2 || log.files[1].Records != len(tt.fill) {
					t.Fatalf("append after a full file: sealed %+v, want the full file alone", log.files)
				}
				if st := w.OpenStats(); st.Seq != 3 || st.Records != 1 {
					t.Fatalf("open file after that append: %+v, want file 3 with the one record", st)
				}
				w.Close()
			}
		})
	}
}

// TestOnSealReportsTheFile: OnSeal gets the sealed file's sequence, size,
// record count, payload bytes, sequence range and append times, equal to
// what the file holds; OpenStats follows the open file.
func TestOnSealReportsTheFile(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	var log sealLog
	cfg := testConfig(dir, clk)
	cfg.OnSeal, cfg.MaxAge = log.onSeal, time.Hour
	w := openTest(t, cfg)
	if st := w.OpenStats(); st.Seq != 1 || st.Records != 0 || !st.FirstTime.IsZero() {
		t.Fatalf("empty open file: %+v", st)
	}
	start := clk.Now()
	apply(t, w, writeOp(0, 4096))
	clk.Advance(time.Second)
	apply(t, w, zeroOp(8192, 4096, false))
	apply(t, w, markerOp(Record{Kind: KindSnapshot, Label: "s1"}))
	clk.Advance(time.Second)
	apply(t, w, writeOp(4096, 1000))
	if st := w.OpenStats(); st.Records != 4 || st.PayloadBytes != 5096 || !st.FirstTime.Equal(start) {
		t.Fatalf("open file: %+v", st)
	}
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	apply(t, w, writeOp(0, 10)) // file 2, base seq 5
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(log.files) != 2 {
		t.Fatalf("%d files sealed, want 2", len(log.files))
	}
	f := log.files[0]
	st, err := os.Stat(filepath.Join(dir, f.Name))
	if err != nil {
		t.Fatal(err)
	}
	want := SealedFile{Name: FileName(1), Seq: 1, Size: st.Size(), Records: 4, PayloadBytes: 5096, FirstSeq: 1, LastSeq: 4,
		FirstTime: start, LastTime: start.Add(2 * time.Second)}
	if f != want {
		t.Errorf("OnSeal got\n%+v, want\n%+v", f, want)
	}
	if g := log.files[1]; g.Seq != 2 || g.FirstSeq != 5 || g.LastSeq != 5 || g.Records != 1 {
		t.Errorf("second file: %+v", g)
	}
}

// TestOnSealCoalescedAndRecovered: a coalesced file reports its records and
// payload after coalescing and the window's first append as FirstTime
// (its records carry the newest time of what they merged); a file sealed
// by recovery reports the timestamps of its records.
func TestOnSealCoalescedAndRecovered(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	var log sealLog
	cfg := coalesceConfig(dir)
	cfg.Now, cfg.OnSeal, cfg.MaxAge = clk.Now, log.onSeal, time.Hour
	w := openTest(t, cfg)
	start := clk.Now()
	for i := range 3 { // the same 4 KiB three times: one record survives
		clk.Advance(time.Second)
		if _, err := w.Write(0, opData(uint64(i), 4096)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	if len(log.files) != 1 {
		t.Fatalf("%d seals", len(log.files))
	}
	c := log.files[0]
	if c.Records != 1 || c.PayloadBytes != 4096 || c.FirstSeq != 1 || c.LastSeq != 1 ||
		!c.FirstTime.Equal(start.Add(time.Second)) || !c.LastTime.Equal(start.Add(3*time.Second)) {
		t.Errorf("coalesced file: %+v", c)
	}

	// A crash: records appended and synced, never sealed.
	apply(t, w, writeOp(0, 100))
	clk.Advance(time.Second)
	apply(t, w, writeOp(100, 100))
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	w.cur.close() // the process dies: no seal
	log.files = nil
	cfg.Coalesce = false
	w2, recs, err := OpenWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if len(recs) != 2 || len(log.files) != 1 {
		t.Fatalf("recovered %d records into %d files", len(recs), len(log.files))
	}
	r := log.files[0]
	if r.Seq != 2 || r.Records != 2 || r.PayloadBytes != 200 || !r.FirstTime.Equal(recs[0].Time) || !r.LastTime.Equal(recs[1].Time) {
		t.Errorf("recovered file: %+v (records at %v, %v)", r, recs[0].Time, recs[1].Time)
	}
}

// TestOpenStatsCountsUntilReported: a sealed file counts in OpenStats until
// its OnSeal call has returned, so an owner that adds up sealed files in
// OnSeal and adds OpenStats never sees its records vanish in between.
func TestOpenStatsCountsUntilReported(t *testing.T) {
	entered, release := make(chan SealedFile), make(chan struct{})
	cfg := testConfig(t.TempDir(), newClock())
	cfg.MaxAge = time.Hour
	cfg.OnSeal = func(f SealedFile) { entered <- f; <-release }
	w := openTest(t, cfg)
	apply(t, w, writeOp(0, 1000))
	apply(t, w, zeroOp(0, 10, false))
	sealed := make(chan error, 1)
	go func() { sealed <- w.Seal() }()
	f := <-entered // OnSeal is running
	if st := w.OpenStats(); st.Records != 2 || st.PayloadBytes != 1000 || st.FirstTime.IsZero() || st.Seq != 2 {
		t.Errorf("during OnSeal of %s: OpenStats %+v, want the sealed file's 2 records still counted", f.Name, st)
	}
	close(release)
	if err := <-sealed; err != nil {
		t.Fatal(err)
	}
	if st := w.OpenStats(); st.Records != 0 || st.PayloadBytes != 0 || !st.FirstTime.IsZero() {
		t.Errorf("after OnSeal returned: OpenStats %+v, want nothing", st)
	}
	w.Close()
}
