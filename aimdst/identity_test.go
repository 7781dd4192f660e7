package aimdst

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/internal/testkit/journaltest"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// srcJournal is a source's journal in a test: a journal.Writer and the
// image its records make.
type srcJournal struct {
	t   *testing.T
	w   *journal.Writer
	dir string
	img []byte
	rng *rand.Rand
}

const idVolSize = 64 << 10

func newSrcJournal(t *testing.T, dir string, stream journal.StreamID, seed uint64) *srcJournal {
	t.Helper()
	w, _, err := journal.OpenWriter(journal.WriterConfig{Dir: dir, Volume: "vol", VolumeSize: idVolSize,
		MaxFileSize: 8 << 10, MaxAge: 1 << 62, Logger: discardLog(), Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	return &srcJournal{t: t, w: w, dir: dir, img: make([]byte, idVolSize), rng: rand.New(rand.NewPCG(seed, 7))}
}

// writes appends n random writes and seals the file.
func (j *srcJournal) writes(n int) {
	j.t.Helper()
	for range n {
		off := j.rng.Int64N(idVolSize - 4096)
		data := make([]byte, 1+j.rng.IntN(4096))
		for i := range data {
			data[i] = byte(j.rng.IntN(255) + 1)
		}
		if _, err := j.w.Write(off, data); err != nil {
			j.t.Fatal(err)
		}
		copy(j.img[off:], data)
	}
	if err := j.w.Seal(); err != nil {
		j.t.Fatal(err)
	}
}

// initialize starts a new stream and journals the whole image, as a full
// initialize does (zero blocks as zero records).
func (j *srcJournal) initialize(id journal.StreamID, img []byte) {
	j.t.Helper()
	if err := j.w.StartStream(id, journal.StartFull); err != nil {
		j.t.Fatal(err)
	}
	copy(j.img, img)
	for off := 0; off < len(img); off += 4096 {
		b := img[off : off+4096]
		var err error
		if bytes.Equal(b, make([]byte, 4096)) {
			_, err = j.w.Zero(int64(off), 4096, false)
		} else {
			_, err = j.w.Write(int64(off), b)
		}
		if err != nil {
			j.t.Fatal(err)
		}
	}
	if err := j.w.Seal(); err != nil {
		j.t.Fatal(err)
	}
}

// file returns the path of sealed file seq.
func (j *srcJournal) file(seq uint64) string { return filepath.Join(j.dir, journal.FileName(seq)) }

// files returns the sealed files from..to.
func (j *srcJournal) files(from, to uint64) []string {
	var out []string
	for s := from; s <= to; s++ {
		out = append(out, j.file(s))
	}
	return out
}

func (j *srcJournal) last() uint64 {
	seqs, err := journal.ListSealed(j.dir)
	if err != nil || len(seqs) == 0 {
		j.t.Fatalf("no sealed files: %v", err)
	}
	return seqs[len(seqs)-1]
}

func (j *srcJournal) close() {
	if err := j.w.Close(); err != nil {
		j.t.Fatal(err)
	}
}

var (
	streamA = journal.StreamID{0xa}
	streamB = journal.StreamID{0xb}
	streamC = journal.StreamID{0xc}
)

// deliverBytes hands b as file seq of vol to n, as the push server would.
func deliverBytes(t *testing.T, n *Node, seq uint64, b []byte) error {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, journal.FileName(seq))
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return deliver(t, n, "vol", p, 1<<30)
}

// volumeIs fails unless the destination volume holds want.
func volumeIs(t *testing.T, tn *testNode, want []byte, what string) {
	t.Helper()
	got := testkit.ReadFile(t, tn.volPath)
	if len(got) < len(want) {
		got = append(got, make([]byte, len(want)-len(got))...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %s", what, testkit.FirstDiff(want, got))
	}
}

// refusedCount is aimwan_dst_refused_files_total for reason.
func refusedCount(n *Node, reason string) float64 {
	return testutil.ToFloat64(n.metrics.refused.WithLabelValues("vol", reason))
}

// TestOtherStreamRefused: a volume bound to stream A refuses the files of a
// source whose buffer was lost (a new stream B numbered from 1 again), with
// an error that says what to do; nothing is stored or applied, and A's own
// resends are still duplicates.
func TestOtherStreamRefused(t *testing.T) {
	tn := newTestNode(t, nil)
	a := newSrcJournal(t, filepath.Join(t.TempDir(), "a"), streamA, 1)
	a.writes(20)
	a.close()
	deliverAll(t, tn.n, "vol", a.files(1, a.last()))
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	volumeIs(t, tn, a.img, "after stream A")

	b := newSrcJournal(t, filepath.Join(t.TempDir(), "b"), streamB, 2) // the wiped source
	b.writes(10)
	for seq := uint64(1); seq <= b.last(); seq++ {
		err := deliver(t, tn.n, "vol", b.file(seq), 1<<30)
		if !errors.Is(err, push.ErrConflict) {
			t.Fatalf("file %d of another stream: %v, want a conflict", seq, err)
		}
		for _, want := range []string{"stream " + streamB.String(), "replicates stream " + streamA.String(), "aimwan src init --volume vol", "--delta"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("refusal %q does not say %q", err, want)
			}
		}
	}
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	volumeIs(t, tn, a.img, "after stream B's files were refused")
	st := tn.n.Status().Volumes[0]
	if st.Stream != streamA.String() || len(st.Refused) == 0 || st.Refused[0].Reason != reasonStream || st.LastError == "" ||
		st.FilesWaiting != 0 || st.BufferBytes != 0 {
		t.Fatalf("status after the refusals: %+v", st)
	}
	if got := refusedCount(tn.n, reasonStream); got != float64(b.last()) {
		t.Fatalf("refused files metric %v, want %d", got, b.last())
	}
	// A genuine resend of A's files: duplicates (number and SHA-256 match).
	for _, p := range a.files(1, a.last()) {
		if err := deliver(t, tn.n, "vol", p, 1<<30); err != nil {
			t.Fatalf("resend of %s: %v", filepath.Base(p), err)
		}
	}
}

// TestRestoredSourceRefused: a source whose buffer was restored from an
// older copy (same stream, numbering back at file 2) offers file numbers that
// were destaged with other contents: refused, never acked as duplicates.
func TestRestoredSourceRefused(t *testing.T) {
	tn := newTestNode(t, nil)
	dir := filepath.Join(t.TempDir(), "a")
	a := newSrcJournal(t, dir, streamA, 1)
	a.writes(3)
	a.close()
	backup := filepath.Join(t.TempDir(), "backup")
	copyDir(t, dir, backup)
	img := a.img
	a = newSrcJournal(t, dir, streamA, 3)
	a.img = bytes.Clone(img)
	a.writes(20)
	a.close()
	deliverAll(t, tn.n, "vol", a.files(1, a.last()))
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	restored := newSrcJournal(t, backup, journal.StreamID{}, 99)
	if restored.w.Stream() != streamA {
		t.Fatal("the restored copy lost its stream")
	}
	restored.writes(20)
	restored.close()
	refused := 0
	for seq := uint64(2); seq <= min(restored.last(), a.last()); seq++ {
		err := deliver(t, tn.n, "vol", restored.file(seq), 1<<30)
		if !errors.Is(err, push.ErrConflict) || !strings.Contains(err.Error(), "other contents") {
			t.Fatalf("restored file %d: %v, want a conflict about other contents", seq, err)
		}
		refused++
	}
	if refused == 0 || refusedCount(tn.n, reasonMismatch) != float64(refused) {
		t.Fatalf("%d refused, metric %v", refused, refusedCount(tn.n, reasonMismatch))
	}
	volumeIs(t, tn, a.img, "after the restored files were refused")
}

// copyDir copies the regular files of src into a new folder dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.WriteFile(filepath.Join(dst, e.Name()), testkit.ReadFile(t, filepath.Join(src, e.Name())), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCursorJumpRefused: a well-formed file of the right stream whose
// records are numbered 10⁹ is refused when the file before it is known, and
// quarantined by destage when it arrived early; genuine files go on and the
// volume ends up exactly as the source's.
func TestCursorJumpRefused(t *testing.T) {
	tn := newTestNode(t, nil)
	a := newSrcJournal(t, filepath.Join(t.TempDir(), "a"), streamA, 5)
	for range 6 {
		a.writes(3)
	}
	a.close()
	deliverAll(t, tn.n, "vol", a.files(1, 2))
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	before := testkit.ReadFile(t, tn.volPath)

	// File 3 next in line, numbered 10⁹: refused, not stored.
	jump := journaltest.Renumber(t, testkit.ReadFile(t, a.file(3)), 0, 1_000_000_000)
	if err := deliverBytes(t, tn.n, 3, jump); !errors.Is(err, push.ErrConflict) || !strings.Contains(err.Error(), "do not follow") {
		t.Fatalf("cursor jump on the next file: %v, want a conflict", err)
	}
	// File 5 ahead of a gap, numbered 10⁹: stored (nothing to compare it
	// with yet), then quarantined by destage once file 4 is applied.
	early := journaltest.Renumber(t, testkit.ReadFile(t, a.file(5)), 0, 1_000_000_000)
	if err := deliverBytes(t, tn.n, 5, early); err != nil {
		t.Fatalf("early file: %v", err)
	}
	if err := deliver(t, tn.n, "vol", a.file(5), 1<<30); !errors.Is(err, push.ErrConflict) {
		t.Fatalf("genuine file 5 while a forged one is held: %v, want a conflict", err)
	}
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	if got := testkit.ReadFile(t, tn.volPath); !bytes.Equal(got, before) {
		t.Fatalf("volume changed by refused files: %s", testkit.FirstDiff(before, got))
	}
	deliverAll(t, tn.n, "vol", a.files(3, 4))
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	tn.n.vols["vol"].idle() // the serve loop's step when nothing is ready
	st := tn.n.Status().Volumes[0]
	if len(st.Quarantined) != 1 || st.Quarantined[0].File != 5 || st.Quarantined[0].Reason != reasonSequence ||
		!strings.Contains(st.State, "quarantined") || st.DestagedFile != 4 {
		t.Fatalf("status after the early forged file reached destage: %+v", st)
	}
	if _, err := os.Stat(st.Quarantined[0].Path); err != nil {
		t.Fatalf("quarantined file not kept: %v", err)
	}
	deliverAll(t, tn.n, "vol", a.files(5, a.last()))
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	volumeIs(t, tn, a.img, "after the genuine files")
	if st := tn.n.Status().Volumes[0]; st.DestagedFile != a.last() {
		t.Fatalf("destaged up to %d, want %d", st.DestagedFile, a.last())
	}
}

// TestRebindOnInitialize: a source whose buffer was lost starts over with a
// new stream (refused); an initialize starts another stream with a file
// that says so: the destination copies the volume aside, rebinds, keeps the
// old binding in status, applies the new stream, and refuses the old
// streams from then on.
func TestRebindOnInitialize(t *testing.T) {
	tn := newTestNode(t, nil)
	a := newSrcJournal(t, filepath.Join(t.TempDir(), "a"), streamA, 1)
	a.writes(20)
	a.close()
	deliverAll(t, tn.n, "vol", a.files(1, a.last()))
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	oldImage := testkit.ReadFile(t, tn.volPath)

	b := newSrcJournal(t, filepath.Join(t.TempDir(), "b"), streamB, 2)
	b.img = bytes.Clone(a.img[:idVolSize/2]) // the new host's image differs
	b.img = append(b.img, make([]byte, idVolSize/2)...)
	b.writes(5)
	refusedUpTo := b.last()
	if err := deliver(t, tn.n, "vol", b.file(1), 1<<30); !errors.Is(err, push.ErrConflict) {
		t.Fatalf("new stream without an initialize: %v", err)
	}
	b.initialize(streamC, b.img)
	b.writes(5)
	b.close()
	first := refusedUpTo + 1
	if h, err := journal.ReadHeader(b.file(first)); err != nil || h.Start != journal.StartFull || h.Stream != streamC {
		t.Fatalf("file %d header %+v, %v: not the start of stream C", first, h, err)
	}
	deliverAll(t, tn.n, "vol", b.files(first, b.last()))
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	volumeIs(t, tn, b.img, "after the initialize")
	st := tn.n.Status().Volumes[0]
	if st.Stream != streamC.String() || st.Previous == nil || st.Previous.Stream != streamA.String() ||
		st.Previous.File != a.last() || st.Previous.NewFile != first || st.Previous.Snapshot == "" {
		t.Fatalf("binding after the initialize: %+v (previous %+v)", st, st.Previous)
	}
	if got := testkit.ReadFile(t, st.Previous.Snapshot); !bytes.Equal(got, oldImage) {
		t.Fatalf("copy taken before the new stream: %s", testkit.FirstDiff(oldImage, got))
	}
	if got := testutil.ToFloat64(tn.n.metrics.rebinds.WithLabelValues("vol")); got != 1 {
		t.Fatalf("rebinds metric %v", got)
	}
	// The old streams are refused now, even file numbers never used by C.
	a2 := newSrcJournal(t, filepath.Join(t.TempDir(), "a2"), streamA, 9)
	for range 8 {
		a2.writes(4)
	}
	a2.close()
	if err := deliver(t, tn.n, "vol", a2.file(a2.last()), 1<<30); !errors.Is(err, push.ErrConflict) {
		t.Fatalf("old stream after the rebind: %v", err)
	}
	// Restart: the binding and the digests survive.
	tn.restart(t)
	if st := tn.n.Status().Volumes[0]; st.Stream != streamC.String() || st.Previous == nil {
		t.Fatalf("binding after a restart: %+v", st)
	}
	if err := deliver(t, tn.n, "vol", b.file(b.last()), 1<<30); err != nil {
		t.Fatalf("resend of a destaged file of the new stream after a restart: %v", err)
	}
}

// TestRebindWaitsForHeldFiles: the first file of a new stream is not taken
// while destage can still apply held files of the current one: the source
// is told to retry; once they are applied, the rebind goes through.
func TestRebindWaitsForHeldFiles(t *testing.T) {
	tn := newTestNode(t, nil)
	a := newSrcJournal(t, filepath.Join(t.TempDir(), "a"), streamA, 1)
	a.writes(10)
	done := a.last()
	deliverAll(t, tn.n, "vol", a.files(1, done))
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	a.writes(10)
	held := a.last()
	deliverAll(t, tn.n, "vol", a.files(done+1, held)) // held, not destaged yet
	a.initialize(streamB, a.img)
	a.close()
	if err := deliver(t, tn.n, "vol", a.file(held+1), 1<<30); !errors.Is(err, push.ErrUnavailable) {
		t.Fatalf("start file while files %d..%d wait for destage: %v, want unavailable", done+1, held, err)
	}
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	deliverAll(t, tn.n, "vol", a.files(held+1, a.last()))
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	volumeIs(t, tn, a.img, "after the rebind")
	st := tn.n.Status().Volumes[0]
	if st.Stream != streamB.String() || len(st.Quarantined) != 0 || st.Previous == nil || st.Previous.File != held {
		t.Fatalf("after the rebind: %+v", st)
	}
}

// restart stops using the node and opens a new one on the same folders.
func (tn *testNode) restart(t *testing.T) {
	t.Helper()
	n, err := NewNode(tn.cfg)
	if err != nil {
		t.Fatal(err)
	}
	tn.n = n
}
