package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit/nbdserve"
)

// TestSrcToDstNBDVolume: the DR volume is a qcow2 served by qemu-nbd, named
// by its NBD URI on dst's command line. qemu-img writes an image through the
// source node, src pushes directly to dst (mutual TLS), dst destages over NBD
// and takes a snapshot (read over NBD) at the marker; nbdcopy reads the
// export back and `aimwan verify` finds it identical to the source image.
// Then qemu-nbd is killed, a second image is written at the source, dst shows
// the volume offline with the files held, qemu-nbd starts again and dst
// catches up; with qemu-nbd stopped, qemu-img converts the qcow2 to raw and
// it equals the second image byte for byte.
func TestSrcToDstNBDVolume(t *testing.T) {
	NeedBins(t, "qemu-img", "qemu-nbd", "nbdcopy")
	const size = 8 << 20
	dir := t.TempDir()
	gen1, gen2 := filepath.Join(dir, "gen1.img"), filepath.Join(dir, "gen2.img")
	GenImage(t, gen1, size, 11)
	GenImage(t, gen2, size, 12)
	qcow2 := filepath.Join(dir, "dr-v.qcow2")
	Run(t, "qemu-img", "create", "-q", "-f", "qcow2", qcow2, "8M")
	srv := nbdserve.QemuNBD(t, qcow2, "qcow2", "dr-v")

	dst := StartDst(t, []string{"v=" + srv.URI})
	src := StartSrc(t, dst.Listen, []string{"v=" + filepath.Join(dir, "src-v.img") + ",size=8MiB"})
	src.WriteImage(t, "v", gen1)
	src.Marker(t, "--volume", "v", "--snapshot", "s1")
	SameFile(t, dst.WaitSnapshot(t, "v", "s1", 90*time.Second), gen1)
	idle := func() (bool, error) {
		v := dst.Volume(t, "v")
		return v.State == "idle" && v.FilesWaiting == 0, nil
	}
	Eventually(t, 60*time.Second, "dst idle after s1", idle)
	if v := dst.Volume(t, "v"); v.Path != srv.URI {
		t.Fatalf("dst status path %q, want the URI %q", v.Path, srv.URI)
	}
	back := filepath.Join(dir, "back.img")
	Run(t, "nbdcopy", srv.URI, back) // dst closed its connection when idle: the one client slot is free
	SameFile(t, back, gen1)

	srv.Kill()
	src.WriteImage(t, "v", gen2)
	src.Marker(t, "--volume", "v", "--snapshot", "s2")
	Eventually(t, 60*time.Second, "volume offline with files held while qemu-nbd is down", func() (bool, error) {
		v := dst.Volume(t, "v")
		return v.Offline && v.FilesWaiting > 0, nil
	})
	out := MustAimwan(t, "dst", "status", "--control", dst.Control, "--buffer", dst.Buffer)
	if !strings.Contains(out, "offline: ") {
		t.Fatalf("dst status does not show the volume offline:\n%s", out)
	}
	srv.Start()
	SameFile(t, dst.WaitSnapshot(t, "v", "s2", 90*time.Second), gen2)
	Eventually(t, 60*time.Second, "dst idle after s2", idle)
	srv.Stop() // SIGTERM: qemu-nbd flushes and closes the image
	raw := filepath.Join(dir, "dr-v.raw")
	Run(t, "qemu-img", "convert", "-f", "qcow2", "-O", "raw", qcow2, raw)
	SameFile(t, raw, gen2)
	SameFile(t, filepath.Join(dir, "src-v.img"), gen2)
}
