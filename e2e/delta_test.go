package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// makeExt4 builds a real file-system image of size bytes at path: ext4
// holding a folder of the Go distribution's sources (mkfs.ext4 -d), "src"
// (157 MB) or a part of it.
func makeExt4(t *testing.T, path string, size int64, tree string) {
	t.Helper()
	Run(t, "mkfs.ext4", "-q", "-F", "-N", "40000", "-d", filepath.Join(runtime.GOROOT(), tree), path, fmt.Sprint(size>>10)+"k")
}

// changeBlocks rewrites pct percent of the 4 KiB blocks of the image at
// path, chosen at random (no two runs alike, none clustered: the worst case
// for a range descent), with random bytes, and returns the bytes changed.
func changeBlocks(t *testing.T, path string, pct float64, seed uint64) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	blocks := st.Size() / 4096
	rng := rand.New(rand.NewPCG(seed, 7))
	n := int(float64(blocks) * pct / 100)
	buf := make([]byte, 4096)
	for _, b := range rng.Perm(int(blocks))[:n] {
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if _, err := f.WriteAt(buf, int64(b)*4096); err != nil {
			t.Fatal(err)
		}
	}
	return int64(n) * 4096
}

// TestDeltaInitSeeded: dst holds an older copy of a 256 MiB ext4 image
// (a shipped disk); src has the image with 3% of its 4 KiB blocks changed.
// `src init --delta` makes dst byte-identical, with live writes during it,
// while pushing at most 10% of the volume's bytes; a full initialize of the
// same volume afterwards pushes the whole volume (direct). Direct (src → dst) and
// through the proxy pair (the checksums cross the WAN on their own streams;
// the journaled blocks go through the byte cache like any file).
func TestDeltaInitSeeded(t *testing.T) {
	NeedBins(t, "mkfs.ext4", "qemu-io")
	const size = 256 << 20
	base := filepath.Join(t.TempDir(), "old.img")
	makeExt4(t, base, size, "src")
	for _, via := range []string{"direct", "proxy"} {
		t.Run(via, func(t *testing.T) {
			dir := t.TempDir()
			dstVol, srcImg := filepath.Join(dir, "dst-v.img"), filepath.Join(dir, "src-v.img")
			copyFile(t, base, dstVol)
			copyFile(t, base, srcImg)
			changed := changeBlocks(t, srcImg, 3, 11)
			dst := StartDst(t, []string{"v=" + dstVol})
			next := dst.Listen
			var pp *ProxyPair
			if via == "proxy" {
				pp = StartProxyPair(t, dst.Listen, pairOpts{})
				next = pp.LAN
			}
			src := StartSrc(t, next, []string{"v=" + srcImg})
			MustAimwan(t, "src", "init", "--control", src.Control, "--buffer", src.Buffer, "--volume", "v", "--delta", "--no-wait")
			// Live writes while it runs: journaled in order with the delta.
			for i := range 4 {
				Run(t, "qemu-io", "-f", "raw", "-c", fmt.Sprintf("write -P %d %d 64k", 0xa0+i, int64(i)*(60<<20)+12288), src.URI("v"))
			}
			waitReplicated(t, src, dst)
			SameFile(t, dstVol, srcImg)
			sv := src.Status(t).Volumes[0]
			in := sv.Init
			pushed := int64(sv.BytesPushed)
			if pp != nil {
				settle(t, pp)
				pushed = int64(Metric(t, pp.SourceMetrics, "aimwan_proxy_logical_bytes_total"))
			}
			t.Logf("%s delta: %d bytes changed; compared %d, journaled %d, saved %d, checksums %d bytes; pushed %d bytes (%.2f%% of the volume)",
				via, changed, in.DoneBytes, in.Journaled, in.SavedBytes, in.ChecksumBytes, pushed, 100*float64(pushed)/size)
			if in.Error != "" || !in.Delta || in.DoneBytes != size {
				t.Fatalf("delta initialize status %+v", in)
			}
			if pushed > size/10 {
				t.Fatalf("delta initialize pushed %d bytes, more than 10%% of %d", pushed, size)
			}
			if pp != nil {
				t.Logf("proxy delta: %.0f bytes on the WAN", Metric(t, pp.SourceMetrics, "aimwan_proxy_wire_bytes_total"))
			}
			if pp != nil || raceBuild {
				// The full initialize costs the same either way: measured
				// direct only, and not under the race detector (minutes
				// of an instrumented 256 MiB copy that checks nothing new).
				return
			}
			// A full initialize of the same volume for comparison.
			before := pushed
			MustAimwan(t, "src", "init", "--control", src.Control, "--buffer", src.Buffer, "--volume", "v")
			waitReplicated(t, src, dst)
			SameFile(t, dstVol, srcImg)
			full := int64(src.Status(t).Volumes[0].BytesPushed) - before
			t.Logf("%s full: pushed %d bytes (%.2f%% of the volume; zero blocks travel as zero records)", via, full, 100*float64(full)/size)
			if full < 5*pushed {
				t.Fatalf("full initialize pushed %d bytes, delta %d: the delta saved too little", full, pushed)
			}
		})
	}
}

// waitReplicated waits until src has no initialize running and nothing to
// push, and dst has destaged everything of src's stream.
func waitReplicated(t *testing.T, src *SrcNode, dst *DstNode) {
	t.Helper()
	Eventually(t, 180*time.Second, "the initialize pushed and destaged", func() (bool, error) {
		sv, dv := src.Status(t).Volumes[0], dst.Volume(t, "v")
		if sv.Init.Error != "" {
			return false, fmt.Errorf("initialize failed: %s", sv.Init.Error)
		}
		return sv.FilesWaiting == 0 && sv.SrcDataBytes == 0 && !sv.Init.Running && dv.FilesWaiting == 0 &&
			dv.Stream == sv.Stream && strings.HasPrefix(dv.State, "idle"), nil
	})
}

// TestDeltaInitLostBuffer: a source replicating a volume loses its buffer
// (a new journal stream) while its image changes; the destination refuses
// the new stream's files; `src init --delta` supersedes them, the
// destination rebinds, and only the differing blocks travel.
func TestDeltaInitLostBuffer(t *testing.T) {
	NeedBins(t, "mkfs.ext4", "qemu-io")
	const size = 64 << 20
	dir := t.TempDir()
	dstVol, srcImg := filepath.Join(dir, "dst-v.img"), filepath.Join(dir, "src-v.img")
	makeExt4(t, srcImg, size, "src/runtime")
	copyFile(t, srcImg, dstVol) // seeded
	dst := StartDst(t, []string{"v=" + dstVol})
	src := StartSrc(t, dst.Listen, []string{"v=" + srcImg})
	MustAimwan(t, "src", "init", "--control", src.Control, "--buffer", src.Buffer, "--volume", "v", "--delta")
	waitReplicated(t, src, dst)
	bound := dst.Volume(t, "v").Stream

	src.Stop()
	if err := os.RemoveAll(src.Buffer); err != nil {
		t.Fatal(err)
	}
	changed := changeBlocks(t, srcImg, 1, 5) // written while the source was down and its buffer lost
	src.Proc.Ready = []string{src.NBD, src.Control}
	src.Proc.Restart()
	Run(t, "qemu-io", "-f", "raw", "-c", "write -P 7 1M 64k", src.URI("v"))
	Eventually(t, 60*time.Second, "the new stream refused", func() (bool, error) {
		sv := src.Status(t).Volumes[0]
		return len(sv.RefusedFiles) > 0 && strings.Contains(sv.LastPushError, "--delta"), nil
	})
	before := src.Status(t).Volumes[0].BytesPushed
	out := MustAimwan(t, "src", "init", "--control", src.Control, "--buffer", src.Buffer, "--volume", "v", "--delta")
	waitReplicated(t, src, dst)
	SameFile(t, dstVol, srcImg)
	sv, dv := src.Status(t).Volumes[0], dst.Volume(t, "v")
	pushed := int64(sv.BytesPushed - before)
	t.Logf("lost buffer: %d bytes changed; %s; pushed %d bytes (%.2f%%)", changed, lastLine(out), pushed, 100*float64(pushed)/size)
	if dv.Previous == nil || dv.Previous.Stream != bound || sv.FilesSuperseded == 0 || len(sv.RefusedFiles) != 0 {
		t.Fatalf("after the delta initialize: src %+v, dst previous %+v", sv, dv.Previous)
	}
	if pushed > size/20 {
		t.Fatalf("pushed %d bytes for %d changed", pushed, changed)
	}
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestDeltaInitFailback: site A replicates to site B; both stop (a failover:
// B's volume is used on its own, and A wrote blocks that never reached B).
// With the roles swapped — src on B's volume, dst on A's old image —
// `init --delta` makes A equal to B, moving at most twice the bytes changed
// on either side plus the checksum exchange.
func TestDeltaInitFailback(t *testing.T) {
	NeedBins(t, "mkfs.ext4")
	const size = 64 << 20
	dir := t.TempDir()
	volA, volB := filepath.Join(dir, "site-a.img"), filepath.Join(dir, "site-b.img")
	makeExt4(t, volA, size, "src/runtime")
	copyFile(t, volA, volB) // B seeded from A
	dstB := StartDst(t, []string{"v=" + volB})
	srcA := StartSrc(t, dstB.Listen, []string{"v=" + volA})
	MustAimwan(t, "src", "init", "--control", srcA.Control, "--buffer", srcA.Buffer, "--volume", "v", "--delta")
	waitReplicated(t, srcA, dstB)
	SameFile(t, volA, volB)
	srcA.Stop()
	dstB.Stop()
	tail := changeBlocks(t, volA, 0.5, 21) // A's writes that never reached B
	atDR := changeBlocks(t, volB, 1, 22)   // written at B after the failover

	dstA := StartDst(t, []string{"v=" + volA}) // roles swapped: new buffers, A's image
	srcB := StartSrc(t, dstA.Listen, []string{"v=" + volB})
	MustAimwan(t, "src", "init", "--control", srcB.Control, "--buffer", srcB.Buffer, "--volume", "v", "--delta")
	waitReplicated(t, srcB, dstA)
	SameFile(t, volA, volB)
	in := srcB.Status(t).Volumes[0].Init
	pushed := int64(srcB.Status(t).Volumes[0].BytesPushed)
	t.Logf("failback: %d bytes changed at A (unreplicated) and %d at B; journaled %d, checksums %d, pushed %d bytes (%.2f%%)",
		tail, atDR, in.Journaled, in.ChecksumBytes, pushed, 100*float64(pushed)/size)
	if pushed > 2*(tail+atDR)+in.ChecksumBytes {
		t.Fatalf("failback pushed %d bytes for %d changed", pushed, tail+atDR)
	}
}
