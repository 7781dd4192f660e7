package aimdst

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/durable"
	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
)

// TestGroupMarker: member a reaches the group snapshot marker long before b
// (b's files arrive later); a must wait there, without applying anything
// after the marker, until b reaches it; then both snapshots are taken at the
// marker and both continue.
func TestGroupMarker(t *testing.T) {
	root := t.TempDir()
	gm := journal.Record{Kind: journal.KindSnapshot, Label: "gsnap", Group: "g", GroupSeq: 1}
	ga := writeJournal(t, filepath.Join(root, "ja"), "a", 64<<10,
		randomOps(rand.New(rand.NewPCG(21, 1)), 64<<10, 30, map[int]journal.Record{10: gm}))
	gb := writeJournal(t, filepath.Join(root, "jb"), "b", 64<<10,
		randomOps(rand.New(rand.NewPCG(22, 1)), 64<<10, 30, map[int]journal.Record{20: gm}))
	cfg := Config{BufferDir: filepath.Join(root, "buf"), SnapshotDir: filepath.Join(root, "snap"),
		Volumes: []VolumeConfig{
			{Name: "a", Path: filepath.Join(root, "a.img"), Create: true},
			{Name: "b", Path: filepath.Join(root, "b.img"), Create: true},
		},
		Groups: map[string][]string{"g": {"a", "b"}}, Logger: discardLog(),
		RetryMin: time.Millisecond, RetryMax: 20 * time.Millisecond}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{cfg: cfg, n: n}
	tn.serve(t)
	deliverAll(t, n, "a", ga.files)
	testkit.WaitFor(t, 5*time.Second, "a waiting at the group marker", func() bool {
		return strings.HasPrefix(n.Status().Volumes[0].State, stateGroup)
	})
	// While a waits, its volume holds exactly the writes before the marker.
	if got := testkit.ReadFile(t, cfg.Volumes[0].Path); !bytes.Equal(got, ga.snaps["gsnap"]) {
		t.Fatalf("volume a while waiting: %s", testkit.FirstDiff(ga.snaps["gsnap"], got))
	}
	if _, err := os.Stat(SnapshotPath(cfg.SnapshotDir, "a", "gsnap")); err == nil {
		t.Fatal("group snapshot taken before every member reached the marker")
	}
	deliverAll(t, n, "b", gb.files)
	testkit.WaitFor(t, 10*time.Second, "both destaged", func() bool {
		st := n.Status()
		return st.Volumes[0].DestagedFile == uint64(len(ga.files)) && st.Volumes[1].DestagedFile == uint64(len(gb.files))
	})
	for _, c := range []struct {
		vol string
		g   generated
	}{{"a", ga}, {"b", gb}} {
		if got := testkit.ReadFile(t, SnapshotPath(cfg.SnapshotDir, c.vol, "gsnap")); !bytes.Equal(got, c.g.snaps["gsnap"]) {
			t.Errorf("group snapshot of %s: %s", c.vol, testkit.FirstDiff(c.g.snaps["gsnap"], got))
		}
		if got := testkit.ReadFile(t, filepath.Join(root, c.vol+".img")); !bytes.Equal(got, c.g.final) {
			t.Errorf("image %s: %s", c.vol, testkit.FirstDiff(c.g.final, got))
		}
	}
}

// TestGroupDoneSurvivesRestart: a member whose cursor is still before a
// group point that completed before a crash passes it without waiting.
func TestGroupDoneSurvivesRestart(t *testing.T) {
	root := t.TempDir()
	gm := journal.Record{Kind: journal.KindSnapshot, Label: "gsnap", Group: "g", GroupSeq: 1}
	ga := writeJournal(t, filepath.Join(root, "ja"), "a", 4096, []genOp{{kind: gm.Kind, marker: gm}})
	cfg := Config{BufferDir: filepath.Join(root, "buf"), SnapshotDir: filepath.Join(root, "snap"),
		Volumes: []VolumeConfig{{Name: "a", Path: filepath.Join(root, "a.img"), Create: true},
			{Name: "b", Path: filepath.Join(root, "b.img"), Create: true}},
		Groups: map[string][]string{"g": {"a", "b"}}, Logger: discardLog()}
	if err := os.MkdirAll(filepath.Join(cfg.BufferDir, groupsDirName), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := durable.WriteFile(filepath.Join(cfg.BufferDir, groupsDirName, "g.json"), []byte(`{"done":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := deliver(t, n, "a", ga.files[0], 1<<30); err != nil {
		t.Fatal(err)
	}
	if err := destageAll(n, "a"); err != nil { // would block forever waiting for b
		t.Fatal(err)
	}
	if st := n.Status().Volumes[0]; st.DestagedFile != 1 || st.LastMarker != "gsnap" {
		t.Fatalf("status after passing a completed group point: %+v", st)
	}
}

// TestGroupMembersArgUnknownVolume: a group marker whose members argument
// names a volume this node does not hold is not waited for forever: that
// member can never arrive here.
func TestGroupMembersArgUnknownVolume(t *testing.T) {
	root := t.TempDir()
	gm := journal.Record{Kind: journal.KindCustom, Label: "gmark", Group: "g", GroupSeq: 1,
		Args: []journal.KV{{Key: "members", Value: "a,ghost"}}}
	ga := writeJournal(t, filepath.Join(root, "ja"), "a", 4096, []genOp{{kind: gm.Kind, marker: gm}})
	cfg := Config{BufferDir: filepath.Join(root, "buf"), SnapshotDir: filepath.Join(root, "snap"),
		Volumes: []VolumeConfig{{Name: "a", Path: filepath.Join(root, "a.img"), Create: true}}, Logger: discardLog()}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := deliver(t, n, "a", ga.files[0], 1<<30); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ok, err := n.vols["a"].destageNext(ctx); err != nil || !ok {
		t.Fatalf("destage of a group marker naming an unknown member: destaged %v, %v", ok, err)
	}
}
