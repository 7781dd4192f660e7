package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
)

const imgSize = 4 << 20

// TestSrcToDstSnapshot: qemu-img writes a generated image through the source
// node's NBD export, a snapshot marker follows, and the destination's
// snapshot equals the image; the snapshot is then served over NBD by
// `aimwan dst export` and read back with nbdcopy.
func TestSrcToDstSnapshot(t *testing.T) {
	NeedBins(t, "qemu-img", "nbdcopy")
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen.img")
	GenImage(t, gen, imgSize, 1)
	dst := StartDst(t, []string{"v=" + filepath.Join(dir, "dst-v.img") + ",create"})
	src := StartSrc(t, dst.Listen, []string{"v=" + filepath.Join(dir, "src-v.img") + ",size=4MiB"})
	src.WriteImage(t, "v", gen)
	src.Marker(t, "--volume", "v", "--snapshot", "s1")
	snap := dst.WaitSnapshot(t, "v", "s1", 60*time.Second)
	SameFile(t, snap, gen)
	SameFile(t, filepath.Join(dir, "src-v.img"), gen)
	m := Scrape(t, dst.Metrics)
	if m[`aimwan_dst_logical_bytes_total{volume="v"}`] <= 0 || m[`aimwan_dst_files_waiting{volume="v"}`] != 0 {
		t.Fatalf("dst metrics after destage: logical %v, waiting %v", m[`aimwan_dst_logical_bytes_total{volume="v"}`],
			m[`aimwan_dst_files_waiting{volume="v"}`])
	}
	if _, ok := m[`aimwan_time_latency_seconds{volume="v"}`]; !ok {
		t.Fatal("no aimwan_time_latency_seconds for the volume")
	}

	// Differences are found and reported with exit code 1.
	other := filepath.Join(dir, "other.img")
	GenImage(t, other, imgSize, 2)
	out, err := Aimwan(t, "verify", snap, other)
	if ExitCode(err) != 1 {
		t.Fatalf("verify of different images: exit %d, want 1\n%s", ExitCode(err), out)
	}

	// DR test: export the snapshot read-only over NBD while replication goes on.
	nbdAddr := testkit.FreeAddr(t)
	exp := StartProc(t, "dst-export", "dst", "export", "--snapshot", "v/s1", "--nbd", nbdAddr, "--snapshots", dst.Snaps)
	WaitPort(t, nbdAddr, exp)
	copied := filepath.Join(dir, "copied.img")
	Run(t, "nbdcopy", "nbd://"+nbdAddr+"/s1", copied)
	SameFile(t, copied, gen)
	if out := MustAimwan(t, "dst", "status", "--control", dst.Control, "--buffer", dst.Buffer); !strings.Contains(out, "v ") {
		t.Fatalf("dst status table without the volume:\n%s", out)
	}
}
