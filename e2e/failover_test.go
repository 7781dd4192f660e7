package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/aimdst"
	"github.com/aimwan/aimwan/aimsrc"
	"github.com/aimwan/aimwan/internal/ctlapi"
	"github.com/aimwan/aimwan/internal/testkit"
)

// failoverSize is the volume size of the failover tests.
const failoverSize = 8 << 20

// qemuWrite writes length bytes of pattern at off into the NBD URI with
// qemu-io (a real NBD client) and returns its error and output.
func qemuWrite(uri string, pattern byte, off, length int64) (string, error) {
	out, err := exec.Command("qemu-io", "-f", "raw", "-c",
		fmt.Sprintf("write -P 0x%02x %d %d", pattern, off, length), uri).CombinedOutput()
	if err == nil && strings.Contains(string(out), "failed") {
		err = fmt.Errorf("qemu-io: %s", out)
	}
	return string(out), err
}

// mustWrite is qemuWrite failing the test on an error.
func mustWrite(t *testing.T, uri string, pattern byte, off, length int64) {
	t.Helper()
	if out, err := qemuWrite(uri, pattern, off, length); err != nil {
		t.Fatalf("qemu-io write to %s: %v\n%s", uri, err, out)
	}
}

// waitReplicated waits until src has nothing to push for its volumes and
// dst holds nothing for volume.
func waitVolumeReplicated(t *testing.T, src *SrcNode, dst *DstNode, volume string) {
	t.Helper()
	Eventually(t, 60*time.Second, "replicated", func() (bool, error) {
		for _, v := range src.Status(t).Volumes {
			if v.SrcDataBytes > 0 || v.FilesWaiting > 0 || v.DirtyBytes > 0 || v.Init.Running {
				return false, nil
			}
		}
		dv := dst.Volume(t, volume)
		return dv.FilesWaiting == 0 && dv.Receiving == 0, nil
	})
}

// TestFailoverFailback runs the runbook of docs/failover.md with real NBD
// clients (qemu-img, qemu-io) and every daemon a real process on pinned
// mutual TLS: replication A → B through the proxy pair; a planned failover
// (aimwan failover: drain, wait, promote); the VM at B writes; failback:
// src on B's volume replicates to a dst on A's old image through a second
// proxy pair (init --delta: only what differs travels), then a planned
// failover back; finally normal operation again (demote at B, src at A,
// initialize). Both sites are compared at every role change.
func TestFailoverFailback(t *testing.T) {
	NeedBins(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen.img")
	GenImage(t, gen, failoverSize, 7)
	aImg, bImg := filepath.Join(dir, "site-a.img"), filepath.Join(dir, "site-b.img")

	// Normal operation: site A protects v, site B is its DR site.
	dstB := StartDst(t, []string{"v=" + bImg + ",create"})
	pairAB := StartProxyPair(t, dstB.Listen, pairOpts{})
	srcA := StartSrc(t, pairAB.LAN, []string{"v=" + aImg + ",size=8MiB"})
	srcA.WriteImage(t, "v", gen)
	mustWrite(t, srcA.URI("v"), 0x11, 1<<20, 64<<10)

	// Planned failover A → B, one command.
	out := MustAimwan(t, "failover", "--volume", "v", "--src-control", srcA.Control, "--src-buffer", srcA.Buffer,
		"--dst-control", dstB.Control, "--dst-buffer", dstB.Buffer)
	if !strings.Contains(out, "failover of v done") {
		t.Fatalf("failover output:\n%s", out)
	}
	SameFile(t, aImg, bImg)
	if out, err := qemuWrite(srcA.URI("v"), 0x99, 0, 4096); err == nil {
		t.Fatalf("a write at the drained primary succeeded:\n%s", out)
	}
	if vs := dstB.Volume(t, "v"); vs.Promoted == nil || vs.State != "promoted" {
		t.Fatalf("dst B after failover: %+v", vs)
	}
	if st := srcA.Status(t); !st.Volumes[0].Drained {
		t.Fatal("src A status does not say drained")
	}
	srcA.Stop()

	// Failback, step 1: B serves v (src on B's volume) and replicates to a
	// dst on A's old image through the reverse proxy pair.
	dstA := StartDst(t, []string{"v=" + aImg})
	pairBA := StartProxyPair(t, dstA.Listen, pairOpts{})
	srcB := StartSrc(t, pairBA.LAN, []string{"v=" + bImg})
	mustWrite(t, srcB.URI("v"), 0x22, 2<<20, 256<<10) // the VM at the DR site writes
	mustWrite(t, srcB.URI("v"), 0x23, 7<<20, 4096)
	MustAimwan(t, "src", "init", "--control", srcB.Control, "--buffer", srcB.Buffer, "--volume", "v", "--delta")
	mustWrite(t, srcB.URI("v"), 0x24, 3<<20, 64<<10) // writes go on during and after the initialize
	waitVolumeReplicated(t, srcB, dstA, "v")
	SameFile(t, aImg, bImg)
	const changed = (256 << 10) + 4096 + (64 << 10)
	logical, wire := Metric(t, pairBA.SourceMetrics, "aimwan_proxy_logical_bytes_total"), Metric(t, pairBA.SourceMetrics, "aimwan_proxy_wire_bytes_total")
	vb := srcB.Status(t).Volumes[0]
	t.Logf("failback (delta initialize of a %d-byte volume, %d bytes written at B): src B pushed %d bytes (checksum exchange %d); the source edge took %.0f logical bytes and put %.0f on the WAN",
		failoverSize, changed, vb.BytesPushed, vb.Init.ChecksumBytes, logical, wire)
	// The bound: at most twice the changed bytes plus the checksum exchange.
	if limit := 2*changed + vb.Init.ChecksumBytes; logical > float64(limit) {
		t.Fatalf("the failback pushed %.0f bytes through the proxies, want at most %d (2 x %d changed + %d of checksums)",
			logical, limit, changed, vb.Init.ChecksumBytes)
	}

	// Failback, step 2: planned failover B → A.
	MustAimwan(t, "failover", "--volume", "v", "--src-control", srcB.Control, "--src-buffer", srcB.Buffer,
		"--dst-control", dstA.Control, "--dst-buffer", dstA.Buffer)
	SameFile(t, aImg, bImg)
	srcB.Stop()
	dstA.Stop()

	// Back to normal: B is a replica again, A protects v with a new journal.
	MustAimwan(t, "dst", "demote", "--control", dstB.Control, "--buffer", dstB.Buffer, "--volume", "v")
	srcA2 := StartSrc(t, pairAB.LAN, []string{"v=" + aImg})
	MustAimwan(t, "src", "init", "--control", srcA2.Control, "--buffer", srcA2.Buffer, "--volume", "v", "--delta")
	mustWrite(t, srcA2.URI("v"), 0x33, 5<<20, 128<<10)
	srcA2.Marker(t, "--volume", "v", "--snapshot", "back")
	snap := dstB.WaitSnapshot(t, "v", "back", 60*time.Second)
	waitVolumeReplicated(t, srcA2, dstB, "v")
	SameFile(t, aImg, bImg)
	SameFile(t, snap, aImg)
	if vs := dstB.Volume(t, "v"); vs.Promoted != nil || vs.Previous == nil {
		t.Fatalf("dst B back to normal: %+v", vs)
	}
}

// TestUnplannedFailover: site A is lost with files that never reached B.
// B promotes with what arrived (the volume as of the last file received);
// when A's source comes back, its unreplicated tail is refused by B with a
// conflict naming the promotion, kept in A's buffer and listed in its
// status; B's volume does not change. Promote --at restores a snapshot on a
// second volume and keeps the volume as it was.
func TestUnplannedFailover(t *testing.T) {
	NeedBins(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen.img")
	GenImage(t, gen, failoverSize, 8)
	aImg, bImg := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	a2Img, b2Img := filepath.Join(dir, "a2.img"), filepath.Join(dir, "b2.img")
	dstB := StartDst(t, []string{"v=" + bImg + ",create", "w=" + b2Img + ",create"})
	srcA := StartSrc(t, dstB.Listen, []string{"v=" + aImg + ",size=8MiB", "w=" + a2Img + ",size=8MiB"})
	srcA.WriteImage(t, "v", gen)
	srcA.WriteImage(t, "w", gen)
	srcA.Marker(t, "--volume", "w", "--snapshot", "s1")
	dstB.WaitSnapshot(t, "w", "s1", 60*time.Second)
	waitVolumeReplicated(t, srcA, dstB, "v")
	SameFile(t, bImg, gen)

	// The link goes down (dst B stops), A writes on, then A is lost.
	dstB.Stop()
	mustWrite(t, srcA.URI("v"), 0x44, 0, 512<<10)
	mustWrite(t, srcA.URI("w"), 0x45, 0, 512<<10)
	Eventually(t, 20*time.Second, "the tail sealed at A", func() (bool, error) {
		return srcA.Status(t).Volumes[0].FilesWaiting > 0, nil
	})
	srcA.Kill()

	dstB.Restart()
	out := MustAimwan(t, "dst", "promote", "--control", dstB.Control, "--buffer", dstB.Buffer, "--volume", "v")
	if !strings.Contains(out, "promoted at the newest point") {
		t.Fatalf("promote output:\n%s", out)
	}
	SameFile(t, bImg, gen) // what arrived
	if m := Scrape(t, dstB.Metrics); m[`aimwan_dst_volume_promoted{volume="v"}`] != 1 || m[`aimwan_dst_volume_promoted{volume="w"}`] != 0 {
		t.Fatalf("promoted gauges: v %v, w %v", m[`aimwan_dst_volume_promoted{volume="v"}`], m[`aimwan_dst_volume_promoted{volume="w"}`])
	}
	mustWrite(t, "nbd://"+serveRW(t, bImg)+"/v", 0x55, 1<<20, 4096)

	MustAimwan(t, "dst", "promote", "--control", dstB.Control, "--buffer", dstB.Buffer, "--volume", "w", "--at", "s1")
	vw := dstB.Volume(t, "w")
	if vw.Promoted == nil || vw.Promoted.At != "s1" || len(vw.Promoted.KeptFiles) == 0 {
		t.Fatalf("w after promote --at s1: %+v", vw.Promoted)
	}
	SameFile(t, b2Img, gen)
	// The promoted w served read-write by dst itself (dst export --rw).
	rwAddr := testkit.FreeAddr(t)
	exp := StartProc(t, "dst-export-rw", "dst", "export", "--rw", "--volume", "w", "--nbd", rwAddr, "--buffer", dstB.Buffer,
		"--path", b2Img)
	WaitPort(t, rwAddr, exp)
	mustWrite(t, "nbd://"+rwAddr+"/w", 0x5b, 6<<20, 64<<10)
	if got := testkit.ReadFile(t, b2Img)[6<<20]; got != 0x5b {
		t.Fatalf("write through dst export --rw not in the volume: byte %#x", got)
	}
	exp.Stop()

	// A comes back: its tail is refused, kept and shown; B does not change.
	before := testkit.ReadFile(t, bImg)
	srcA.Proc.Restart()
	WaitPort(t, srcA.Control, srcA.Proc)
	cl := &aimsrc.Client{Addr: srcA.Control, TokenFile: ctlapi.TokenPath(srcA.Buffer)}
	Eventually(t, 30*time.Second, "the tail refused at B", func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a hung control API fails the test, not the run
		defer cancel()
		st, err := cl.Status(ctx) // the token may be the old one for a moment
		if err != nil || len(st.Volumes) == 0 {
			return false, nil
		}
		v := st.Volumes[0]
		return len(v.RefusedFiles) > 0 && strings.Contains(v.RefusedFiles[0], "promoted"), nil
	})
	if v := srcA.Status(t).Volumes[0]; v.FilesWaiting == 0 {
		t.Fatalf("the tail left A's buffer: %+v", v)
	}
	if got := testkit.ReadFile(t, bImg); string(got) != string(before) {
		t.Fatal("the promoted volume changed when the old primary came back")
	}
	if st := MustAimwan(t, "dst", "status", "--control", dstB.Control, "--buffer", dstB.Buffer); !strings.Contains(st, "promoted") {
		t.Fatalf("dst status does not show the promotion:\n%s", st)
	}
}

// serveRW serves a promoted volume file read-write with a local aimwan src
// (the runbook's way to use it at the DR site) and returns its NBD address.
func serveRW(t *testing.T, img string) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := os.Stat(img); err != nil {
		t.Fatal(err)
	}
	nbdAddr, ctl := testkit.FreeAddr(t), testkit.FreeAddr(t)
	p := StartProc(t, "src-dr", "src", "--nbd", nbdAddr, "--push", testkit.FreeAddr(t), "--control", ctl, "--metrics", "off",
		"--buffer", filepath.Join(dir, "buf"), "--key", Keys.Src.Dir, "--peer-fp", Keys.Dst.FP, "--volume", "v="+img)
	WaitPort(t, nbdAddr, p)
	return nbdAddr
}

// TestDRTestClone: a DR test on a writable clone of a snapshot while
// replication goes on. qemu-img writes a whole image through the clone;
// the snapshot and the DR volume do not change by it, destage goes on
// meanwhile (a later snapshot arrives and the DR volume follows the
// source), and ending the test removes the clone.
func TestDRTestClone(t *testing.T) {
	NeedBins(t, "qemu-img", "qemu-io", "qemu-nbd", "nbdcopy")
	dir := t.TempDir()
	gen, vm := filepath.Join(dir, "gen.img"), filepath.Join(dir, "vm.img")
	GenImage(t, gen, failoverSize, 9)
	GenImage(t, vm, failoverSize, 10)
	srcImg, dstImg := filepath.Join(dir, "src.img"), filepath.Join(dir, "dst.img")
	dst := StartDst(t, []string{"v=" + dstImg + ",create"})
	src := StartSrc(t, dst.Listen, []string{"v=" + srcImg + ",size=8MiB"})
	src.WriteImage(t, "v", gen)
	src.Marker(t, "--volume", "v", "--snapshot", "s1")
	snap := dst.WaitSnapshot(t, "v", "s1", 60*time.Second)
	snapBefore := testkit.ReadFile(t, snap)

	nbdAddr := testkit.FreeAddr(t)
	clone := StartProc(t, "test-clone", "dst", "test-clone", "--volume", "v", "--snapshot", "s1", "--nbd", nbdAddr,
		"--snapshots", dst.Snaps)
	WaitPort(t, nbdAddr, clone)
	uri := "nbd://" + nbdAddr + "/v-s1"
	if out, err := Aimwan(t, "dst", "export", "--rw", "--volume", "v", "--nbd", testkit.FreeAddr(t), "--buffer", dst.Buffer,
		"--path", dstImg); err == nil || !strings.Contains(out, "not promoted") {
		t.Fatalf("dst export --rw of a replica: %v\n%s", err, out)
	}
	// The VM's disk is written through the clone while the source writes on.
	Run(t, "qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", vm, uri)
	mustWrite(t, src.URI("v"), 0x66, 1<<20, 128<<10)
	src.Marker(t, "--volume", "v", "--snapshot", "s2")
	dst.WaitSnapshot(t, "v", "s2", 60*time.Second)
	waitVolumeReplicated(t, src, dst, "v")

	readBack := filepath.Join(dir, "clone-read.img")
	Run(t, "nbdcopy", uri, readBack)
	SameFile(t, readBack, vm)
	if got := testkit.ReadFile(t, snap); string(got) != string(snapBefore) {
		t.Fatal("the snapshot changed by writes through the clone")
	}
	SameFile(t, dstImg, srcImg) // destage went on, untouched by the clone
	SameFile(t, dst.Snapshot("v", "s2"), srcImg)

	overlay := aimdst.ClonePath(dst.Snaps, "v", "s1")
	if !FileExists(overlay) {
		t.Fatalf("no overlay at %s while the clone is served", overlay)
	}
	clone.Stop()
	if FileExists(overlay) {
		t.Fatalf("overlay %s left after the test clone ended", overlay)
	}
	// A kept clone is removed with --delete.
	clone2 := StartProc(t, "test-clone-keep", "dst", "test-clone", "--volume", "v", "--snapshot", "s1", "--nbd", nbdAddr,
		"--snapshots", dst.Snaps, "--keep")
	WaitPort(t, nbdAddr, clone2)
	clone2.Stop()
	if !FileExists(overlay) {
		t.Fatal("--keep did not keep the overlay")
	}
	MustAimwan(t, "dst", "test-clone", "--delete", "--volume", "v", "--snapshots", dst.Snaps)
	if FileExists(overlay) {
		t.Fatal("--delete left the overlay")
	}
}

// TestGroupFailover: the members of a consistency group fail over in one
// command: every member drained before any is promoted, each promoted with
// every write its source acknowledged.
func TestGroupFailover(t *testing.T) {
	NeedBins(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen.img")
	GenImage(t, gen, failoverSize, 11)
	img := func(s string) string { return filepath.Join(dir, s+".img") }
	dst := StartDst(t, []string{"a=" + img("dst-a") + ",create", "b=" + img("dst-b") + ",create"}, "--group", "g=a,b")
	src := StartSrc(t, dst.Listen, []string{"a=" + img("src-a") + ",size=8MiB", "b=" + img("src-b") + ",size=8MiB"},
		"--group", "g=a,b")
	src.WriteImage(t, "a", gen)
	src.Marker(t, "--group", "g", "--snapshot", "g1")
	mustWrite(t, src.URI("b"), 0x77, 0, 1<<20) // after the group snapshot: a planned failover keeps it
	out := MustAimwan(t, "failover", "--volume", "a", "b", "--src-control", src.Control, "--src-buffer", src.Buffer,
		"--dst-control", dst.Control, "--dst-buffer", dst.Buffer)
	if !strings.Contains(out, "failover of a, b done") {
		t.Fatalf("failover output:\n%s", out)
	}
	SameFile(t, img("dst-a"), img("src-a"))
	SameFile(t, img("dst-b"), img("src-b"))
	for _, v := range []string{"a", "b"} {
		if vs := dst.Volume(t, v); vs.Promoted == nil || vs.Promoted.At != "" {
			t.Fatalf("%s after a planned group failover: %+v", v, vs.Promoted)
		}
	}
}
