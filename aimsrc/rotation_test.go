package aimsrc

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
)

// sealOrder wraps a volume's journal and counts appends whose record left
// the open file (was sealed) before the append returned, that is before
// capture wrote the image.
type sealOrder struct {
	journalWriter
	early int
}

func (s *sealOrder) check(seq uint64, err error) (uint64, error) {
	if err == nil && s.OpenStats().Records == 0 {
		s.early++
	}
	return seq, err
}

func (s *sealOrder) Write(off int64, data []byte) (uint64, error) {
	return s.check(s.journalWriter.Write(off, data))
}

func (s *sealOrder) Zero(off, length int64, trim bool) (uint64, error) {
	return s.check(s.journalWriter.Zero(off, length, trim))
}

// TestSizeSealFollowsTheImageWrite: the journal rotates by size itself, but
// a file is sealed only after the image holds its last record (a sealed file
// may be pushed and deleted at once; recovery redoes only the open file).
// Writes that exactly fill files, and zeros after a full file, all leave
// their record in the open file until capture has applied it; the sealed
// files replay to the image.
func TestSizeSealFollowsTheImageWrite(t *testing.T) {
	const size = 1 << 20
	dir := t.TempDir()
	vc := VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: size}
	cfg := testConfig(t, dir, vc)
	cfg.FileSize = 64 << 10
	cfg.FileAge = time.Hour
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := n.vols["v1"]
	so := &sealOrder{journalWriter: v.jw}
	v.jw = so
	for i := range 16 { // 16 KiB writes: every fourth fills a file
		if err := v.WriteAt(bytes.Repeat([]byte{byte(i + 1)}, 16<<10), int64(i)*(16<<10), false); err != nil {
			t.Fatal(err)
		}
		if i%4 == 3 {
			if err := v.WriteZeroes(int64(i)*(16<<10), 4096, false, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	if so.early != 0 {
		t.Errorf("%d records were sealed before their image write", so.early)
	}
	if got := v.sealedFiles.Load(); got != 4 {
		t.Errorf("%d files sealed by size, want 4", got)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	r := newReplayer(size)
	r.replayDir(t, filepath.Join(cfg.Buffer, "v1"))
	if img := testkit.ReadFile(t, vc.Path); !bytes.Equal(r.img, img) {
		t.Fatalf("sealed files replay to another image: %s", testkit.FirstDiff(img, r.img))
	}
	seqs, err := journal.ListSealed(filepath.Join(cfg.Buffer, "v1"))
	if err != nil || len(seqs) != 5 {
		t.Fatalf("%d sealed files after Close (%v), want 5", len(seqs), err)
	}
}
