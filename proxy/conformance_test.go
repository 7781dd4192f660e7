package proxy

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push/pushtest"
)

// TestPushConformance runs the push receiver conformance suite against a
// Source+Dest pair with a destination behind it, in both modes, all in this
// process on loopback: to src, a proxy pair is one more receiver
// (docs/push-protocol.md). The files are journal files, so the optimizing
// pair splits, deduplicates and joins them.
func TestPushConformance(t *testing.T) {
	files := conformanceFiles(t, "vol1", 8)
	for _, mode := range []Mode{ModeOptimize, ModePassthrough} {
		t.Run(mode.String(), func(t *testing.T) {
			pushtest.Run(t, func(t *testing.T) pushtest.Target {
				p := newPair(t, pairOpts{mode: mode})
				return pushtest.Target{
					Addr: p.lanAddr, Volume: "vol1", Auth: srcAuth(p.srcID),
					File: func(_ *testing.T, seq uint64) []byte { return files[seq-1] },
					Stored: func(_ *testing.T, volume, name string) ([]byte, bool) {
						return p.dst.get(volume + "/" + name)
					},
				}
			})
		})
	}
}

// conformanceFiles returns n sealed journal files of volume of about 600
// KiB each (several push DATA frames, so cuts and cancels land mid-file):
// 4 KiB writes, half of them repeating earlier blocks.
func conformanceFiles(t *testing.T, volume string, n int) [][]byte {
	t.Helper()
	dir := t.TempDir()
	w, _, err := journal.OpenWriter(journal.WriterConfig{Dir: dir, Volume: volume, VolumeSize: 1 << 30,
		MaxFileSize: 1 << 30, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(12, 1))
	blocks := randomBlocks(12, 64)
	var out [][]byte
	for seq := 1; seq <= n; seq++ {
		for i := range 150 {
			b := blocks[rng.IntN(len(blocks))]
			if i%2 == 0 {
				b = randomBlocks(uint64(seq*1000+i), 1)[0]
			}
			if _, err := w.Write(rng.Int64N(1<<18)*4096, b); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Seal(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, journal.FileName(uint64(seq))))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}
