package aimsrc

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
)

func TestBitmap(t *testing.T) {
	const gran = 64 << 10
	path := filepath.Join(t.TempDir(), "v.dirty")
	size := int64(10*gran + 100) // a partial last region
	b, err := openBitmap(path, size, gran)
	if err != nil {
		t.Fatal(err)
	}
	if !b.set(gran+10, 10) || b.set(gran, 1) {
		t.Fatal("set: want newly set once")
	}
	b.set(3*gran-1, 2) // touches regions 2 and 3
	b.set(10*gran, 100)
	if got := b.count.Load(); got != 4 {
		t.Fatalf("count %d, want 4", got)
	}
	type run struct{ off, n int64 }
	var runs []run
	for from := int64(0); ; {
		off, n, ok := b.next(from, 1<<20)
		if !ok {
			break
		}
		runs = append(runs, run{off, n})
		from = off + n
	}
	want := []run{{gran, 3 * gran}, {10 * gran, 100}}
	if len(runs) != len(want) || runs[0] != want[0] || runs[1] != want[1] {
		t.Fatalf("runs %v, want %v", runs, want)
	}
	if off, n, _ := b.next(0, gran); off != gran || n != gran {
		t.Fatalf("next with max one region: %d+%d", off, n)
	}
	b.clear(gran, gran)
	if err := b.close(); err != nil {
		t.Fatal(err)
	}
	// Reopen: the bits persist.
	b, err = openBitmap(path, size, gran)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.count.Load(); got != 3 {
		t.Fatalf("after reopen count %d, want 3", got)
	}
	b.close()
	// Another size with bits set is refused; without bits it is replaced.
	if _, err := openBitmap(path, 2*size, gran); !errors.Is(err, ErrBitmap) {
		t.Fatalf("reopen with another size: %v, want ErrBitmap", err)
	}
	b, _ = openBitmap(path, size, gran)
	b.clear(0, size)
	b.close()
	b, err = openBitmap(path, 2*size, gran)
	if err != nil {
		t.Fatalf("clean bitmap with another size: %v", err)
	}
	if b.count.Load() != 0 || b.nbits != (2*size+gran-1)/gran {
		t.Fatalf("replaced bitmap: count %d, nbits %d", b.count.Load(), b.nbits)
	}
	b.close()
}

func TestActivityLog(t *testing.T) {
	dir := t.TempDir()
	const size = 5*alExtent + 1000
	a, err := openActivityLog(dir, "v", size)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.activate(100, 10); err != nil { // extent 0
		t.Fatal(err)
	}
	g := a.begin()                                       // a flush starts
	if err := a.activate(2*alExtent-5, 10); err != nil { // extents 1 and 2, during the flush
		t.Fatal(err)
	}
	a.settle(g) // the flush covers extent 0 only
	if got := a.bits.count.Load(); got != 2 {
		t.Fatalf("after the flush %d active extents, want 2 (written during it)", got)
	}
	if err := a.activate(5*alExtent, 1000); err != nil { // the partial last extent
		t.Fatal(err)
	}
	a.bits.close() // "crash": bits stay set on disk
	a, err = openActivityLog(dir, "v", size)
	if err != nil {
		t.Fatal(err)
	}
	dirty, err := openBitmap(filepath.Join(dir, "v.dirty"), size, DefaultDirtyGranularity)
	if err != nil {
		t.Fatal(err)
	}
	n, err := a.recover(dirty)
	if err != nil || n != 3 {
		t.Fatalf("recover: %d extents, %v; want 3", n, err)
	}
	if got, want := dirty.dirtyBytes(), int64(2*alExtent+DefaultDirtyGranularity); got != want {
		t.Fatalf("dirty %d bytes, want %d (extents 1, 2 and the one region of the partial last one)", got, want)
	}
	if a.bits.count.Load() != 0 {
		t.Fatal("activity log not cleared after recovery")
	}
	a.close()
	dirty.close()
}

// TestResyncCoarseGranularity: a dirty region larger than one resync run
// (a valid granularity above 1 MiB) is journaled whole, not a panic.
func TestResyncCoarseGranularity(t *testing.T) {
	const size = 8 << 20
	dir := t.TempDir()
	vc := VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img")}
	want := randomImage(t, vc.Path, size, 9)
	cfg := testConfig(t, dir, vc)
	cfg.DirtyGranularity = 2 * resyncRun
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	v := n.vols["v1"]
	v.mu.Lock()
	v.dirty.set(3<<20, 1) // marks the whole region [2 MiB, 4 MiB)
	v.setState()
	v.mu.Unlock()
	for range 4 {
		if _, err := v.resyncStep(); err != nil {
			t.Fatal(err)
		}
	}
	if v.State() != StateNormal {
		t.Fatalf("state %s after resync, want %s", v.State(), StateNormal)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	rp := newReplayer(size)
	rp.replayDir(t, filepath.Join(cfg.Buffer, "v1"))
	if !bytes.Equal(rp.img[2<<20:4<<20], want[2<<20:4<<20]) {
		t.Fatal("resynced region differs from the image")
	}
}
