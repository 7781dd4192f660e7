package aimdst

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push/pushtest"
)

// TestPushConformance runs the push receiver conformance suite against the
// destination node. The volume is missing (offline), so files stay in the
// destination buffer, where the suite checks what was stored.
func TestPushConformance(t *testing.T) {
	files := conformanceFiles(t, 8)
	pushtest.Run(t, func(t *testing.T) pushtest.Target {
		tn := newTestNode(t, nil)
		if err := os.Remove(tn.volPath); err != nil {
			t.Fatal(err)
		}
		return pushtest.Target{
			Addr: tn.serve(t), Volume: "vol", Auth: srcAuth(),
			File: func(t *testing.T, seq uint64) []byte { return files[seq-1] },
			Stored: func(t *testing.T, volume, name string) ([]byte, bool) {
				b, err := os.ReadFile(filepath.Join(tn.cfg.BufferDir, volume, name))
				return b, err == nil
			},
		}
	})
}

// conformanceFiles returns n journal files of volume "vol" of about 600 KiB
// each (several DATA frames, so cuts and cancels land mid-file).
func conformanceFiles(t *testing.T, n int) [][]byte {
	t.Helper()
	dir := t.TempDir()
	const size = 1 << 20
	w, _, err := journal.OpenWriter(journal.WriterConfig{Dir: dir, Volume: "vol", VolumeSize: size,
		MaxFileSize: 1 << 30, MaxAge: time.Hour, Logger: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	data := make([]byte, 64<<10)
	var out [][]byte
	for seq := 1; seq <= n; seq++ {
		for range 10 {
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			if _, err := w.Write(rng.Int64N(size-int64(len(data))), data); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Seal(); err != nil {
			t.Fatal(err)
		}
		out = append(out, testkit.ReadFile(t, filepath.Join(dir, journal.FileName(uint64(seq)))))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}
