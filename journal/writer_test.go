package journal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const testVolSize = 1 << 24

func testConfig(dir string, clk *fakeClock) WriterConfig {
	return WriterConfig{Dir: dir, Volume: "vol1", VolumeSize: testVolSize, Now: clk.Now, MaxFileSize: 64 << 10}
}

func openTest(t testing.TB, cfg WriterConfig) *Writer {
	t.Helper()
	w, recs, err := OpenWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 0 {
		t.Fatalf("fresh writer recovered %d records", len(recs))
	}
	return w
}

func TestWriterRoundTrip(t *testing.T) {
	snap := Record{Kind: KindSnapshot, Label: "snap-1"}
	custom := Record{Kind: KindCustom, Label: "app", Args: []KV{{"k", "v=1"}, {"empty", ""}}}
	grp := Record{Kind: KindSnapshot, Label: "g-snap", Group: "grp", GroupSeq: 77}
	tests := []struct {
		name      string
		ops       []op
		wantFiles int
	}{
		{"one write", []op{writeOp(0, 4096)}, 1},
		{"writes zeros trims", []op{writeOp(0, 512), zeroOp(4096, 1<<20, false), zeroOp(0, 8192, true), writeOp(testVolSize-1, 1)}, 1},
		{"markers", []op{markerOp(snap), writeOp(100, 100), markerOp(custom), markerOp(grp)}, 1},
		{"markers only", []op{markerOp(snap)}, 1},
		{"size rotation", []op{writeOp(0, 40<<10), writeOp(0, 40<<10), writeOp(0, 64<<10), writeOp(0, 1)}, 4},
		{"big write alone", []op{writeOp(0, 1), writeOp(0, 200<<10), writeOp(0, 1)}, 3},
		{"zeros do not grow files", []op{zeroOp(0, 1<<23, false), zeroOp(0, 1<<23, true), writeOp(0, 10)}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			clk := newClock()
			var sealed []string
			cfg := testConfig(dir, clk)
			cfg.OnSeal = func(f SealedFile) {
				st, err := os.Stat(filepath.Join(dir, f.Name))
				if err != nil || st.Size() != f.Size {
					t.Errorf("OnSeal(%s, %d): stat %v", f.Name, f.Size, err)
				}
				sealed = append(sealed, f.Name)
			}
			w := openTest(t, cfg)
			var want []Record
			for _, o := range tt.ops {
				clk.Advance(time.Millisecond)
				want = append(want, apply(t, w, o))
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, datas, files := readAll(t, dir, "vol1")
			checkRecords(t, got, datas, want)
			if len(files) != tt.wantFiles || len(sealed) != tt.wantFiles {
				t.Fatalf("%d files, %d OnSeal calls, want %d", len(files), len(sealed), tt.wantFiles)
			}
			for i, f := range files {
				if sealed[i] != FileName(f.Header.FileSeq) || f.Header.FileSeq != uint64(i+1) {
					t.Fatalf("file %d is %s (seq %d)", i, sealed[i], f.Header.FileSeq)
				}
			}
			for i, r := range got {
				if !r.Time.Equal(newClock().t.Add(time.Duration(i+1) * time.Millisecond)) {
					t.Fatalf("record %d time %v", i, r.Time)
				}
			}
		})
	}
}

func TestWriterAgeRotation(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	cfg := testConfig(dir, clk)
	cfg.MaxAge = 2 * time.Second
	var sealed int
	cfg.OnSeal = func(SealedFile) { sealed++ }
	w := openTest(t, cfg)
	defer w.Close()
	if err := w.SealIfOlder(clk.Now().Add(time.Hour)); err != nil || sealed != 0 {
		t.Fatalf("empty file sealed: %v, %d", err, sealed)
	}
	apply(t, w, writeOp(0, 10))
	clk.Advance(1999 * time.Millisecond)
	if err := w.SealIfOlder(clk.Now()); err != nil || sealed != 0 {
		t.Fatalf("sealed before MaxAge: %v, %d", err, sealed)
	}
	apply(t, w, writeOp(0, 10))
	clk.Advance(time.Millisecond)
	if err := w.SealIfOlder(clk.Now()); err != nil || sealed != 1 {
		t.Fatalf("not sealed at MaxAge: %v, %d", err, sealed)
	}
	// An append to a file older than MaxAge seals it first.
	apply(t, w, writeOp(0, 10))
	clk.Advance(3 * time.Second)
	apply(t, w, writeOp(0, 10))
	if sealed != 2 {
		t.Fatalf("append after MaxAge: %d seals, want 2", sealed)
	}
	got, _, files := readAll(t, dir, "vol1")
	if len(got) != 3 || len(files) != 2 || len(files[0].Records) != 2 {
		t.Fatalf("%d records in %d files", len(got), len(files))
	}
}

func TestWriterRecordRotation(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir, newClock())
	cfg.MaxRecords = 3
	w := openTest(t, cfg)
	for i := 0; i < 7; i++ {
		apply(t, w, zeroOp(0, 10, false))
	}
	w.Close()
	_, _, files := readAll(t, dir, "vol1")
	if len(files) != 3 || len(files[0].Records) != 3 || len(files[2].Records) != 1 {
		t.Fatalf("got %d files", len(files))
	}
}

func TestWriterRejects(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, testConfig(dir, newClock()))
	bad := []func() (uint64, error){
		func() (uint64, error) { return w.Write(-1, []byte{1}) },
		func() (uint64, error) { return w.Write(testVolSize, []byte{1}) },
		func() (uint64, error) { return w.Write(0, nil) },
		func() (uint64, error) { return w.Zero(testVolSize-1, 2, false) },
		func() (uint64, error) { return w.Zero(0, 0, true) },
		func() (uint64, error) { return w.Marker(Record{Kind: KindWrite, Length: 1}) },
		func() (uint64, error) { return w.Marker(Record{Kind: KindSnapshot, Label: "../x"}) },
		func() (uint64, error) { return w.Marker(Record{Kind: KindSnapshot}) },
		func() (uint64, error) { return w.Marker(Record{Kind: KindCustom, Label: "c", Args: []KV{{"", "v"}}}) },
	}
	for i, f := range bad {
		if _, err := f(); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("case %d: err = %v, want ErrInvalidRecord", i, err)
		}
	}
	if seq, err := w.Write(0, []byte{1}); err != nil || seq != 1 {
		t.Fatalf("rejected records took sequence numbers: seq %d, %v", seq, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(0, []byte{1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if err := w.Sync(); !errors.Is(err, ErrClosed) {
		t.Fatalf("sync after close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestWriterConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, cfg := range []WriterConfig{
		{Volume: "v", VolumeSize: 1},
		{Dir: dir, Volume: "a.b", VolumeSize: 1},
		{Dir: dir, Volume: "", VolumeSize: 1},
		{Dir: dir, Volume: "../x", VolumeSize: 1},
		{Dir: dir, Volume: strings.Repeat("v", 65), VolumeSize: 1},
		{Dir: dir, Volume: "v", VolumeSize: 0},
		{Dir: dir, Volume: "v", VolumeSize: 1, MaxFileSize: -1},
		{Dir: dir, Volume: "v", VolumeSize: 1, MaxRecords: MaxRecords + 1},
		{Dir: dir, Volume: "v", VolumeSize: 1, MaxAge: -time.Second},
	} {
		if _, _, err := OpenWriter(cfg); err == nil {
			t.Fatalf("OpenWriter(%+v) accepted", cfg)
		}
	}
}

// TestWriterContinues: sequences continue across restarts, also when every
// sealed file has been pushed and deleted.
func TestWriterContinues(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	cfg := testConfig(dir, clk)
	for round := 0; round < 3; round++ {
		w := openTest(t, cfg)
		for i := 0; i < 3; i++ {
			apply(t, w, writeOp(0, 100))
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		recs, _, files := readAll(t, dir, "vol1")
		if len(files) != 1 || files[0].Header.FileSeq != uint64(round+1) || recs[0].Seq != uint64(3*round+1) {
			t.Fatalf("round %d: %d files, first seq %d", round, len(files), recs[0].Seq)
		}
		// Ship: delete the sealed files.
		os.Remove(filepath.Join(dir, FileName(files[0].Header.FileSeq)))
	}
	// With sealed files left in the folder and the open file gone, the
	// sealed files carry the sequences.
	w := openTest(t, cfg)
	apply(t, w, writeOp(0, 1))
	w.Close()
	os.Remove(openPath(dir, 5))
	os.Remove(sidecarPath(dir, 5))
	w = openTest(t, cfg)
	if seq := w.NextSeq(); seq != 11 {
		t.Fatalf("next seq %d, want 11", seq)
	}
	w.Close()
}

func TestWriterWrongVolumeFolder(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, testConfig(dir, newClock()))
	apply(t, w, writeOp(0, 1))
	w.Close()
	cfg := testConfig(dir, newClock())
	cfg.Volume = "other"
	if _, _, err := OpenWriter(cfg); !errors.Is(err, ErrWrongVolume) {
		t.Fatalf("err = %v, want ErrWrongVolume", err)
	}
}

func TestWriterConcurrent(t *testing.T) {
	dir := t.TempDir()
	cfg := WriterConfig{Dir: dir, Volume: "vol1", VolumeSize: testVolSize, MaxFileSize: 32 << 10}
	var mu sync.Mutex
	var names []string
	cfg.OnSeal = func(f SealedFile) { mu.Lock(); names = append(names, f.Name); mu.Unlock() }
	w := openTest(t, cfg)
	var wg sync.WaitGroup
	const workers, each = 4, 52
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				var err error
				switch i % 4 {
				case 0, 1:
					_, err = w.Write(int64(g)*4096, make([]byte, 1000+g))
				case 2:
					_, err = w.Zero(0, 4096, g%2 == 0)
				case 3:
					err = w.Sync()
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
			w.SealIfOlder(time.Now())
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	recs, _, files := readAll(t, dir, "vol1")
	if len(recs) != workers*each*3/4 {
		t.Fatalf("%d records, want %d", len(recs), workers*each*3/4)
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
	}
	for i, f := range files {
		if names[i] != FileName(f.Header.FileSeq) {
			t.Fatalf("OnSeal order: %v", names)
		}
	}
}

// TestWriterSyncDuringSeal: Syncs racing with appends and seals never fail.
func TestWriterSyncDuringSeal(t *testing.T) {
	dir := shmTempDir(t)
	cfg := WriterConfig{Dir: dir, Volume: "vol1", VolumeSize: testVolSize, MaxFileSize: 4 << 10}
	w := openTest(t, cfg)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < 300; i++ {
			if _, err := w.Write(0, make([]byte, 1024)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 300; i++ {
			if err := w.Sync(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	seqs, err := ListSealed(dir)
	if err != nil || len(seqs) != 75 || seqs[0] != 1 || seqs[74] != 75 {
		t.Fatalf("ListSealed = %v, %v", seqs, err)
	}
}
