package aimsrc

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// offerLog records the offers a fake destination saw and the headers of the
// files offered, and whether a start file was offered while an older file
// still waited at the source.
type offerLog struct {
	mu     sync.Mutex
	dir    string // the source's journal folder (files are read there while offered)
	seen   []uint64
	starts map[uint64]journal.Header // offered files that start a stream
	early  []string                  // a start file offered while an older file was not acked
}

func (l *offerLog) note(o push.Offer) journal.Header {
	h, _ := journal.ReadHeader(filepath.Join(l.dir, o.Name))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, o.Seq)
	if h.Start != journal.StartNone {
		l.starts[o.Seq] = h
		for _, s := range l.seen {
			if _, err := os.Stat(filepath.Join(l.dir, journal.FileName(s))); s < o.Seq && err == nil {
				l.early = append(l.early, fmt.Sprintf("file %d offered while file %d waits at the source", o.Seq, s))
			}
		}
	}
	return h
}

// TestInitStartsStream: an initialize begins a new journal stream whose
// first file says so; it is pushed only after every file of the old stream
// was acked; zero blocks travel as zero records; a restart continues the
// new stream.
func TestInitStartsStream(t *testing.T) {
	const size = 8 << 20
	dir := t.TempDir()
	vc := VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img")}
	content := randomImage(t, vc.Path, size, 3)
	clear(content[2<<20 : 5<<20])
	os.WriteFile(vc.Path, content, 0o600)
	dst := newFakeDst()
	cfg := testConfig(t, dir, vc)
	log := &offerLog{dir: filepath.Join(cfg.Buffer, "v1"), starts: map[uint64]journal.Header{}}
	dst.fail = func(o push.Offer, _ int) error { log.note(o); return nil }
	cfg.Push = serveFakeDst(t, dst)
	cfg.FileAge = 50 * time.Millisecond
	cfg.FileSize = 256 << 10
	n, stop := runNode(t, cfg)
	writeSome(t, n, "v1", 10, 7)
	first := n.Status().Volumes[0].Stream
	if first == "" {
		t.Fatal("no stream in status")
	}
	if _, err := n.Init("v1", false); err != nil {
		t.Fatal(err)
	}
	writeSome(t, n, "v1", 10, 9) // live writes while it runs
	testkit.WaitFor(t, 30*time.Second, "initialize done and pushed", func() bool {
		st := n.Status().Volumes[0]
		return !st.Init.Running && st.FilesWaiting == 0 && st.SrcDataBytes == 0
	})
	st := n.Status().Volumes[0]
	if st.Stream == first || st.Stream != st.Init.Stream {
		t.Fatalf("stream %s after the initialize (was %s, initialize says %s)", st.Stream, first, st.Init.Stream)
	}
	log.mu.Lock()
	if len(log.starts) != 1 || len(log.early) != 0 {
		t.Fatalf("start files offered: %v; out of order: %v", log.starts, log.early)
	}
	var startSeq uint64
	for s, h := range log.starts {
		if h.Stream.String() != st.Stream || h.Start != journal.StartFull {
			t.Fatalf("start file header %+v", h)
		}
		startSeq = s
	}
	log.mu.Unlock()
	// The new stream alone rebuilds the image: zero blocks came as zero
	// records.
	rp := newReplayer(size)
	zeros := false
	for _, name := range dst.names("v1") {
		seq, _ := journal.ParseFileName(name)
		if seq < startSeq {
			continue
		}
		dst.mu.Lock()
		b := dst.files["v1"][name]
		dst.mu.Unlock()
		f, err := journal.Parse(name, b)
		if err != nil {
			t.Fatal(err)
		}
		if seq == startSeq {
			rp.nextSeq = f.FirstSeq()
		}
		for _, r := range f.Records {
			zeros = zeros || r.Kind == journal.KindZero && r.Length >= 1<<20
		}
		if err := rp.apply(name, b); err != nil {
			t.Fatal(err)
		}
	}
	if img := testkit.ReadFile(t, vc.Path); !bytes.Equal(rp.img, img) || !zeros {
		t.Fatalf("the new stream's files do not rebuild the image (zero records seen: %v): %s", zeros, testkit.FirstDiff(img, rp.img))
	}
	stop()
	n2, _ := runNode(t, cfg)
	if got := n2.Status().Volumes[0].Stream; got != st.Stream {
		t.Fatalf("stream after a restart %s, want %s", got, st.Stream)
	}
}

// TestRefusalShownThenSuperseded: files the far end refuses as of another
// stream stay at the source, with the far end's message as the volume's
// last error and in its refused files; an initialize supersedes them: they
// are dropped once refused again, and the new stream goes through.
func TestRefusalShownThenSuperseded(t *testing.T) {
	const size = 4 << 20
	dir := t.TempDir()
	vc := VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: size}
	dst := newFakeDst()
	cfg := testConfig(t, dir, vc)
	cfg.RetryMax = 100 * time.Millisecond
	log := &offerLog{dir: filepath.Join(cfg.Buffer, "v1"), starts: map[uint64]journal.Header{}}
	var mu sync.Mutex
	var bound string // the stream the fake destination accepts (set by the first start file)
	dst.fail = func(o push.Offer, _ int) error {
		h := log.note(o)
		mu.Lock()
		defer mu.Unlock()
		if h.Start != journal.StartNone {
			bound = h.Stream.String()
		}
		if bound == "" || h.Stream.String() != bound {
			return fmt.Errorf("%w: file %d is from journal stream %s: run aimwan src init --volume v1", push.ErrConflict, o.Seq, h.Stream)
		}
		return nil
	}
	cfg.Push = serveFakeDst(t, dst)
	cfg.FileAge = 50 * time.Millisecond
	n, _ := runNode(t, cfg)
	writeSome(t, n, "v1", 20, 3)
	testkit.WaitFor(t, 10*time.Second, "refusal in status", func() bool {
		st := n.Status().Volumes[0]
		return len(st.RefusedFiles) > 0 && strings.Contains(st.LastPushError, "src init --volume v1")
	})
	// Other files' acks do not clear it; the files stay.
	if st := n.Status().Volumes[0]; st.FilesWaiting == 0 || st.refusals["conflict"] == 0 {
		t.Fatalf("status after refusals: %+v", st)
	}
	if _, err := n.Init("v1", false); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "initialize done and pushed", func() bool {
		st := n.Status().Volumes[0]
		return !st.Init.Running && st.FilesWaiting == 0 && st.SrcDataBytes == 0
	})
	st := n.Status().Volumes[0]
	if st.FilesSuperseded == 0 || len(st.RefusedFiles) != 0 || st.LastPushError != "" {
		t.Fatalf("after the initialize: superseded %d, refused %v, last error %q", st.FilesSuperseded, st.RefusedFiles, st.LastPushError)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.early) != 0 {
		t.Fatalf("start file offered early: %v", log.early)
	}
}

// TestSrcFilesPrivate: the source buffer is 0700; journals, bitmaps,
// checkpoints and a created image are 0600.
func TestSrcFilesPrivate(t *testing.T) {
	dir := t.TempDir()
	vc := VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: 1 << 20}
	cfg := testConfig(t, dir, vc)
	cfg.Groups = []GroupConfig{{Name: "g", Volumes: []string{"v1"}}}
	n, stop := runNode(t, cfg)
	writeSome(t, n, "v1", 2, 1)
	if _, err := n.Marker(MarkerRequest{Group: "g", Kind: MarkerSnapshot, Label: "s"}); err != nil {
		t.Fatal(err)
	}
	stop()
	for _, d := range []string{cfg.Buffer, filepath.Join(cfg.Buffer, "v1")} {
		if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("folder %s: %v, %v; want 0700", d, st.Mode().Perm(), err)
		}
	}
	err := filepath.WalkDir(cfg.Buffer, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if st, err := e.Info(); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, st.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(vc.Path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("created image: %v, %v", st.Mode().Perm(), err)
	}
}

// TestInitRequestHeartbeatLockOrder: a request to initialize and the
// heartbeat check, which runs under the volume's lock and reads the
// initialize's status, never wait for each other. The request used to hold
// the status lock while its checkpoint waited for the volume's lock: once
// in CI, `aimwan src init` and every write to the volume hung for ever.
func TestInitRequestHeartbeatLockOrder(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: 1 << 20})
	cfg.Heartbeat = time.Hour // on: heartbeatDue reads the initialize's status
	n, _ := runNode(t, cfg)
	v := n.vols["v1"]

	v.mu.Lock() // what sealOld holds when it asks heartbeatDue
	res := make(chan error, 1)
	go func() { _, err := n.Init("v1", false); res <- err }()
	testkit.WaitFor(t, 10*time.Second, "the request under way", func() bool {
		if v.initJob.req.TryLock() {
			v.initJob.req.Unlock()
			return false
		}
		return true
	})
	time.Sleep(50 * time.Millisecond) // on to its checkpoint, which waits for the volume's lock
	due := make(chan bool, 1)
	go func() { due <- v.heartbeatDue() }()
	select {
	case <-due:
	case <-time.After(20 * time.Second):
		t.Error("heartbeatDue under the volume's lock waits for a pending initialize request (lock order inversion)")
	}
	v.mu.Unlock()
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "the initialize done", func() bool {
		st := n.Status().Volumes[0].Init
		return !st.Running && st.Finished != nil && st.Error == ""
	})
}
