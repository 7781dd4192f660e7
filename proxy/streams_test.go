package proxy

import (
	"testing"
	"time"
)

// TestManyFilesOneConnection sends more files over one QUIC connection than
// the destination edge lets the source open streams at once: each file's
// stream must be released once its verdict is read, or the source edge
// waits for a stream forever (it did after 1000 files, the default limit).
func TestManyFilesOneConnection(t *testing.T) {
	for _, mode := range []Mode{ModeOptimize, ModePassthrough} {
		t.Run(string(mode), func(t *testing.T) {
			ctx := testCtx(t, 60*time.Second)
			p := newPair(t, pairOpts{mode: mode, maxStreams: 4})
			files := makeJournal(t, "vol", randomBlocks(9, 24*64)) // 24 files of 256 KiB
			if len(files) < 20 {
				t.Fatalf("only %d files", len(files))
			}
			for _, f := range files { // one at a time: every file needs a stream of its own
				if err := pushAll(ctx, p.client, []jfile{f}); err != nil {
					t.Fatalf("%s: %v", f.key(), err)
				}
			}
			checkArrived(t, p.dst, files)
		})
	}
}
