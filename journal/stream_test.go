package journal

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// headers returns the headers of the sealed files in dir, in file order.
func headers(t *testing.T, dir string) []Header {
	t.Helper()
	seqs, err := ListSealed(dir)
	if err != nil {
		t.Fatal(err)
	}
	var hs []Header
	for _, seq := range seqs {
		h, err := ReadHeader(filepath.Join(dir, FileName(seq)))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	return hs
}

// TestStreamKeptAcrossRestarts: a new folder gets a random stream id (or
// WriterConfig.Stream), every file carries it, and a reopened Writer
// continues it whatever its config says; only StartStream changes it.
func TestStreamKeptAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	cfg := WriterConfig{Dir: dir, Volume: "v", VolumeSize: 1 << 20}
	w := openTest(t, cfg)
	first := w.Stream()
	if first.IsZero() {
		t.Fatal("a new folder got no stream id")
	}
	w.Write(0, []byte("a"))
	w.Close()

	cfg.Stream = NewStreamID() // ignored: the folder has a stream
	w = openTest(t, cfg)
	if w.Stream() != first {
		t.Fatalf("reopened writer on stream %s, the folder's is %s", w.Stream(), first)
	}
	w.Write(0, []byte("b"))
	second := NewStreamID()
	if err := w.StartStream(second, StartFull); err != nil {
		t.Fatal(err)
	}
	if err := w.StartStream(second, StartFull); err != nil { // a resumed initialize: no-op
		t.Fatal(err)
	}
	w.Write(0, []byte("c"))
	w.Seal()
	w.Write(0, []byte("d"))
	w.Close()
	w = openTest(t, cfg)
	if w.Stream() != second {
		t.Fatalf("reopened writer on stream %s, want the started %s", w.Stream(), second)
	}
	w.Close()

	hs := headers(t, dir)
	want := []struct {
		stream StreamID
		start  StartKind
	}{{first, StartNone}, {first, StartNone}, {second, StartFull}, {second, StartNone}}
	if len(hs) != len(want) {
		t.Fatalf("%d files, want %d", len(hs), len(want))
	}
	for i, h := range hs {
		if h.Stream != want[i].stream || h.Start != want[i].start || h.Version != Version {
			t.Errorf("file %d: stream %s start %d version %d, want %s %d", h.FileSeq, h.Stream, h.Start, h.Version, want[i].stream, want[i].start)
		}
	}
	// Sequences go on across the change of stream.
	recs, _, _ := readAll(t, dir, "v")
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
	}
}

// TestStartStreamSurvivesCrash: a stream started on an empty open file is
// durable at once; a Writer reopened before any record was appended still
// starts the stream with its next file.
func TestStartStreamSurvivesCrash(t *testing.T) {
	dir := t.TempDir()
	cfg := WriterConfig{Dir: dir, Volume: "v", VolumeSize: 1 << 20}
	w := openTest(t, cfg)
	w.Write(0, []byte("a"))
	id := NewStreamID()
	if err := w.StartStream(id, StartDelta); err != nil {
		t.Fatal(err)
	}
	// No Close: the process dies here.
	w2, recs, err := OpenWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 0 || w2.Stream() != id {
		t.Fatalf("recovered %d records on stream %s, want 0 on %s", len(recs), w2.Stream(), id)
	}
	w2.Write(0, []byte("b"))
	w2.Close()
	hs := headers(t, dir)
	if len(hs) != 2 || hs[1].Stream != id || hs[1].Start != StartDelta || hs[0].Start != StartNone {
		t.Fatalf("headers after the crash: %+v", hs)
	}
}

// TestStartStreamRefusesBadArguments: no zero id, no StartNone.
func TestStartStreamRefusesBadArguments(t *testing.T) {
	w := openTest(t, WriterConfig{Dir: t.TempDir(), Volume: "v", VolumeSize: 1 << 20})
	defer w.Close()
	if err := w.StartStream(StreamID{}, StartFull); err == nil {
		t.Error("zero stream id accepted")
	}
	if err := w.StartStream(NewStreamID(), StartNone); err == nil {
		t.Error("StartNone accepted")
	}
}

// TestVersion1FolderUpgraded: a folder an older build left (a sealed
// version 1 file and a version 1 open file holding records) is recovered:
// the open file is sealed as version 1, and the Writer goes on with version
// 2 files of a new stream that continue the sequences.
func TestVersion1FolderUpgraded(t *testing.T) {
	dir := t.TempDir()
	h, recs, payload := sampleFile()
	h.Version, h.Stream, h.FileSeq, h.BaseSeq = 1, StreamID{}, 1, 1
	for i := range recs {
		recs[i].Seq = uint64(i + 1)
		recs[i].Members = nil
	}
	if err := os.WriteFile(filepath.Join(dir, FileName(1)), encodeRaw(h, recs, payload), 0o600); err != nil {
		t.Fatal(err)
	}
	h2 := h
	h2.FileSeq, h2.BaseSeq = 2, uint64(len(recs)+1)
	side := le.AppendUint64(append([]byte(nil), sidecarMagic[:]...), 2)
	r := Record{Kind: KindWrite, Seq: h2.BaseSeq, Time: time.Unix(1, 0).UTC(), Offset: 0, Length: 3, CRC: Checksum([]byte("xyz"))}
	side = appendFrame(side, appendRecord(nil, &r, 1))
	os.WriteFile(openPath(dir, 2), append(encodeHeader(h2), "xyz"...), 0o600)
	os.WriteFile(sidecarPath(dir, 2), side, 0o600)

	w, got, err := OpenWriter(WriterConfig{Dir: dir, Volume: h.Volume, VolumeSize: h.VolumeSize})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Seq != h2.BaseSeq {
		t.Fatalf("recovered %+v", got)
	}
	if data, err := w.RecoveredData(got[0]); err != nil || string(data) != "xyz" {
		t.Fatalf("recovered data %q, %v", data, err)
	}
	if _, err := w.Write(0, []byte("new")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	hs := headers(t, dir)
	if len(hs) != 3 || hs[0].Version != 1 || hs[1].Version != 1 || hs[2].Version != Version || hs[2].Stream.IsZero() {
		t.Fatalf("headers: %+v", hs)
	}
	all, _, _ := readAll(t, dir, h.Volume)
	for i, r := range all {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d after the upgrade", i, r.Seq)
		}
	}
}

// TestFilesPrivate: the journal folder is 0700 and its files 0600.
func TestFilesPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "v")
	w := openTest(t, WriterConfig{Dir: dir, Volume: "v", VolumeSize: 1 << 20})
	w.Write(0, []byte("a"))
	w.Close()
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("folder mode %v, %v", st.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		info, _ := e.Info()
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", e.Name(), info.Mode().Perm())
		}
	}
}
