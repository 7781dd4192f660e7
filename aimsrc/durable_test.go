package aimsrc

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/aimwan/aimwan/internal/durable"
)

// TestNewFilesDurable: the folders and files a node creates at start (the
// source buffer and its missing parents, a new image, the dirty bitmap and
// activity log) have their entries fsynced into their folders: a power loss
// must not drop the bitmaps that say what to resync, or the buffer that
// holds records already synced.
func TestNewFilesDurable(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var synced []string
	t.Cleanup(durable.SetSyncHook(func(f *os.File, folder bool) error {
		if folder {
			mu.Lock()
			synced = append(synced, filepath.Clean(f.Name()))
			mu.Unlock()
		}
		return f.Sync()
	}))
	imgDir := filepath.Join(dir, "images")
	if err := os.Mkdir(imgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, dir, VolumeConfig{Name: "v1", Path: filepath.Join(imgDir, "v1.img"), Size: 1 << 20})
	cfg.Buffer = filepath.Join(dir, "site", "buffer")
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []struct{ folder, why string }{
		{dir, "the new folder site"},
		{filepath.Join(dir, "site"), "the new source buffer"},
		{imgDir, "the new image"},
	} {
		if !slices.Contains(synced, want.folder) {
			t.Errorf("%s not fsynced after %s was created in it (synced: %v)", want.folder, want.why, synced)
		}
	}
	// Two new bitmap files (dirty bitmap, activity log) in the buffer.
	if got := countOf(synced, cfg.Buffer); got < 2 {
		t.Errorf("buffer folder fsynced %d times, want at least 2 (dirty bitmap and activity log created)", got)
	}
}

func countOf(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}
