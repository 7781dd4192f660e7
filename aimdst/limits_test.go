package aimdst

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// TestParallelOffersReserve: offers accepted at the same time book their
// whole size, so together they cannot pass the buffer limit even before a
// byte of them has arrived; a booking is released when its file ends.
func TestParallelOffersReserve(t *testing.T) {
	g := smallJournal(t, 5, nil)
	o2, _ := offerOf(t, "vol", g.files[1])
	o3, _ := offerOf(t, "vol", g.files[2])
	tn := newTestNode(t, func(c *Config) { c.BufferLimit = o2.Size + o3.Size - 1 })
	ctx := context.Background()
	s2, err := tn.n.Accept(ctx, push.Hello{Node: "a"}, o2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.n.Accept(ctx, push.Hello{Node: "b"}, o3); !errors.Is(err, push.ErrBufferFull) {
		t.Fatalf("second offer while the first is booked: %v, want buffer full", err)
	}
	s2.Abort() // nothing written: the booking goes
	if got := tn.n.reserved.Load(); got != 0 {
		t.Fatalf("%d bytes still booked after the abort", got)
	}
	s3, err := tn.n.Accept(ctx, push.Hello{Node: "b"}, o3)
	if err != nil {
		t.Fatalf("offer after the booking was released: %v", err)
	}
	s3.Abort()
	// The file destage needs next is never refused.
	o1, _ := offerOf(t, "vol", g.files[0])
	s2, err = tn.n.Accept(ctx, push.Hello{Node: "a"}, o2)
	if err != nil {
		t.Fatal(err)
	}
	s1, err := tn.n.Accept(ctx, push.Hello{Node: "c"}, o1)
	if err != nil {
		t.Fatalf("the next file while the buffer is booked: %v", err)
	}
	s1.Abort()
	s2.Abort()
}

// TestPartExpiry: a partial file nobody resumes (an aborted transfer, here
// of a file far ahead) is removed after the expiry time and stops counting
// against the buffer; at a restart, old ones are removed at once.
func TestPartExpiry(t *testing.T) {
	g := smallJournal(t, 3, nil)
	tn := newTestNode(t, func(c *Config) { c.PartExpiry = time.Minute })
	o, b := offerOf(t, "vol", g.files[2])
	o.Seq, o.Name = 1_000_000, journal.FileName(1_000_000)
	s, err := tn.n.Accept(context.Background(), push.Hello{Node: "x"}, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(b[:100]); err != nil {
		t.Fatal(err)
	}
	s.Abort()
	v := tn.n.vols["vol"]
	part := filepath.Join(v.dir, o.Name+partExt)
	if tn.n.Status().BufferBytes != 100 {
		t.Fatalf("buffer %d, want the part's 100 bytes", tn.n.Status().BufferBytes)
	}
	v.expireParts(time.Now())
	if _, err := os.Stat(part); err != nil {
		t.Fatalf("fresh part removed: %v", err)
	}
	v.expireParts(time.Now().Add(2 * time.Minute))
	if _, err := os.Stat(part); !os.IsNotExist(err) || tn.n.Status().BufferBytes != 0 {
		t.Fatalf("expired part still there (%v) or counted (%d)", err, tn.n.Status().BufferBytes)
	}
	if got := testutil.ToFloat64(tn.n.metrics.partsExpired.WithLabelValues("vol")); got != 1 {
		t.Fatalf("parts expired metric %v", got)
	}
	// At a restart, an old part is removed at once.
	os.WriteFile(part, b[:100], 0o600)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(part, old, old)
	tn.restart(t)
	if _, err := os.Stat(part); !os.IsNotExist(err) {
		t.Fatalf("old part kept across a restart: %v", err)
	}
}

// TestDstFilesPrivate: the buffer, its parts and files, a volume created
// by dst and the snapshots are 0600 in 0700 folders.
func TestDstFilesPrivate(t *testing.T) {
	root := t.TempDir()
	snap := journal.Record{Kind: journal.KindSnapshot, Label: "s1"}
	g := writeJournal(t, filepath.Join(root, "j"), "vol", 64<<10, randomOps(rand.New(rand.NewPCG(3, 4)), 64<<10, 10, map[int]journal.Record{5: snap}))
	cfg := Config{BufferDir: filepath.Join(root, "buf"), SnapshotDir: filepath.Join(root, "snap"),
		Volumes: []VolumeConfig{{Name: "vol", Path: filepath.Join(root, "vol.img"), Create: true}}, Logger: discardLog()}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	deliverAll(t, n, "vol", g.files[:len(g.files)-1])
	o, b := offerOf(t, "vol", g.files[len(g.files)-1])
	s, err := n.Accept(context.Background(), push.Hello{Node: "x"}, o)
	if err != nil {
		t.Fatal(err)
	}
	s.Write(b[:200])
	s.Abort()
	if err := destageAll(n, "vol"); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{cfg.BufferDir, filepath.Join(cfg.BufferDir, "vol"), filepath.Join(cfg.SnapshotDir, "vol")} {
		if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("folder %s: mode %v, %v; want 0700", dir, st.Mode().Perm(), err)
		}
	}
	files := []string{cfg.Volumes[0].Path, SnapshotPath(cfg.SnapshotDir, "vol", "s1"), filepath.Join(cfg.BufferDir, "vol", cursorName),
		filepath.Join(cfg.BufferDir, "vol", o.Name+partExt)}
	for _, f := range files {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("file %s: mode %v, %v; want 0600", f, st.Mode().Perm(), err)
		}
	}
}
