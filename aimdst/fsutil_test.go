package aimdst

import (
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aimwan/aimwan/internal/durable"
	"github.com/aimwan/aimwan/journal"
)

// TestCreatedFoldersDurable: every folder the node creates (buffer, volume
// buffer folders, group state, snapshot folders) has its parent fsynced, so
// an acked file, a snapshot or a group's progress cannot vanish with a
// folder entry lost in a power failure.
func TestCreatedFoldersDurable(t *testing.T) {
	root := t.TempDir()
	var mu sync.Mutex
	synced := map[string]bool{}
	t.Cleanup(durable.SetSyncHook(func(f *os.File, folder bool) error {
		if folder {
			mu.Lock()
			synced[filepath.Clean(f.Name())] = true
			mu.Unlock()
		}
		return f.Sync()
	}))
	gm := journal.Record{Kind: journal.KindSnapshot, Label: "gsnap", Group: "g", GroupSeq: 1}
	g := writeJournal(t, filepath.Join(root, "src"), "a", 4096, []genOp{{kind: gm.Kind, marker: gm}})
	cfg := Config{BufferDir: filepath.Join(root, "dst", "buf"), SnapshotDir: filepath.Join(root, "dst", "snap"),
		Volumes: []VolumeConfig{{Name: "a", Path: filepath.Join(root, "a.img"), Create: true}},
		Groups:  map[string][]string{"g": {"a"}}, Logger: discardLog()}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := deliver(t, n, "a", g.files[0], 1<<30); err != nil {
		t.Fatal(err)
	}
	if err := destageAll(n, "a"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	filepath.WalkDir(filepath.Join(root, "dst"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && !synced[filepath.Dir(path)] {
			t.Errorf("folder %s created, its parent never fsynced", path)
		}
		return nil
	})
}
