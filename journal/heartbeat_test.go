package journal

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWriterHeartbeat: a heartbeat seals a file holding only a watermark
// whose time is the Writer's clock at the call, in sequence with the other
// records; it does nothing while the open file holds records; LastAppend
// follows every append; the heartbeat file parses and is small.
func TestWriterHeartbeat(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	cfg := testConfig(dir, clk)
	var sealed []SealedFile
	cfg.OnSeal = func(s SealedFile) { sealed = append(sealed, s) }
	w := openTest(t, cfg)
	defer w.Close()
	if !w.LastAppend().IsZero() {
		t.Fatalf("LastAppend before any append: %v", w.LastAppend())
	}
	apply(t, w, writeOp(0, 10))
	if ok, err := w.Heartbeat(); ok || err != nil {
		t.Fatalf("heartbeat with records in the open file: %v, %v", ok, err)
	}
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Second)
	hbTime := clk.Now()
	if ok, err := w.Heartbeat(); !ok || err != nil {
		t.Fatalf("heartbeat on an empty open file: %v, %v", ok, err)
	}
	if !w.LastAppend().Equal(hbTime) {
		t.Errorf("LastAppend %v, want the heartbeat's %v", w.LastAppend(), hbTime)
	}
	if len(sealed) != 2 || sealed[1].Records != 1 || sealed[1].PayloadBytes != 0 || !sealed[1].FirstTime.Equal(hbTime) {
		t.Fatalf("sealed %+v", sealed)
	}
	clk.Advance(time.Second)
	apply(t, w, writeOp(4096, 10))
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	recs, _, files := readAll(t, dir, "vol1")
	if len(files) != 3 || len(recs) != 3 {
		t.Fatalf("%d records in %d files", len(recs), len(files))
	}
	hb := files[1]
	if len(hb.Records) != 1 || hb.Records[0].Kind != KindWatermark || !hb.Records[0].Time.Equal(hbTime) || hb.Records[0].Seq != 2 {
		t.Fatalf("heartbeat file records %+v", hb.Records)
	}
	if recs[2].Seq != 3 {
		t.Errorf("record after the heartbeat has seq %d, want 3", recs[2].Seq)
	}
	st, err := os.Stat(filepath.Join(dir, FileName(2)))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(HeaderSize + RecordFixed + FooterSize); st.Size() != want {
		t.Errorf("heartbeat file of %d bytes, want %d", st.Size(), want)
	}
}

// TestHeartbeatCoalesced: with coalescing on, a heartbeat file keeps its
// watermark (it is a barrier, never merged into a range).
func TestHeartbeatCoalesced(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	cfg := testConfig(dir, clk)
	cfg.Coalesce = true
	w := openTest(t, cfg)
	apply(t, w, writeOp(0, 10))
	apply(t, w, writeOp(0, 10))
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	if ok, err := w.Heartbeat(); !ok || err != nil {
		t.Fatalf("heartbeat: %v, %v", ok, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, _, files := readAll(t, dir, "vol1")
	if len(files) != 2 || len(files[1].Records) != 1 || files[1].Records[0].Kind != KindWatermark {
		t.Fatalf("files %d, last %+v", len(files), files[len(files)-1].Records)
	}
}

// TestCoalesceKeepsWatermark: Coalesce treats a watermark as a barrier.
func TestCoalesceKeepsWatermark(t *testing.T) {
	t0 := time.Unix(100, 0)
	recs := []Record{
		{Kind: KindWrite, Seq: 1, Time: t0, Offset: 0, Length: 4},
		{Kind: KindWatermark, Seq: 2, Time: t0.Add(time.Second)},
		{Kind: KindWrite, Seq: 3, Time: t0.Add(2 * time.Second), Offset: 0, Length: 4},
	}
	out := Coalesce(recs, 0)
	if len(out) != 3 || out[1].Record.Kind != KindWatermark || !out[1].Record.Time.Equal(t0.Add(time.Second)) {
		t.Fatalf("coalesced %+v", out)
	}
}
