package aimsrc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// deltaDst is a fake destination seeded with an old copy of the volume: it
// keeps the files it receives and answers checksums of the old copy with
// the received files of the asked stream applied, once that stream's first
// file has arrived (as dst answers once rebound).
type deltaDst struct {
	*fakeDst
	base []byte
}

func (d *deltaDst) image(volume string, stream journal.StreamID) ([]byte, bool) {
	img := bytes.Clone(d.base)
	started := false
	for _, name := range d.names(volume) {
		d.mu.Lock()
		b := d.files[volume][name]
		d.mu.Unlock()
		f, err := journal.Parse(name, b)
		if err != nil || f.Header.Stream != stream {
			continue
		}
		started = started || f.Header.Start == journal.StartDelta
		for _, r := range f.Records {
			switch r.Kind {
			case journal.KindWrite:
				copy(img[r.Offset:], f.Data(r))
			case journal.KindZero, journal.KindTrim:
				clear(img[r.Offset : r.Offset+r.Length])
			}
		}
	}
	return img, started
}

func (d *deltaDst) Sums(ctx context.Context, peer push.Hello, q push.SumRequest) ([][push.SumSize]byte, error) {
	img, started := d.image(q.Volume, q.Stream)
	if !started {
		return nil, fmt.Errorf("%w: not bound to the stream yet", push.ErrUnavailable)
	}
	out := make([][push.SumSize]byte, q.Count)
	for i := range out {
		start := q.Offset + int64(i)*q.Range
		out[i] = sha256.Sum256(img[start:min(start+q.Range, q.End)])
	}
	return out, nil
}

// TestDeltaInit: a delta initialize journals only the 4 KiB blocks that
// differ from the destination's old copy (plus the live writes made during
// it), and the copy with the new stream applied equals the image.
func TestDeltaInit(t *testing.T) {
	const size = 8<<20 + 12<<10 // not a multiple of any range
	dir := t.TempDir()
	vc := VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img")}
	base := randomImage(t, vc.Path, size, 5)
	cur := bytes.Clone(base)
	rng := rand.New(rand.NewPCG(1, 2))
	changed := 0
	for _, b := range rng.Perm(size / 4096)[:size/4096/50] { // 2% of the blocks
		for i := range 100 {
			cur[b*4096+i] = byte(rng.Uint32())
		}
		changed += 4096
	}
	clear(cur[size-8192:]) // a tail of zeros that the old copy has data in
	if err := os.WriteFile(vc.Path, cur, 0o600); err != nil {
		t.Fatal(err)
	}
	dst := &deltaDst{fakeDst: newFakeDst(), base: base}
	cfg := testConfig(t, dir, vc)
	cfg.Push = serveSummer(t, dst)
	cfg.FileAge = 50 * time.Millisecond
	cfg.FileSize = 256 << 10
	n, _ := runNode(t, cfg)
	st, err := n.Init("v1", true)
	if err != nil || !st.Delta {
		t.Fatalf("init: %+v, %v", st, err)
	}
	writeSome(t, n, "v1", 12, 3) // live writes during it
	testkit.WaitFor(t, 30*time.Second, "delta initialize done and pushed", func() bool {
		st := n.Status().Volumes[0]
		return !st.Init.Running && st.FilesWaiting == 0 && st.SrcDataBytes == 0
	})
	in := n.Status().Volumes[0].Init
	if in.Error != "" || in.DoneBytes != size || in.Percent != 100 {
		t.Fatalf("status %+v", in)
	}
	id, _ := journal.ParseStreamID(in.Stream)
	img, _ := dst.image("v1", id)
	if want := testkit.ReadFile(t, vc.Path); !bytes.Equal(img, want) {
		t.Fatalf("destination after the delta initialize: %s", testkit.FirstDiff(want, img))
	}
	if in.Journaled > int64(changed)+12*(64<<10)+8192 || in.SavedBytes < size/2 || in.ChecksumBytes == 0 {
		t.Fatalf("journaled %d for %d changed bytes; saved %d; checksums %d", in.Journaled, changed, in.SavedBytes, in.ChecksumBytes)
	}
	if _, err := os.Stat(filepath.Join(cfg.Buffer, "v1.init")); !os.IsNotExist(err) {
		t.Fatalf("checkpoint left after the initialize: %v", err)
	}
}

// serveSummer serves a push handler that answers checksums.
func serveSummer(t *testing.T, d *deltaDst) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	dstID, srcID, _ := testkit.Identities()
	srv := &push.Server{Node: "fakedst", Handler: d, Logger: testLogger(t),
		Auth: push.Auth{Identity: dstID, Peers: testkit.Pins(srcID)}}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("push server: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestDeltaInitResumes: a delta initialize's checkpoint (OFFSET STREAM
// delta) makes the next start resume it, by checksum comparison, in the
// same stream; a checkpoint that is not at a top-range boundary is refused.
func TestDeltaInitResumes(t *testing.T) {
	const size = 1 << 20
	dir := t.TempDir()
	vc := VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img")}
	base := randomImage(t, vc.Path, size, 9)
	dst := &deltaDst{fakeDst: newFakeDst(), base: base}
	cfg := testConfig(t, dir, vc)
	cfg.Push = serveSummer(t, dst)
	cfg.FileAge = 50 * time.Millisecond
	id := journal.NewStreamID()
	if err := os.MkdirAll(cfg.Buffer, 0o700); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(cfg.Buffer, "v1.init")
	if err := os.WriteFile(ckpt, []byte("4096 "+id.String()+" delta\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewNode(cfg); err == nil {
		t.Fatal("a delta checkpoint inside a top range was accepted")
	}
	if err := os.WriteFile(ckpt, []byte("0 "+id.String()+" delta\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, _ := runNode(t, cfg)
	testkit.WaitFor(t, 30*time.Second, "resumed delta initialize done", func() bool {
		st := n.Status().Volumes[0]
		return !st.Init.Running && st.FilesWaiting == 0 && st.SrcDataBytes == 0
	})
	in := n.Status().Volumes[0].Init
	if in.Error != "" || !in.Delta || in.Stream != id.String() || in.Journaled > 64<<10 {
		t.Fatalf("resumed: %+v", in)
	}
}
