package aimdst

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aimwan/aimwan/internal/ctlapi"
	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
)

// fakeSource journals writes and markers of one volume under a fake clock,
// one sealed file per call of mark.
type fakeSource struct {
	t      *testing.T
	volume string
	dir    string
	now    *time.Time
	w      *journal.Writer
	files  int
}

const fakeVolSize = 64 << 10

func newFakeSource(t *testing.T, root, volume string, now *time.Time) *fakeSource {
	t.Helper()
	s := &fakeSource{t: t, volume: volume, dir: filepath.Join(root, "src-"+volume), now: now}
	w, _, err := journal.OpenWriter(journal.WriterConfig{Dir: s.dir, Volume: volume, VolumeSize: fakeVolSize,
		MaxAge: time.Hour, Logger: discardLog(), Now: func() time.Time { return *s.now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	s.w = w
	return s
}

// mark writes a block (its content names the marker) and a snapshot marker
// (group marker when group is set), seals, and returns the file.
func (s *fakeSource) mark(label, group string, groupSeq uint64) string {
	s.t.Helper()
	data := bytes.Repeat([]byte(label+" "), 4096/(len(label)+1)+1)[:4096]
	if _, err := s.w.Write(int64(s.files%16)*4096, data); err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.w.Marker(journal.Record{Kind: journal.KindSnapshot, Label: label, Group: group, GroupSeq: groupSeq}); err != nil {
		s.t.Fatal(err)
	}
	if err := s.w.Seal(); err != nil {
		s.t.Fatal(err)
	}
	s.files++
	return filepath.Join(s.dir, journal.FileName(uint64(s.files)))
}

// held lists the snapshot labels of volume on disk, sorted, and checks
// every image has its metadata and no leftover is there.
func heldSnapshots(t *testing.T, dir, volume string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, volume))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var imgs, metas []string
	for _, e := range ents {
		switch name := e.Name(); {
		case strings.HasSuffix(name, imgExt):
			imgs = append(imgs, strings.TrimSuffix(name, imgExt))
		case strings.HasSuffix(name, metaExt):
			metas = append(metas, strings.TrimSuffix(name, metaExt))
		default:
			t.Errorf("leftover in the snapshot folder: %s", name)
		}
	}
	if !slices.Equal(imgs, metas) {
		t.Errorf("images %v and metadata %v differ", imgs, metas)
	}
	return imgs
}

// TestRetentionNodeDay: the node takes a snapshot every 15 minutes of a
// simulated day (real journal files, real destage and snapshot files,
// fake clock) and applies retention after each; the files that survive are
// exactly those the policy names, and list and metrics say so.
func TestRetentionNodeDay(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	reg := prometheus.NewRegistry()
	tn := newTestNode(t, func(c *Config) {
		c.Volumes[0].Create = true
		c.Now = func() time.Time { return now }
		c.Registerer = reg
		c.Retention = []RetentionPolicy{{Keep: Keep{Last: 2, Hourly: 6}}}
	})
	src := newFakeSource(t, t.TempDir(), "vol", &now)
	for i := range 96 {
		now = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 15 * time.Minute)
		file := src.mark(autoLabel(now), "", 0)
		now = now.Add(10 * time.Second) // the snapshot is taken a little after its point
		deliverAll(t, tn.n, "vol", []string{file})
		if err := destageAll(tn.n, "vol"); err != nil {
			t.Fatal(err)
		}
		if _, err := tn.n.snaps.prune(); err != nil {
			t.Fatal(err)
		}
	}
	want := hm("20261202", "18:45", "19:45", "20:45", "21:45", "22:45", "23:30", "23:45")
	if got := heldSnapshots(t, tn.cfg.SnapshotDir, "vol"); !slices.Equal(got, want) {
		t.Fatalf("snapshots on disk:\n got %v\nwant %v", got, want)
	}
	l, err := tn.n.Snapshots("")
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, si := range l.Snapshots {
		kept = append(kept, si.Label+"="+strings.Join(si.KeptBy, "+"))
		wantPoint := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
		if si.PointTime.Before(wantPoint) || si.Taken.Sub(si.PointTime) != 10*time.Second || si.Method == "" ||
			si.SizeBytes != fakeVolSize || si.Policy != "default" || si.Seq == 0 {
			t.Errorf("snapshot %s listed as %+v", si.Label, si)
		}
	}
	wantKept := []string{"auto-20261202-1845=hourly", "auto-20261202-1945=hourly", "auto-20261202-2045=hourly",
		"auto-20261202-2145=hourly", "auto-20261202-2245=hourly", "auto-20261202-2330=last", "auto-20261202-2345=last+hourly"}
	if !slices.Equal(kept, wantKept) {
		t.Errorf("kept by:\n got %v\nwant %v", kept, wantKept)
	}
	// Each snapshot holds the volume at its own point: the block its marker wrote.
	img := testkit.ReadFile(t, SnapshotPath(tn.cfg.SnapshotDir, "vol", "auto-20261202-1845"))
	if !bytes.Contains(img, []byte("auto-20261202-1845 ")) || bytes.Contains(img, []byte("auto-20261202-1900 ")) {
		t.Error("snapshot 18:45 does not hold the volume at its point")
	}
	if got := testutil.ToFloat64(tn.n.snaps.pruned.WithLabelValues("vol")); got != 96-7 {
		t.Errorf("pruned counter %v, want %d", got, 96-7)
	}
	if n, err := testutil.GatherAndCount(reg, "aimwan_dst_snapshots_held"); err != nil || n != 1 {
		t.Fatalf("snapshots_held series: %d, %v", n, err)
	}
	held := map[string]float64{}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			held[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	if held["aimwan_dst_snapshots_held"] != 7 || held["aimwan_dst_snapshot_bytes"] <= 0 {
		t.Errorf("metrics: held %v, bytes %v", held["aimwan_dst_snapshots_held"], held["aimwan_dst_snapshot_bytes"])
	}
}

// takeAt snapshots the test node's volume as a marker at the given time
// would, through the store (as destage does).
func takeAt(t *testing.T, tn *testNode, volume, label string, at time.Time, group string, gseq uint64) {
	t.Helper()
	path := tn.volPath
	for _, v := range tn.cfg.Volumes {
		if v.Name == volume {
			path = v.Path
		}
	}
	if _, err := tn.n.snaps.store.take(volume, path, journal.Record{Kind: journal.KindSnapshot, Label: label, Seq: 1,
		Time: at, Group: group, GroupSeq: gseq}); err != nil {
		t.Fatal(err)
	}
}

// TestDeleteSnapshot: delete by volume and label; a snapshot held by a
// reader (the NBD export's OpenSnapshot) is refused by delete and kept by
// retention until released; unknown and hostile names are refused.
func TestDeleteSnapshot(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	tn := newTestNode(t, func(c *Config) {
		c.Now = func() time.Time { return now }
		c.Retention = []RetentionPolicy{{Keep: Keep{Last: 1}}}
	})
	if err := os.WriteFile(tn.volPath, bytes.Repeat([]byte{7}, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	takeAt(t, tn, "vol", "manual", now.Add(-2*time.Hour), "", 0)
	takeAt(t, tn, "vol", "auto-1", now.Add(-time.Hour), "", 0)
	exp, err := OpenSnapshotExport(tn.cfg.SnapshotDir, "vol", "auto-1")
	if err != nil {
		t.Fatal(err)
	}
	takeAt(t, tn, "vol", "auto-2", now, "", 0)
	if _, err := tn.n.snaps.prune(); err != nil {
		t.Fatal(err)
	}
	l, _ := tn.n.Snapshots("vol")
	got := map[string]string{}
	for _, si := range l.Snapshots {
		got[si.Label] = strings.Join(si.KeptBy, "+")
	}
	want := map[string]string{"manual": KeptUncovered, "auto-1": KeptInUse, "auto-2": KeptLast}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("kept by %v, want %v", got, want)
	}
	_, err = tn.n.DeleteSnapshot(DeleteRequest{Volume: "vol", Label: "auto-1"})
	if !errors.Is(err, ErrSnapshotInUse) || !strings.Contains(err.Error(), "exported over NBD") {
		t.Fatalf("delete of an exported snapshot: %v", err)
	}
	buf := make([]byte, 8192)
	if err := exp.ReadAt(buf, 0); err != nil || buf[100] != 7 {
		t.Fatalf("export after the refused delete: %v", err)
	}
	exp.Close()
	if _, err := tn.n.snaps.prune(); err != nil {
		t.Fatal(err)
	}
	if got := heldSnapshots(t, tn.cfg.SnapshotDir, "vol"); !slices.Equal(got, []string{"auto-2", "manual"}) {
		t.Fatalf("after release and a pass: %v", got)
	}
	res, err := tn.n.DeleteSnapshot(DeleteRequest{Volume: "vol", Label: "manual"})
	if err != nil || !slices.Equal(res.Deleted, []string{"vol/manual"}) {
		t.Fatalf("delete: %v, %v", res, err)
	}
	if _, err := OpenSnapshotExport(tn.cfg.SnapshotDir, "vol", "manual"); err == nil {
		t.Fatal("a deleted snapshot opened")
	}
	for _, c := range []struct {
		req DeleteRequest
		err error
	}{
		{DeleteRequest{Volume: "vol", Label: "manual"}, ErrNoSuchSnapshot},
		{DeleteRequest{Volume: "vol", Label: "../cursor"}, ErrBadSnapshotRequest},
		{DeleteRequest{Volume: "vol", Label: ".hidden"}, ErrBadSnapshotRequest},
		{DeleteRequest{Volume: "../x", Label: "a"}, ErrBadSnapshotRequest},
		{DeleteRequest{Volume: "vol", Group: "g", Label: "a"}, ErrBadSnapshotRequest},
		{DeleteRequest{Label: "a"}, ErrBadSnapshotRequest},
		{DeleteRequest{Group: "g", Label: "a"}, ErrNoSuchSnapshot},
	} {
		if _, err := tn.n.DeleteSnapshot(c.req); !errors.Is(err, c.err) {
			t.Errorf("delete %+v: %v, want %v", c.req, err, c.err)
		}
	}
}

// TestGroupPointRetention: a group's points are kept or pruned as one: a
// member in use keeps the whole point; a member cannot be deleted alone;
// the group's delete takes every member.
func TestGroupPointRetention(t *testing.T) {
	root := t.TempDir()
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	tn := newTestNode(t, func(c *Config) {
		c.Volumes = []VolumeConfig{{Name: "a", Path: filepath.Join(root, "a.img")}, {Name: "b", Path: filepath.Join(root, "b.img")}}
		c.Groups = map[string][]string{"g": {"a", "b"}}
		c.Now = func() time.Time { return now }
		c.Retention = []RetentionPolicy{{Group: "g", Keep: Keep{Last: 1}}, {Volumes: []string{"a"}, Keep: Keep{Last: 5}}}
	})
	for _, v := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(root, v+".img"), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 3; i++ {
		at := now.Add(time.Duration(i-3) * time.Hour)
		takeAt(t, tn, "a", fmt.Sprintf("auto-g%d", i), at, "g", uint64(i))
		takeAt(t, tn, "b", fmt.Sprintf("auto-g%d", i), at.Add(time.Millisecond), "g", uint64(i))
	}
	held, err := OpenSnapshot(tn.cfg.SnapshotDir, "b", "auto-g1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.n.snaps.prune(); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"a", "b"} {
		if got := heldSnapshots(t, tn.cfg.SnapshotDir, v); !slices.Equal(got, []string{"auto-g1", "auto-g3"}) {
			t.Errorf("volume %s holds %v; want point 1 (in use on b) and 3 (newest)", v, got)
		}
	}
	l, _ := tn.n.Snapshots("a")
	for _, si := range l.Snapshots {
		if !slices.Equal(si.Members, []string{"a", "b"}) || si.Policy != "group g" {
			t.Errorf("%s: members %v, policy %q", si.Label, si.Members, si.Policy)
		}
	}
	_, err = tn.n.DeleteSnapshot(DeleteRequest{Volume: "a", Label: "auto-g3"})
	if !errors.Is(err, ErrGroupPoint) || !strings.Contains(err.Error(), "--group g") {
		t.Fatalf("delete of one member: %v", err)
	}
	if _, err := tn.n.DeleteSnapshot(DeleteRequest{Group: "g", Label: "auto-g1"}); !errors.Is(err, ErrSnapshotInUse) {
		t.Fatalf("delete of a point with a member in use: %v", err)
	}
	if got := heldSnapshots(t, tn.cfg.SnapshotDir, "a"); !slices.Contains(got, "auto-g1") {
		t.Fatal("a refused group delete removed a member")
	}
	held.Close()
	res, err := tn.n.DeleteSnapshot(DeleteRequest{Group: "g", Label: "auto-g1"})
	if err != nil || !slices.Equal(res.Deleted, []string{"a/auto-g1", "b/auto-g1"}) {
		t.Fatalf("group delete: %v, %v", res, err)
	}
}

// TestSnapshotLeftovers: what a crash leaves in the snapshot folder (a
// temporary image, temporary metadata, metadata whose image a delete had
// removed) is cleaned at start; an image without metadata is listed by its
// file time.
func TestSnapshotLeftovers(t *testing.T) {
	tn := newTestNode(t, nil)
	dir := filepath.Join(tn.cfg.SnapshotDir, "vol")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		".s1.img.tmp123": "partial", ".s1.json.tmp9": "{", "gone.json": `{"label":"gone"}`, "old.img": "data",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	os.Chtimes(filepath.Join(dir, "old.img"), mtime, mtime)
	n, err := NewNode(tn.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "old.img" {
		t.Fatalf("after start the folder holds %v", ents)
	}
	l, err := n.Snapshots("")
	if err != nil || len(l.Snapshots) != 1 {
		t.Fatalf("list: %+v, %v", l, err)
	}
	if si := l.Snapshots[0]; !si.Taken.Equal(mtime) || !si.PointTime.IsZero() || si.Method != "" ||
		!slices.Equal(si.KeptBy, []string{KeptUncovered}) {
		t.Errorf("old snapshot listed as %+v", si)
	}
}

// TestDeleteRacesSnapshot: deletes and destage taking the same label again
// and again never leave an image without its metadata or the reverse.
func TestDeleteRacesSnapshot(t *testing.T) {
	tn := newTestNode(t, nil)
	if err := os.WriteFile(tn.volPath, bytes.Repeat([]byte{1}, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	done := make(chan struct{})
	go func() {
		defer wg.Done()
		defer close(done)
		for range 100 {
			if _, err := tn.n.snaps.store.take("vol", tn.volPath, journal.Record{Kind: journal.KindSnapshot, Label: "x", Seq: 1}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := tn.n.DeleteSnapshot(DeleteRequest{Volume: "vol", Label: "x"}); err != nil && !errors.Is(err, ErrNoSuchSnapshot) {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	heldSnapshots(t, tn.cfg.SnapshotDir, "vol") // image and metadata agree
}

// TestListDuringSnapshots: a snapshot being taken is listed only once it
// is complete with its metadata (point time, method), never as a bare
// image, while destage takes snapshots and the list runs at the same time.
func TestListDuringSnapshots(t *testing.T) {
	tn := newTestNode(t, nil)
	if err := os.WriteFile(tn.volPath, bytes.Repeat([]byte{1}, 256<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := range 50 {
			r := journal.Record{Kind: journal.KindSnapshot, Label: fmt.Sprintf("s%02d", i), Seq: uint64(i + 1), Time: at.Add(time.Duration(i) * time.Minute)}
			if _, err := tn.n.snaps.store.take("vol", tn.volPath, r); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for seen := false; !seen; {
		select {
		case <-done:
			seen = true
		default:
		}
		l, err := tn.n.Snapshots("vol")
		if err != nil {
			t.Fatal(err)
		}
		for _, si := range l.Snapshots {
			if si.PointTime.IsZero() || si.Method == "" || si.Seq == 0 {
				t.Fatalf("listed without its metadata: %+v", si)
			}
		}
	}
	wg.Wait()
	if got := heldSnapshots(t, tn.cfg.SnapshotDir, "vol"); len(got) != 50 {
		t.Fatalf("%d snapshots held, want 50", len(got))
	}
}

// TestSnapshotControlAPI: list and delete over the control endpoint; a
// refusal keeps its sentinel across the wire.
func TestSnapshotControlAPI(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	tn := newTestNode(t, func(c *Config) { c.Now = func() time.Time { return now } })
	takeAt(t, tn, "vol", "s1", now, "", 0)
	mux := http.NewServeMux()
	tn.n.snapshotRoutes(mux)
	tokFile := filepath.Join(t.TempDir(), ctlapi.TokenFile)
	token, err := ctlapi.WriteToken(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ctlapi.Guard(mux, token, nil))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()
	if _, err := FetchSnapshots(ctx, addr, filepath.Join(t.TempDir(), "none"), "vol"); err == nil {
		t.Fatal("list without a token file worked")
	}
	l, err := FetchSnapshots(ctx, addr, tokFile, "vol")
	if err != nil || len(l.Snapshots) != 1 || l.Snapshots[0].Label != "s1" || !l.Snapshots[0].PointTime.Equal(now) {
		t.Fatalf("list: %+v, %v", l, err)
	}
	if l, err := FetchSnapshots(ctx, addr, tokFile, "other"); err != nil || len(l.Snapshots) != 0 {
		t.Fatalf("list of another volume: %+v, %v", l, err)
	}
	h, err := OpenSnapshot(tn.cfg.SnapshotDir, "vol", "s1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = RequestDelete(ctx, addr, tokFile, DeleteRequest{Volume: "vol", Label: "s1"})
	var ce *ControlError
	if !errors.Is(err, ErrSnapshotInUse) || !errors.As(err, &ce) || ce.Code != "in_use" {
		t.Fatalf("delete in use over the API: %v", err)
	}
	h.Close()
	if res, err := RequestDelete(ctx, addr, tokFile, DeleteRequest{Volume: "vol", Label: "s1"}); err != nil || len(res.Deleted) != 1 {
		t.Fatalf("delete: %v, %v", res, err)
	}
	if _, err := RequestDelete(ctx, addr, tokFile, DeleteRequest{Volume: "vol", Label: "s1"}); !errors.Is(err, ErrNoSuchSnapshot) {
		t.Fatalf("delete again: %v", err)
	}
	req, err := http.NewRequest(http.MethodPost, srv.URL+SnapshotDeletePath, strings.NewReader(`{"volume":"vol","label":"s1","force":true}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	ctlapi.Authorize(req, token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown field: status %d", resp.StatusCode)
	}
}
