package e2e

import (
	"path/filepath"
	"testing"
	"time"
)

// TestSrcCoalesce: with --coalesce the destination still ends equal to the
// source. The volume is written three times over (two images), then a
// snapshot marker ends the window; the snapshot must equal the last image.
func TestSrcCoalesce(t *testing.T) {
	NeedBins(t, "qemu-img")
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	GenImage(t, a, imgSize, 1)
	GenImage(t, b, imgSize, 2)
	dst := StartDst(t, []string{"v=" + filepath.Join(dir, "dst-v.img") + ",create"})
	// StartSrc passes --file-age 200ms; the window must be the same.
	src := StartSrc(t, dst.Listen, []string{"v=" + filepath.Join(dir, "src-v.img") + ",size=4MiB"}, "--coalesce", "200ms")
	src.WriteImage(t, "v", a)
	src.WriteImage(t, "v", b)
	src.WriteImage(t, "v", a)
	src.Marker(t, "--volume", "v", "--snapshot", "s1")
	snap := dst.WaitSnapshot(t, "v", "s1", 60*time.Second)
	SameFile(t, snap, a)
	SameFile(t, filepath.Join(dir, "src-v.img"), a)
}
