package aimdst

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// TestPromoteNewestPoint: an unplanned failover with a gap. Files 1..k
// arrived in sequence, file k+1 is lost, later files arrived. Promote
// destages 1..k, keeps the later files in the promotion's folder (listed),
// and from then on refuses every file with a conflict, across a restart.
func TestPromoteNewestPoint(t *testing.T) {
	tn := newTestNode(t, nil)
	g := smallJournal(t, 41, nil)
	if len(g.files) < 4 {
		t.Fatalf("journal has %d files, want at least 4", len(g.files))
	}
	k := len(g.files) / 2
	deliverAll(t, tn.n, "vol", g.files[:k])
	deliverAll(t, tn.n, "vol", g.files[k+1:])
	tn.serve(t)
	out, err := tn.n.Promote(context.Background(), PromoteRequest{Volume: "vol"})
	if err != nil {
		t.Fatal(err)
	}
	p := out[0]
	if p.File != uint64(k) || len(p.KeptFiles) != len(g.files)-k-1 {
		t.Fatalf("promotion %+v: want file %d and %d kept files", p, k, len(g.files)-k-1)
	}
	// The volume is the image after file k: replay 1..k into a fresh node.
	ref := newTestNode(t, nil)
	deliverAll(t, ref.n, "vol", g.files[:k])
	if err := destageAll(ref.n, "vol"); err != nil {
		t.Fatal(err)
	}
	if got, want := testkit.ReadFile(t, tn.volPath), testkit.ReadFile(t, ref.volPath); !bytes.Equal(got, want) {
		t.Fatalf("promoted volume: %s", testkit.FirstDiff(want, got))
	}
	for _, f := range p.KeptFiles {
		if _, err := journal.ParseFileName(filepath.Base(f)); err != nil || !exists(f) {
			t.Errorf("kept file %s missing or not a journal file", f)
		}
	}
	err = deliver(t, tn.n, "vol", g.files[k], 1<<30)
	if !errors.Is(err, push.ErrConflict) || !bytes.Contains([]byte(err.Error()), []byte("promoted")) {
		t.Fatalf("push to a promoted volume: %v, want a conflict naming the promotion", err)
	}
	vs := tn.n.Status().Volumes[0]
	if vs.Promoted == nil || vs.State != statePromoted || vs.FilesWaiting != 0 {
		t.Fatalf("status after promote: %+v", vs)
	}
	// Again: the same promotion, nothing changes.
	if again, err := tn.n.Promote(context.Background(), PromoteRequest{Volume: "vol"}); err != nil || again[0].Time != p.Time {
		t.Fatalf("promote again: %v %+v", err, again)
	}
	// A restart keeps the promotion.
	n2, err := NewNode(tn.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := deliver(t, n2, "vol", g.files[k], 1<<30); !errors.Is(err, push.ErrConflict) {
		t.Fatalf("push after restart: %v, want conflict", err)
	}
	if st := n2.Status().Volumes[0]; st.Promoted == nil || st.State != statePromoted {
		t.Fatalf("status after restart: %+v", st)
	}
}

// TestPromoteAtSnapshot restores a snapshot into the volume and keeps the
// volume as it was; demote then takes only an initialize's new stream.
func TestPromoteAtSnapshot(t *testing.T) {
	tn := newTestNode(t, nil)
	g := smallJournal(t, 42, map[int]journal.Record{12: {Kind: journal.KindSnapshot, Label: "s1"}})
	deliverAll(t, tn.n, "vol", g.files)
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	before := testkit.ReadFile(t, tn.volPath)
	tn.serve(t)
	if _, err := tn.n.Promote(context.Background(), PromoteRequest{Volume: "vol", At: "nope"}); !errors.Is(err, ErrNoPoint) {
		t.Fatalf("promote at a missing snapshot: %v", err)
	}
	out, err := tn.n.Promote(context.Background(), PromoteRequest{Volume: "vol", At: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := testkit.ReadFile(t, tn.volPath); !bytes.Equal(got, g.snaps["s1"]) {
		t.Fatalf("volume after promote --at s1: %s", testkit.FirstDiff(g.snaps["s1"], got))
	}
	kept := filepath.Join(out[0].Kept, "volume-before-promote.img")
	if got := testkit.ReadFile(t, kept); !bytes.Equal(got, before) {
		t.Fatal("the volume before the restore was not kept")
	}
	if err := tn.n.Demote("vol"); err != nil {
		t.Fatal(err)
	}
	if err := tn.n.Demote("vol"); !errors.Is(err, ErrNotPromoted) {
		t.Fatalf("demote twice: %v", err)
	}
	// The old binding is retired: only an initialize's new stream rebinds.
	if st := tn.n.Status().Volumes[0]; st.Stream != retiredStream {
		t.Fatalf("stream after demote %q, want the retired binding", st.Stream)
	}
	if st := tn.n.Status().Volumes[0]; st.Promoted != nil || st.Previous == nil {
		t.Fatalf("status after demote: %+v", st)
	}
	if _, err := os.Stat(out[0].Kept); err != nil {
		t.Fatalf("kept folder removed by demote: %v", err)
	}
}

// TestPromoteRequests: bad requests are refused with a clear error.
func TestPromoteRequests(t *testing.T) {
	tn := newTestNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, c := range []struct {
		req  PromoteRequest
		want error
	}{
		{PromoteRequest{}, ErrBadRequest},
		{PromoteRequest{Volume: "vol", Group: "g"}, ErrBadRequest},
		{PromoteRequest{Volume: "other"}, ErrNoSuchVolume},
		{PromoteRequest{Volume: "vol", At: "../x"}, ErrBadRequest},
		{PromoteRequest{Group: "g"}, ErrNoSuchVolume},
	} {
		if _, err := tn.n.Promote(ctx, c.req); !errors.Is(err, c.want) {
			t.Errorf("%+v: %v, want %v", c.req, err, c.want)
		}
	}
}

// TestPromoteGroup: a group promotes at its newest group snapshot, every
// member restored to the same point even when one destaged past it.
func TestPromoteGroup(t *testing.T) {
	root := t.TempDir()
	gm := journal.Record{Kind: journal.KindSnapshot, Label: "gsnap", Group: "g", GroupSeq: 1}
	ga := writeJournal(t, filepath.Join(root, "ja"), "a", 64<<10,
		randomOps(rand.New(rand.NewPCG(51, 1)), 64<<10, 30, map[int]journal.Record{10: gm}))
	gb := writeJournal(t, filepath.Join(root, "jb"), "b", 64<<10,
		randomOps(rand.New(rand.NewPCG(52, 1)), 64<<10, 30, map[int]journal.Record{20: gm}))
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
	if _, err := n.Promote(context.Background(), PromoteRequest{Group: "g"}); !errors.Is(err, ErrNoPoint) {
		t.Fatalf("promote of a group without a group point: %v", err)
	}
	deliverAll(t, n, "a", ga.files)
	deliverAll(t, n, "b", gb.files)
	testkit.WaitFor(t, 10*time.Second, "both destaged", func() bool {
		st := n.Status()
		return st.Volumes[0].DestagedFile == uint64(len(ga.files)) && st.Volumes[1].DestagedFile == uint64(len(gb.files))
	})
	out, err := n.Promote(context.Background(), PromoteRequest{Group: "g"})
	if err != nil || len(out) != 2 {
		t.Fatalf("promote group: %v %+v", err, out)
	}
	for i, g := range []generated{ga, gb} {
		if got := testkit.ReadFile(t, cfg.Volumes[i].Path); !bytes.Equal(got, g.snaps["gsnap"]) {
			t.Errorf("member %s after promote: %s", g.volume, testkit.FirstDiff(g.snaps["gsnap"], got))
		}
		if out[i].At != "gsnap" {
			t.Errorf("member %s promoted at %q", g.volume, out[i].At)
		}
	}
}

// FuzzParsePromotion: a promotion record of any content is decoded or
// refused with an error, never a panic; what it accepts has a time and a
// valid label, and encodes back to an equal record.
func FuzzParsePromotion(f *testing.F) {
	f.Add([]byte(`{"time":"2026-12-02T05:00:00Z","file":3,"record":77,"kept":"/b/v/promoted-x","kept_files":["/b/v/promoted-x/000000000005.aimj"]}`))
	f.Add([]byte(`{"time":"2026-12-02T05:00:00Z","at":"nightly","file":0,"record":0}`))
	f.Add([]byte(`{"time":"0001-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"time":"2026-12-02T05:00:00Z","at":"../x"}`))
	f.Add([]byte(`nope`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePromotion(b)
		if err != nil {
			return
		}
		if p.Time.IsZero() || (p.At != "" && journal.ValidName(p.At) != nil) {
			t.Fatalf("accepted %+v", p)
		}
		again, _ := json.Marshal(p)
		q, err := parsePromotion(again)
		if err != nil || !q.Time.Equal(p.Time) || q.At != p.At || q.File != p.File || q.Record != p.Record {
			t.Fatalf("round trip of %+v: %+v %v", p, q, err)
		}
	})
}

// TestPromoteInterrupted: a crash in the middle of a promotion (its record
// written as pending, the held files not yet moved) leaves a volume that
// refuses files and is not destaged after the restart; promoting again
// finishes it, keeping the held files.
func TestPromoteInterrupted(t *testing.T) {
	tn := newTestNode(t, nil)
	g := smallJournal(t, 43, nil)
	deliverAll(t, tn.n, "vol", g.files)
	rec := []byte(`{"time":"2026-12-02T05:00:00Z","pending":true}`)
	if err := os.WriteFile(filepath.Join(tn.cfg.BufferDir, "vol", promotedName), rec, 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := NewNode(tn.cfg)
	if err != nil {
		t.Fatal(err)
	}
	tn.n = n
	tn.serve(t)
	vs := n.Status().Volumes[0]
	if vs.Promoted == nil || !vs.Promoted.Pending || !strings.Contains(vs.State, "interrupted") || vs.DestagedFile != 0 {
		t.Fatalf("after the restart: %+v", vs)
	}
	if err := deliver(t, n, "vol", g.files[0], 1<<30); !errors.Is(err, push.ErrConflict) {
		t.Fatalf("push during an interrupted promotion: %v", err)
	}
	out, err := n.Promote(context.Background(), PromoteRequest{Volume: "vol"})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Pending || len(out[0].KeptFiles) != len(g.files) || n.Status().Volumes[0].State != statePromoted {
		t.Fatalf("finished promotion %+v", out[0])
	}
}

// TestPromoteAtGroupBarrier: a member waiting at a group marker whose other
// member never arrives (the primary site is lost) promotes at that marker:
// every write before it, none after; the rest of the file is kept.
func TestPromoteAtGroupBarrier(t *testing.T) {
	root := t.TempDir()
	gm := journal.Record{Kind: journal.KindSnapshot, Label: "gsnap", Group: "g", GroupSeq: 1}
	ga := writeJournal(t, filepath.Join(root, "ja"), "a", 64<<10,
		randomOps(rand.New(rand.NewPCG(61, 1)), 64<<10, 30, map[int]journal.Record{10: gm}))
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
	out, err := n.Promote(context.Background(), PromoteRequest{Volume: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if got := testkit.ReadFile(t, cfg.Volumes[0].Path); !bytes.Equal(got, ga.snaps["gsnap"]) {
		t.Fatalf("a promoted at the barrier: %s", testkit.FirstDiff(ga.snaps["gsnap"], got))
	}
	if len(out[0].KeptFiles) == 0 {
		t.Fatal("the file holding the marker was not kept")
	}
	testkit.WaitFor(t, 5*time.Second, "state promoted", func() bool {
		return n.Status().Volumes[0].State == statePromoted
	})
}
