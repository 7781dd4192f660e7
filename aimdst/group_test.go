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

	"github.com/prometheus/client_golang/prometheus/testutil"

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

// TestGroupMarkerWithoutConfig: a group marker names its members (format
// version 2), so a node without --group takes the group point on every
// member, at the same point.
func TestGroupMarkerWithoutConfig(t *testing.T) {
	root := t.TempDir()
	gm := journal.Record{Kind: journal.KindSnapshot, Label: "gsnap", Group: "g", GroupSeq: 1, Members: []string{"a", "b"}}
	ga := writeJournal(t, filepath.Join(root, "ja"), "a", 64<<10,
		randomOps(rand.New(rand.NewPCG(21, 1)), 64<<10, 30, map[int]journal.Record{10: gm}))
	gb := writeJournal(t, filepath.Join(root, "jb"), "b", 64<<10,
		randomOps(rand.New(rand.NewPCG(22, 1)), 64<<10, 30, map[int]journal.Record{20: gm}))
	cfg := Config{BufferDir: filepath.Join(root, "buf"), SnapshotDir: filepath.Join(root, "snap"),
		Volumes: []VolumeConfig{
			{Name: "a", Path: filepath.Join(root, "a.img"), Create: true},
			{Name: "b", Path: filepath.Join(root, "b.img"), Create: true},
		}, Logger: discardLog(), RetryMin: time.Millisecond, RetryMax: 20 * time.Millisecond}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	(&testNode{cfg: cfg, n: n}).serve(t)
	deliverAll(t, n, "a", ga.files)
	testkit.WaitFor(t, 5*time.Second, "a waiting at the group marker", func() bool {
		return strings.HasPrefix(n.Status().Volumes[0].State, stateGroup)
	})
	deliverAll(t, n, "b", gb.files)
	testkit.WaitFor(t, 10*time.Second, "both destaged", func() bool {
		st := n.Status()
		return st.Volumes[0].DestagedFile == uint64(len(ga.files)) && st.Volumes[1].DestagedFile == uint64(len(gb.files))
	})
	for vol, g := range map[string]generated{"a": ga, "b": gb} {
		if got := testkit.ReadFile(t, SnapshotPath(cfg.SnapshotDir, vol, "gsnap")); !bytes.Equal(got, g.snaps["gsnap"]) {
			t.Errorf("group snapshot of %s: %s", vol, testkit.FirstDiff(g.snaps["gsnap"], got))
		}
	}
	if errs := n.Status().GroupErrors; len(errs) != 0 {
		t.Fatalf("group errors: %+v", errs)
	}
}

// TestGroupMemberMissingReported: a group marker naming a member this node
// does not hold is taken on the members it holds and reported (log, metric,
// status), not passed over in silence.
func TestGroupMemberMissingReported(t *testing.T) {
	root := t.TempDir()
	gm := journal.Record{Kind: journal.KindSnapshot, Label: "gsnap", Group: "g", GroupSeq: 1, Members: []string{"a", "ghost"}}
	ga := writeJournal(t, filepath.Join(root, "ja"), "a", 4096, []genOp{{kind: gm.Kind, marker: gm}})
	cfg := Config{BufferDir: filepath.Join(root, "buf"), SnapshotDir: filepath.Join(root, "snap"),
		Volumes: []VolumeConfig{{Name: "a", Path: filepath.Join(root, "a.img"), Create: true}}, Logger: discardLog()}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	deliverAll(t, n, "a", ga.files)
	if err := destageAll(n, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(SnapshotPath(cfg.SnapshotDir, "a", "gsnap")); err != nil {
		t.Fatalf("snapshot of the member held here: %v", err)
	}
	errs := n.Status().GroupErrors
	if len(errs) != 1 || errs[0].Reason != "member-missing" || !strings.Contains(errs[0].Error, "ghost") {
		t.Fatalf("group errors: %+v", errs)
	}
	if got := testutil.ToFloat64(n.metrics.groupErrors.WithLabelValues("g", "member-missing")); got != 1 {
		t.Fatalf("group errors metric %v", got)
	}
}

// TestGroupIDReusedIsNewPoint: a group marker whose id is at or below the
// last completed one but is not that marker reached again (a source whose
// group counter went back) is taken as a new point and reported; the same
// marker replayed after a crash is passed.
func TestGroupIDReusedIsNewPoint(t *testing.T) {
	root := t.TempDir()
	m1 := journal.Record{Kind: journal.KindSnapshot, Label: "first", Group: "g", GroupSeq: 5, Members: []string{"a"}}
	m2 := journal.Record{Kind: journal.KindSnapshot, Label: "again", Group: "g", GroupSeq: 1, Members: []string{"a"}}
	ga := writeJournal(t, filepath.Join(root, "ja"), "a", 4096, []genOp{
		{kind: journal.KindWrite, off: 0, data: []byte("x"), seal: true}, {kind: m1.Kind, marker: m1, seal: true},
		{kind: journal.KindWrite, off: 0, data: []byte("y"), seal: true}, {kind: m2.Kind, marker: m2}})
	cfg := Config{BufferDir: filepath.Join(root, "buf"), SnapshotDir: filepath.Join(root, "snap"),
		Volumes: []VolumeConfig{{Name: "a", Path: filepath.Join(root, "a.img"), Create: true}}, Logger: discardLog()}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	deliverAll(t, n, "a", ga.files)
	if err := destageAll(n, "a"); err != nil {
		t.Fatal(err)
	}
	for label, want := range map[string]byte{"first": 'x', "again": 'y'} {
		b, err := os.ReadFile(SnapshotPath(cfg.SnapshotDir, "a", label))
		if err != nil || b[0] != want {
			t.Fatalf("snapshot %s: %q, %v", label, b[:min(len(b), 1)], err)
		}
	}
	if errs := n.Status().GroupErrors; len(errs) != 1 || errs[0].Reason != "reused-id" {
		t.Fatalf("group errors: %+v", errs)
	}
	// A replay of the point completed last (the cursor was not persisted
	// past it) passes without a new snapshot or error.
	st, _ := n.groups.state("g")
	if !n.groups.replay(st, "a", journal.Record{Group: "g", GroupSeq: 1, Seq: st.At["a"]}) {
		t.Fatal("the last point reached again is not a replay")
	}
}
