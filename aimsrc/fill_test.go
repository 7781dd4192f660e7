package aimsrc

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/transport/push"
)

// TestInitialize journals an image that already has content (zero MiBs
// skipped) while live writes and a marker go on; the destination's replay
// equals the image.
func TestInitialize(t *testing.T) {
	const size = 8 << 20
	dir := t.TempDir()
	vc := VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img")}
	content := randomImage(t, vc.Path, size, 9)
	for _, blk := range []int{2, 3, 6} {
		clear(content[blk<<20 : (blk+1)<<20])
	}
	if err := os.WriteFile(vc.Path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := newFakeDst()
	cfg := testConfig(t, dir, vc)
	cfg.Push = serveFakeDst(t, dst)
	cfg.FileAge = 50 * time.Millisecond
	n, _ := runNode(t, cfg)
	cl := &Client{Addr: n.ControlAddr().String(), TokenFile: n.TokenPath()}
	ctx := context.Background()
	if _, err := cl.Init(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
	// Live writes and a marker while the initialize runs.
	nc := mustDialNBD(t, n.NBDAddr().String(), "v1")
	for i := range 20 {
		blk := []int64{0, 1, 4, 5, 7}[i%5] // never a zero MiB: those must stay skipped
		if err := nc.write(bytes.Repeat([]byte{0xEE, byte(i)}, 8<<10), blk<<20+int64(i)*40<<10); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.Marker(ctx, MarkerRequest{Volume: "v1", Kind: MarkerSnapshot, Label: "during-init"}); err != nil {
		t.Fatal(err)
	}
	if err := nc.flush(); err != nil {
		t.Fatal(err)
	}
	var st InitStatus
	testkit.WaitFor(t, 20*time.Second, "initialize done", func() bool {
		s, err := cl.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st = s.Volumes[0].Init
		return !st.Running
	})
	if st.Error != "" || st.Percent != 100 || st.Journaled != 5<<20 {
		t.Fatalf("init status %+v, want done at 100%% with 5 MiB journaled (3 zero MiBs skipped)", st)
	}
	testkit.WaitFor(t, 20*time.Second, "files pushed", func() bool {
		s := n.Status().Volumes[0]
		return s.FilesWaiting == 0 && s.SrcDataBytes == 0
	})
	dst.checkReplica(t, "v1", vc.Path, size)
}

// TestBufferLimit: with a tiny buffer limit and the destination refusing
// files, the volume goes to pull-ahead (writes still accepted, regions in the
// dirty bitmap, markers refused); the node restarts in that state; when the
// destination accepts again the dirty regions are resynced and the
// destination's replay equals the image.
func TestBufferLimit(t *testing.T) {
	const size = 4 << 20
	dir := t.TempDir()
	vc := VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: size}
	dst, refuse := newRefusingDst()
	cfg := testConfig(t, dir, vc)
	cfg.Push = serveFakeDst(t, dst)
	cfg.BufferLimit = 512 << 10
	cfg.FileSize = 64 << 10
	cfg.FileAge = 50 * time.Millisecond
	n, stop := runNode(t, cfg)
	nc := mustDialNBD(t, n.NBDAddr().String(), "v1")
	for i := range 64 {
		if err := nc.write(bytes.Repeat([]byte{byte(i + 1)}, 32<<10), int64(i)*64<<10); err != nil {
			t.Fatalf("write %d in pull-ahead: %v", i, err)
		}
	}
	if err := nc.zero(1<<20, 64<<10); err != nil {
		t.Fatal(err)
	}
	if err := nc.flush(); err != nil {
		t.Fatal(err)
	}
	st := n.Status()
	if st.Volumes[0].State != StatePullAhead || st.Volumes[0].DirtyBytes == 0 {
		t.Fatalf("status %+v, want pull-ahead with dirty bytes", st.Volumes[0])
	}
	if st.BufferBytes > cfg.BufferLimit {
		t.Errorf("buffer %d bytes over the limit %d", st.BufferBytes, cfg.BufferLimit)
	}
	_, err := n.Marker(MarkerRequest{Volume: "v1", Kind: MarkerSnapshot, Label: "x"})
	if !errors.Is(err, ErrNotConsistent) {
		t.Fatalf("marker in pull-ahead: %v, want ErrNotConsistent", err)
	}
	nc.close()
	stop()

	refuse.Store(false)
	n2, _ := runNode(t, cfg)
	testkit.WaitFor(t, 30*time.Second, "resync to normal and files pushed", func() bool {
		s := n2.Status().Volumes[0]
		return s.State == StateNormal && s.FilesWaiting == 0 && s.SrcDataBytes == 0
	})
	dst.checkReplica(t, "v1", vc.Path, size)
	if _, err := n2.Marker(MarkerRequest{Volume: "v1", Kind: MarkerSnapshot, Label: "after"}); err != nil {
		t.Fatalf("marker after resync: %v", err)
	}
}

// TestInitializeResume: an initialize held back by a full buffer (the
// destination refuses files) is cut short by a stop; the next start resumes
// it from its checkpoint, and the destination's replay equals the image.
func TestInitializeResume(t *testing.T) {
	const size = 8 << 20
	dir := t.TempDir()
	vc := VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img")}
	randomImage(t, vc.Path, size, 5)
	dst, refuse := newRefusingDst()
	cfg := testConfig(t, dir, vc)
	cfg.Push = serveFakeDst(t, dst)
	cfg.BufferLimit = 3 << 20
	cfg.FileSize = 512 << 10
	cfg.FileAge = 50 * time.Millisecond
	n, stop := runNode(t, cfg)
	if _, err := n.Init("v1"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "initialize held back by the buffer limit", func() bool {
		st := n.Status().Volumes[0]
		return st.Init.DoneBytes >= 2<<20 && n.Status().BufferBytes > cfg.BufferLimit*3/4
	})
	if st := n.Status().Volumes[0].Init; !st.Running || st.DoneBytes >= size {
		t.Fatalf("init status %+v, want running and held back", st)
	}
	stop()
	if _, err := os.Stat(filepath.Join(cfg.Buffer, "v1.init")); err != nil {
		t.Fatalf("no initialize checkpoint after the stop: %v", err)
	}

	refuse.Store(false)
	n2, _ := runNode(t, cfg)
	if st := n2.Status().Volumes[0].Init; !st.Running || st.DoneBytes == 0 {
		t.Fatalf("after restart init status %+v, want resumed from its checkpoint", st)
	}
	testkit.WaitFor(t, 30*time.Second, "initialize done and pushed", func() bool {
		st := n2.Status().Volumes[0]
		return !st.Init.Running && st.FilesWaiting == 0 && st.SrcDataBytes == 0
	})
	if st := n2.Status().Volumes[0].Init; st.Error != "" || st.Percent != 100 {
		t.Fatalf("init status %+v", st)
	}
	if _, err := os.Stat(filepath.Join(cfg.Buffer, "v1.init")); err == nil {
		t.Error("checkpoint left after the initialize finished")
	}
	dst.checkReplica(t, "v1", vc.Path, size)
}

// newRefusingDst is a fake destination that answers every offer with
// ErrBufferFull while refuse is set (it starts set).
func newRefusingDst() (dst *fakeDst, refuse *atomic.Bool) {
	refuse = new(atomic.Bool)
	refuse.Store(true)
	dst = newFakeDst()
	dst.fail = func(push.Offer, int) error {
		if refuse.Load() {
			return push.ErrBufferFull
		}
		return nil
	}
	return dst, refuse
}
