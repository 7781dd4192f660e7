package aimdst

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aimwan/aimwan/internal/testkit"
)

// TestExpectedMethod: the method predicted at start matches the one the
// snapshot then takes, on the temp folder's file system and on one with
// reflinks, and a volume on another file system than the snapshot folder is
// predicted a sparse copy with the reason.
func TestExpectedMethod(t *testing.T) {
	check := func(t *testing.T, dir string) {
		t.Helper()
		vol := filepath.Join(dir, "v.img")
		if err := os.WriteFile(vol, []byte("volume"), 0o644); err != nil {
			t.Fatal(err)
		}
		snaps := filepath.Join(dir, "snapshots")
		if m, _ := expectedMethod(vol, snaps); m != "" {
			t.Fatalf("predicted %q without the snapshot folder", m)
		}
		if err := os.Mkdir(snaps, 0o755); err != nil {
			t.Fatal(err)
		}
		want, why := expectedMethod(vol, snaps)
		got, err := snapshotFile(vol, filepath.Join(snaps, "v", "s1.img"))
		if err != nil {
			t.Fatal(err)
		}
		if want != got || why == "" {
			t.Fatalf("predicted %q (%s), took %q", want, why, got)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 2 {
			t.Errorf("the probe left files: %v", ents)
		}
	}
	t.Run("tempdir", func(t *testing.T) { check(t, t.TempDir()) })
	t.Run("reflink", func(t *testing.T) {
		dir := testkit.ReflinkDir(t, 512<<20)
		check(t, dir)
		other := filepath.Join(t.TempDir(), "v.img")
		if d1, _ := existingDev(other); d1 == 0 || func() bool { d2, _ := existingDev(dir); return d1 == d2 }() {
			return // the temp folder is the reflink file system
		}
		os.WriteFile(other, []byte("volume"), 0o644)
		if m, why := expectedMethod(other, dir); m != methodSparse || !strings.Contains(why, "different file systems") {
			t.Fatalf("volume on another file system: %q, %q", m, why)
		}
	})
}
