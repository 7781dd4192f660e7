package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/aimdst"
	"github.com/aimwan/aimwan/internal/ctlapi"
	"github.com/aimwan/aimwan/internal/testkit"
)

// Snapshots fetches the node's snapshot list through its control API (what
// `aimwan dst snapshots list --json` prints).
func (d *DstNode) Snapshots(t *testing.T) aimdst.SnapshotList {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := aimdst.FetchSnapshots(ctx, d.Control, ctlapi.TokenPath(d.Buffer), "")
	if err != nil {
		t.Fatalf("dst snapshots: %v", err)
	}
	return l
}

// snapshotsCLI runs `aimwan dst snapshots ARGS... --control C --buffer B`.
func (d *DstNode) snapshotsCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return Aimwan(t, append(append([]string{"dst", "snapshots"}, args...), "--control", d.Control, "--buffer", d.Buffer)...)
}

// withPrefix returns the snapshots of l whose label starts with prefix,
// oldest first (the list's order).
func withPrefix(l aimdst.SnapshotList, prefix string) []aimdst.SnapshotInfo {
	var out []aimdst.SnapshotInfo
	for _, s := range l.Snapshots {
		if strings.HasPrefix(s.Label, prefix) {
			out = append(out, s)
		}
	}
	return out
}

// find returns the snapshot volume/label of l.
func find(l aimdst.SnapshotList, volume, label string) (aimdst.SnapshotInfo, bool) {
	for _, s := range l.Snapshots {
		if s.Volume == volume && s.Label == label {
			return s, true
		}
	}
	return aimdst.SnapshotInfo{}, false
}

// TestSnapshotLifecycle: src places a scheduled snapshot marker every 2 s
// (--schedule); dst takes the snapshots and its retention ("last 2" of the
// auto-* labels) prunes the older ones as new ones arrive; `dst snapshots
// list --json` shows them with their point time, method and the class that
// keeps them; a snapshot exported over NBD is neither pruned nor deleted (a
// clear refusal) until the export stops; an operator's own snapshot is
// kept until deleted with `dst snapshots delete`.
func TestSnapshotLifecycle(t *testing.T) {
	NeedBins(t, "qemu-img", "nbdcopy")
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen.img")
	GenImage(t, gen, imgSize, 3)
	dst := StartDst(t, []string{"v=" + filepath.Join(dir, "dst-v.img") + ",create"}, "--retention", "v=last 2")
	src := StartSrc(t, dst.Listen, []string{"v=" + filepath.Join(dir, "src-v.img") + ",size=4MiB"}, "--schedule", "v=2s")
	src.WriteImage(t, "v", gen)
	src.Marker(t, "--volume", "v", "--snapshot", "keep-me")
	dst.WaitSnapshot(t, "v", "keep-me", time.Minute)

	// Scheduled snapshots arrive and retention keeps the last two; the
	// newest is of a point after keep-me, so it holds the whole image.
	var l aimdst.SnapshotList
	Eventually(t, time.Minute, "retention pruning scheduled snapshots past keep-me", func() (bool, error) {
		l = dst.Snapshots(t)
		keep, _ := find(l, "v", "keep-me")
		auto := withPrefix(l, "auto-")
		m := Scrape(t, dst.Metrics)
		return m[`aimwan_dst_snapshots_pruned_total{volume="v"}`] >= 2 && len(auto) == 2 &&
			auto[1].PointTime.After(keep.PointTime), nil
	})
	out, err := dst.snapshotsCLI(t, "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var cli aimdst.SnapshotList
	if err := json.Unmarshal([]byte(out), &cli); err != nil {
		t.Fatalf("snapshots list --json: %v\n%s", err, out)
	}
	if len(cli.Policies) != 1 || !strings.Contains(cli.Policies[0], "volume v: keep last 2 of labels auto-*") {
		t.Errorf("policies %q", cli.Policies)
	}
	if keep, ok := find(cli, "v", "keep-me"); !ok || !slices.Equal(keep.KeptBy, []string{aimdst.KeptUncovered}) ||
		keep.PointTime.IsZero() || keep.SizeBytes != imgSize {
		t.Errorf("keep-me listed as %+v (found %v)", keep, ok)
	}
	auto := withPrefix(cli, "auto-")
	if len(auto) < 2 {
		t.Fatalf("the CLI lists %d scheduled snapshots:\n%s", len(auto), out)
	}
	for _, s := range auto {
		if s.Method == "" || s.SizeBytes != imgSize || s.PointTime.IsZero() || s.Taken.Before(s.PointTime) || s.Policy != "volume v" {
			t.Errorf("scheduled snapshot listed as %+v", s)
		}
	}
	newest := withPrefix(l, "auto-")[1]
	if !slices.Contains(newest.KeptBy, aimdst.KeptLast) {
		t.Errorf("the newest scheduled snapshot kept by %v", newest.KeptBy)
	}
	SameFile(t, dst.Snapshot("v", newest.Label), gen)

	// An exported snapshot is held: neither pruned nor deleted. src is
	// stopped while the export starts, so the snapshot is not pruned
	// before the export holds it; then the schedule goes on.
	src.Stop()
	held := withPrefix(dst.Snapshots(t), "auto-")[0].Label
	nbdAddr := testkit.FreeAddr(t)
	exp := StartProc(t, "dst-export", "dst", "export", "--snapshot", "v/"+held, "--nbd", nbdAddr, "--snapshots", dst.Snaps)
	WaitPort(t, nbdAddr, exp)
	src.Restart()
	WaitPort(t, src.Control, src.Proc)
	Eventually(t, time.Minute, "newer scheduled snapshots, the exported one kept as in use", func() (bool, error) {
		l = dst.Snapshots(t)
		s, ok := find(l, "v", held)
		if !ok {
			t.Fatalf("the exported snapshot %s was pruned", held)
		}
		auto := withPrefix(l, "auto-")
		return slices.Equal(s.KeptBy, []string{aimdst.KeptInUse}) && s.InUse && auto[len(auto)-1].Label != held, nil
	})
	out, err = dst.snapshotsCLI(t, "delete", "--volume", "v", "--label", held)
	if ExitCode(err) != 1 || !strings.Contains(out, "snapshot in use") || !strings.Contains(out, "exported over NBD") {
		t.Fatalf("delete of an exported snapshot: exit %d\n%s", ExitCode(err), out)
	}
	copied := filepath.Join(dir, "copied.img")
	Run(t, "nbdcopy", "nbd://"+nbdAddr+"/"+held, copied)
	exp.Stop()
	Eventually(t, time.Minute, "the released snapshot pruned", func() (bool, error) {
		return !FileExists(dst.Snapshot("v", held)), nil
	})

	// The operator's snapshot goes only when deleted.
	out, err = dst.snapshotsCLI(t, "delete", "--volume", "v", "--label", "keep-me")
	if err != nil || !strings.Contains(out, "deleted v/keep-me") || FileExists(dst.Snapshot("v", "keep-me")) {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	out, err = dst.snapshotsCLI(t, "delete", "--volume", "v", "--label", "keep-me")
	if ExitCode(err) != 1 || !strings.Contains(out, "no such snapshot") {
		t.Fatalf("delete again: exit %d\n%s", ExitCode(err), out)
	}
	table, err := dst.snapshotsCLI(t, "list")
	if err != nil || !strings.Contains(table, "retention volume v: keep last 2") || !strings.Contains(table, "auto-") ||
		strings.Contains(table, "keep-me") {
		t.Fatalf("list: %v\n%s", err, table)
	}
	if out, err := Aimwan(t, "dst", "snapshots", "list", "--control", dst.Control); ExitCode(err) != 2 || !strings.Contains(out, "token") {
		t.Errorf("list without a way to the token: exit %d\n%s", ExitCode(err), out)
	}
	m := Scrape(t, dst.Metrics)
	if held := m[`aimwan_dst_snapshots_held{volume="v"}`]; held < 2 || held > 3 || m[`aimwan_dst_snapshot_bytes{volume="v"}`] <= 0 {
		t.Errorf("snapshot metrics: held %v, bytes %v", held, m[`aimwan_dst_snapshot_bytes{volume="v"}`])
	}
}

// TestSnapshotReflinkNode: a destination volume and its snapshot folder on
// a file system with reflinks (testkit.ReflinkDir: a loop-mounted XFS when
// the temp folder has none; skipped where neither is possible): the
// snapshot is a reflink, listed as such, and holds the image.
func TestSnapshotReflinkNode(t *testing.T) {
	NeedBins(t, "qemu-img")
	fs := testkit.ReflinkDir(t, 512<<20)
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen.img")
	GenImage(t, gen, imgSize, 4)
	dst := StartDst(t, []string{"v=" + filepath.Join(fs, "dst-v.img") + ",create"}, "--snapshots", filepath.Join(fs, "snapshots"))
	dst.Snaps = filepath.Join(fs, "snapshots")
	src := StartSrc(t, dst.Listen, []string{"v=" + filepath.Join(dir, "src-v.img") + ",size=4MiB"})
	src.WriteImage(t, "v", gen)
	src.Marker(t, "--volume", "v", "--snapshot", "s1")
	SameFile(t, dst.WaitSnapshot(t, "v", "s1", time.Minute), gen)
	s, ok := find(dst.Snapshots(t), "v", "s1")
	if !ok || s.Method != "reflink" {
		t.Fatalf("snapshot listed as %+v (found %v), want method reflink", s, ok)
	}
	if !strings.Contains(dst.Output(), "snapshots will be reflinks") {
		t.Error("dst did not say at start that its snapshots will be reflinks")
	}
}
