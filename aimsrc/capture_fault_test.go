package aimsrc

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
)

// TestImageWriteFailureResyncs: when the image write fails after the write
// was journaled (I/O error, full file system), the journal holds a change
// the image lacks. The region must be resynced from the image, so the far
// end ends with what the image holds, not with the failed write.
func TestImageWriteFailureResyncs(t *testing.T) {
	const size = 1 << 20
	dir := t.TempDir()
	vc := VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: size}
	dst := newFakeDst()
	cfg := testConfig(t, dir, vc)
	cfg.Push = serveFakeDst(t, dst)
	cfg.FileAge = 50 * time.Millisecond
	n, _ := runNode(t, cfg)
	v := n.vols["v1"]
	if err := v.WriteAt(bytes.Repeat([]byte{'A'}, 8192), 4096, false); err != nil {
		t.Fatal(err)
	}
	ro, err := os.Open(vc.Path) // the image turns unwritable
	if err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	rw := v.img.f
	v.img.f = ro
	v.mu.Unlock()
	werr := v.WriteAt(bytes.Repeat([]byte{'B'}, 8192), 4096, false)
	zerr := v.WriteZeroes(65536, 8192, true, false)
	v.mu.Lock()
	v.img.f = rw
	v.mu.Unlock()
	ro.Close()
	if werr == nil || zerr == nil {
		t.Fatalf("write and zero on an unwritable image: %v, %v; want errors", werr, zerr)
	}
	if err := v.Flush(); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "resync done and files pushed", func() bool {
		st := n.Status().Volumes[0]
		return st.State == StateNormal && st.DirtyBytes == 0 && st.FilesWaiting == 0 && st.SrcDataBytes == 0
	})
	dst.checkReplica(t, "v1", vc.Path, size)
}
