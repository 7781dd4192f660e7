package aimdst

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/aimwan/aimwan/internal/testkit"
)

// randomFile writes size random bytes (seed) to path and returns them.
func randomFile(t testing.TB, path string, size int, seed uint64) []byte {
	t.Helper()
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(seed, seed))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

// fsUsed is the bytes in use on the file system holding dir.
func fsUsed(t testing.TB, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

// syncFS flushes the file system of dir, so its free space is settled.
func syncFS(t testing.TB, dir string) {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotReflink: on a file system with reflinks (the temp folder's, or
// a loop-mounted XFS; skipped where neither is possible) a snapshot is a
// reflink: it holds the volume's bytes, takes almost no new space, and
// keeps them when the volume is written afterwards (copy on write), the
// write costing only its own blocks. A volume on another file system than
// the snapshot folder (FICLONE answers EXDEV) falls back to the sparse copy.
func TestSnapshotReflink(t *testing.T) {
	const size = 32 << 20
	dir := testkit.ReflinkDir(t, 512<<20)
	vol := filepath.Join(dir, "v.img")
	want := randomFile(t, vol, size, 1)
	syncFS(t, dir)
	before := fsUsed(t, dir)
	snap := filepath.Join(dir, "snaps", "v", "s1.img")
	method, err := snapshotFile(vol, snap)
	if err != nil {
		t.Fatal(err)
	}
	if method != methodReflink {
		t.Fatalf("method %q, want %q", method, methodReflink)
	}
	syncFS(t, dir)
	if grew := fsUsed(t, dir) - before; grew > 1<<20 {
		t.Errorf("a reflink snapshot of %d MiB took %d KiB of new space", size>>20, grew>>10)
	}
	if got := testkit.ReadFile(t, snap); !bytes.Equal(got, want) {
		t.Fatalf("reflink snapshot: %s", testkit.FirstDiff(want, got))
	}

	// Writing the volume leaves the snapshot as it was, and costs only the
	// blocks written.
	f, err := os.OpenFile(vol, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	patch := bytes.Repeat([]byte{0xA5}, 1<<20)
	if _, err := f.WriteAt(patch, 8<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	syncFS(t, dir)
	if grew := fsUsed(t, dir) - before; grew > 3<<20 {
		t.Errorf("1 MiB written over a reflinked volume: %d KiB of new space", grew>>10)
	}
	if got := testkit.ReadFile(t, snap); !bytes.Equal(got, want) {
		t.Fatalf("the snapshot changed with the volume: %s", testkit.FirstDiff(want, got))
	}
	if got := testkit.ReadFile(t, vol); !bytes.Equal(got[8<<20:9<<20], patch) {
		t.Fatal("the volume lost the write")
	}

	// A volume on another file system: the sparse copy.
	other := filepath.Join(t.TempDir(), "other.img")
	if same, err := sameFS(other, dir); err != nil || same {
		return // the temp folder is the reflink file system itself
	}
	want2 := randomFile(t, other, 4<<20, 2)
	method, err = snapshotFile(other, filepath.Join(dir, "snaps", "v", "s2.img"))
	if err != nil || method != methodSparse {
		t.Fatalf("snapshot across file systems: method %q, %v; want %q", method, err, methodSparse)
	}
	if got := testkit.ReadFile(t, filepath.Join(dir, "snaps", "v", "s2.img")); !bytes.Equal(got, want2) {
		t.Fatalf("sparse copy across file systems: %s", testkit.FirstDiff(want2, got))
	}
}

// sameFS reports whether a's folder and b are on one file system.
func sameFS(a, b string) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Stat(filepath.Dir(a), &sa); err != nil {
		return false, err
	}
	if err := unix.Stat(b, &sb); err != nil {
		return false, err
	}
	return sa.Dev == sb.Dev, nil
}

// BenchmarkSnapshot takes a snapshot of a 256 MiB volume of random data
// (the worst case of the sparse copy: no holes, no zero blocks) in the temp
// folder (on ext4 or tmpfs: the sparse copy) and on a file system with
// reflinks (testkit.ReflinkDir: skipped where there is none). It reports
// the new space each snapshot takes on the file system (fs-B/op) and the
// blocks the snapshot file counts (st_blocks, alloc-B/op).
func BenchmarkSnapshot(b *testing.B) {
	const size = 256 << 20
	for _, bc := range []struct {
		name string
		dir  func(b *testing.B) string
	}{
		{"tempdir", func(b *testing.B) string { return b.TempDir() }},
		{"reflink", func(b *testing.B) string { return testkit.ReflinkDir(b, 2<<30) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			dir := bc.dir(b)
			vol := filepath.Join(dir, "v.img")
			randomFile(b, vol, size, 3)
			syncFS(b, dir)
			var method string
			var fsBytes, alloc int64
			b.SetBytes(size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				before := fsUsed(b, dir)
				snap := filepath.Join(dir, "snaps", "s.img")
				m, err := snapshotFile(vol, snap)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				method = m
				syncFS(b, dir)
				fsBytes += fsUsed(b, dir) - before
				var st unix.Stat_t
				if err := unix.Stat(snap, &st); err != nil {
					b.Fatal(err)
				}
				alloc += st.Blocks * 512
				if err := os.Remove(snap); err != nil {
					b.Fatal(err)
				}
				syncFS(b, dir)
				b.StartTimer()
			}
			b.ReportMetric(float64(fsBytes)/float64(b.N), "fs-B/op")
			b.ReportMetric(float64(alloc)/float64(b.N), "alloc-B/op")
			b.Logf("method %s", method)
		})
	}
}
