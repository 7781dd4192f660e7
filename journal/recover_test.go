package journal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/aimwan/aimwan/internal/durable"
)

// crashState is an open file and sidecar as left by a crash, with the sizes
// both had after each record.
type crashState struct {
	open, side       []byte
	openEnd, sideEnd []int64 // after k records (index k)
	want             []Record
}

// buildCrashState appends a mix of records without sealing and captures the
// open file and its sidecar.
func buildCrashState(t *testing.T) crashState {
	t.Helper()
	dir := t.TempDir()
	cfg := testConfig(dir, newClock())
	cfg.MaxFileSize = 1 << 20
	w := openTest(t, cfg)
	ops := []op{
		writeOp(0, 700), zeroOp(4096, 8192, false), writeOp(100, 1), markerOp(Record{Kind: KindSnapshot, Label: "s1"}),
		writeOp(5000, 3000), zeroOp(0, 512, true), markerOp(Record{Kind: KindCustom, Label: "c", Args: []KV{{"a", "b"}}, Group: "g", GroupSeq: 4}),
		writeOp(testVolSize-10, 10), writeOp(1<<20, 2048),
	}
	var st crashState
	size := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	st.openEnd = append(st.openEnd, size(openPath(dir, 1)))
	st.sideEnd = append(st.sideEnd, size(sidecarPath(dir, 1)))
	for _, o := range ops {
		st.want = append(st.want, apply(t, w, o))
		st.openEnd = append(st.openEnd, size(openPath(dir, 1)))
		st.sideEnd = append(st.sideEnd, size(sidecarPath(dir, 1)))
	}
	var err error
	if st.open, err = os.ReadFile(openPath(dir, 1)); err != nil {
		t.Fatal(err)
	}
	if st.side, err = os.ReadFile(sidecarPath(dir, 1)); err != nil {
		t.Fatal(err)
	}
	w.cur.close() // the crash: no seal, no Close
	return st
}

// cutPoints returns the interesting lengths: every record boundary, one
// byte either side, and the ends.
func cutPoints(ends []int64, min, full int64) []int64 {
	var cuts []int64
	for _, e := range ends {
		for _, c := range []int64{e - 1, e, e + 1} {
			if c >= min && c <= full && !slices.Contains(cuts, c) {
				cuts = append(cuts, c)
			}
		}
	}
	return cuts
}

// TestRecoverCutPoints simulates a crash that lost the tail of the open
// file and of the sidecar at every interesting pair of cut points. Recovery
// must return exactly the longest prefix of records that are complete in
// both, seal it, and continue the sequences after it.
func TestRecoverCutPoints(t *testing.T) {
	st := buildCrashState(t)
	base := shmTempDir(t)
	openCuts := cutPoints(st.openEnd, HeaderSize, int64(len(st.open)))
	sideCuts := append([]int64{0, 4}, cutPoints(st.sideEnd, 0, int64(len(st.side)))...)
	n := 0
	for _, co := range openCuts {
		for _, cs := range sideCuts {
			k := 0
			for k < len(st.want) && st.openEnd[k+1] <= co && st.sideEnd[k+1] <= cs {
				k++
			}
			n++
			dir := filepath.Join(base, "c", itoa(n))
			checkRecovery(t, dir, st.open[:co], st.side[:cs], st.want[:k])
		}
	}
	t.Logf("%d crash states recovered", n)
}

func itoa(n int) string { return FileName(uint64(n))[:16] }

// checkRecovery writes a crashed open file and sidecar into dir, recovers,
// and checks the prefix property and the continuation of the sequences.
func checkRecovery(t *testing.T, dir string, open, side []byte, want []Record) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(openPath(dir, 1), open, 0o644)
	os.WriteFile(sidecarPath(dir, 1), side, 0o644)
	cfg := testConfig(dir, newClock())
	var sealed []string
	cfg.OnSeal = func(f SealedFile) { sealed = append(sealed, f.Name) }
	w, recs, err := OpenWriter(cfg)
	if err != nil {
		t.Fatalf("open %d/%d bytes: %v", len(open), len(side), err)
	}
	defer w.Close()
	if len(recs) != len(want) {
		t.Fatalf("open %d, sidecar %d bytes: recovered %d records, want %d", len(open), len(side), len(recs), len(want))
	}
	datas := make([][]byte, len(recs))
	for i, r := range recs {
		if r.Kind == KindWrite {
			if datas[i], err = w.RecoveredData(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkRecords(t, recs, datas, want)
	if len(want) > 0 && !slices.Equal(sealed, []string{FileName(1)}) || len(want) == 0 && len(sealed) != 0 {
		t.Fatalf("OnSeal calls %v for %d recovered records", sealed, len(want))
	}
	next := apply(t, w, writeOp(0, 10))
	if next.Seq != uint64(len(want)+1) {
		t.Fatalf("next seq %d after %d recovered", next.Seq, len(want))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, gotData, files := readAll(t, dir, "vol1")
	checkRecords(t, got, gotData, append(slices.Clone(want), next))
	if files[len(files)-1].Header.FileSeq != uint64(len(files)) {
		t.Fatalf("file sequences: last is %d of %d files", files[len(files)-1].Header.FileSeq, len(files))
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "*.open*"))
	if len(leftovers) != 1 {
		t.Fatalf("open files after close: %v", leftovers)
	}
}

// TestRecoverDamage: a damaged sidecar frame or damaged data ends the
// recovered prefix at the record before it.
func TestRecoverDamage(t *testing.T) {
	st := buildCrashState(t)
	base := shmTempDir(t)
	for k := 0; k < len(st.want); k++ {
		side := bytes.Clone(st.side)
		side[st.sideEnd[k]+10] ^= 0xff // inside record k's frame
		checkRecovery(t, filepath.Join(base, "side", itoa(k)), st.open, side, st.want[:k])
		if st.want[k].Kind == KindWrite {
			open := bytes.Clone(st.open)
			open[st.openEnd[k]] ^= 0xff // first data byte of record k
			checkRecovery(t, filepath.Join(base, "data", itoa(k)), open, st.side, st.want[:k])
		}
	}
}

// TestRecoverSealedNotRenamed: a crash after the index and footer were
// written and synced but before the rename keeps every record, with the
// sidecar's tail lost, or the sidecar lost altogether (its folder entry never
// made durable).
func TestRecoverSealedNotRenamed(t *testing.T) {
	for _, withSidecar := range []bool{true, false} {
		t.Run(map[bool]string{true: "sidecar tail lost", false: "sidecar lost"}[withSidecar], func(t *testing.T) {
			st := buildCrashState(t)
			dir := t.TempDir()
			w := openTest(t, testConfig(dir, newClock()))
			for _, r := range st.want {
				o := op{kind: r.Kind, off: r.Offset, length: r.Length, marker: r}
				if r.Kind.IsMarker() {
					o.marker.Seq = 0
				}
				apply(t, w, o)
			}
			if err := w.Seal(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			sealedBytes, err := os.ReadFile(filepath.Join(dir, FileName(1)))
			if err != nil {
				t.Fatal(err)
			}
			// Undo the rename; the sidecar was already removed.
			if err := os.Rename(filepath.Join(dir, FileName(1)), openPath(dir, 1)); err != nil {
				t.Fatal(err)
			}
			if withSidecar {
				os.WriteFile(sidecarPath(dir, 1), st.side[:st.sideEnd[2]], 0o644)
			}
			w, recs, err := OpenWriter(testConfig(dir, newClock()))
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(st.want) || w.NextSeq() != uint64(len(st.want)+1) {
				t.Fatalf("recovered %d records, next seq %d", len(recs), w.NextSeq())
			}
			if again, err := os.ReadFile(filepath.Join(dir, FileName(1))); err != nil || !bytes.Equal(again, sealedBytes) {
				t.Fatalf("recovery changed the sealed file: %v", err)
			}
			apply(t, w, writeOp(0, 1))
			w.Close()
			got, _, files := readAll(t, dir, "vol1")
			if len(got) != len(st.want)+1 || len(files) != 2 {
				t.Fatalf("%d records in %d files", len(got), len(files))
			}
		})
	}
}

func TestRecoverRefusesForeignOpenFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(openPath(dir, 1), []byte("garbage garbage"), 0o644)
	if _, _, err := OpenWriter(testConfig(dir, newClock())); !errors.Is(err, ErrForeign) {
		t.Fatalf("err = %v, want ErrForeign", err)
	}
	dir = t.TempDir()
	w := openTest(t, testConfig(dir, newClock()))
	w.Close()
	cfg := testConfig(dir, newClock())
	cfg.Volume = "vol2"
	if _, _, err := OpenWriter(cfg); !errors.Is(err, ErrWrongVolume) {
		t.Fatalf("err = %v, want ErrWrongVolume", err)
	}
}

func TestRecoverCleansStaleFiles(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, testConfig(dir, newClock()))
	apply(t, w, writeOp(0, 5))
	w.Close()
	os.WriteFile(sidecarPath(dir, 1), []byte("stale"), 0o644)
	os.WriteFile(openPath(dir, 9)+".tmp", []byte("tmp"), 0o644)
	w = openTest(t, testConfig(dir, newClock()))
	w.Close()
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	for i := range names {
		names[i] = filepath.Base(names[i])
	}
	want := []string{FileName(1), FileName(2) + ".idx", FileName(2) + ".open"}
	if !slices.Equal(names, want) {
		t.Fatalf("folder holds %v, want %v", names, want)
	}
}

func TestRecoveredDataErrors(t *testing.T) {
	st := buildCrashState(t)
	dir := t.TempDir()
	os.WriteFile(openPath(dir, 1), st.open, 0o644)
	os.WriteFile(sidecarPath(dir, 1), st.side, 0o644)
	w, recs, err := OpenWriter(testConfig(dir, newClock()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.RecoveredData(recs[1]); !errors.Is(err, ErrInvalidRecord) { // a zero record
		t.Fatalf("zero record: %v", err)
	}
	if _, err := w.RecoveredData(Record{Kind: KindWrite, Seq: 999, Length: 1}); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("unknown seq: %v", err)
	}
	bad := recs[0]
	bad.CRC++
	if _, err := w.RecoveredData(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("wrong CRC: %v", err)
	}
}

// TestOpenWriterMakesNewFoldersDurable: OpenWriter creating the journal
// folder and missing parents fsyncs the parent of each, so the folder (and
// the records synced into it) cannot vanish with a lost folder entry.
func TestOpenWriterMakesNewFoldersDurable(t *testing.T) {
	root := t.TempDir()
	var synced []string
	t.Cleanup(durable.SetSyncHook(func(f *os.File, folder bool) error {
		if folder {
			synced = append(synced, filepath.Clean(f.Name()))
		}
		return f.Sync()
	}))
	dir := filepath.Join(root, "buffer", "vol1")
	w := openTest(t, testConfig(dir, newClock()))
	w.Close()
	for _, parent := range []string{root, filepath.Join(root, "buffer")} {
		if !slices.Contains(synced, parent) {
			t.Errorf("%s not fsynced after a folder was created in it (synced: %v)", parent, synced)
		}
	}
}
