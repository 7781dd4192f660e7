package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/internal/testkit/journaltest"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// pushOne pushes one journal file (its bytes b, as file seq of volume) to
// dst's push listener at addr with src's pinned key (what a buggy or
// compromised source could send: mutual TLS lets it in, so journal identity
// is what must refuse it) and returns the verdict.
func pushOne(t *testing.T, addr, volume string, seq uint64, b []byte) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := push.Dial(ctx, addr, push.Hello{Node: "e2e-forger"}, Keys.Src.Auth(t, Keys.Dst))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.Push(ctx, push.FileOffer(volume, seq, b), bytes.NewReader(b))
}

// TestResetSourceRefused: a source node loses its buffer (wiped, as on a
// new host) and starts again on the same volume: its new journal stream
// pushes file 1 again with other contents. The destination refuses it
// (never acked, never destaged: the source keeps every file), both sides
// say so in status, the destination in its metrics, and the destination
// volume stays byte-identical. A full initialize then starts a stream the
// destination rebinds to (keeping a copy of the volume from before), and
// the destination volume equals the source image.
//
// It runs with src pushing to dst directly and through the proxy pair (the
// refusal's code and message cross both edges to the source's status).
func TestResetSourceRefused(t *testing.T) {
	NeedBins(t, "qemu-img")
	for _, via := range []string{"direct", "proxies"} {
		t.Run(via, func(t *testing.T) { testResetSource(t, via == "proxies") })
	}
}

func testResetSource(t *testing.T, viaProxies bool) {
	dir := t.TempDir()
	gen1, gen2 := filepath.Join(dir, "gen1.img"), filepath.Join(dir, "gen2.img")
	GenImage(t, gen1, imgSize, 21)
	GenImage(t, gen2, imgSize, 22)
	dstVol, srcImg := filepath.Join(dir, "dst-v.img"), filepath.Join(dir, "src-v.img")
	dst := StartDst(t, []string{"v=" + dstVol + ",create"})
	pushTo := dst.Listen
	if viaProxies {
		pushTo = StartProxyPair(t, dst.Listen, pairOpts{}).LAN
	}
	src := StartSrc(t, pushTo, []string{"v=" + srcImg + ",size=4MiB"})
	src.WriteImage(t, "v", gen1)
	src.Marker(t, "--volume", "v", "--snapshot", "s1")
	SameFile(t, dst.WaitSnapshot(t, "v", "s1", 60*time.Second), gen1)
	Eventually(t, 30*time.Second, "first stream destaged", func() (bool, error) {
		v := dst.Volume(t, "v")
		return v.FilesWaiting == 0 && v.Stream != "" && src.Status(t).Volumes[0].FilesWaiting == 0, nil
	})
	before := testkit.ReadFile(t, dstVol)
	bound := dst.Volume(t, "v").Stream

	src.Stop()
	if err := os.RemoveAll(src.Buffer); err != nil { // the source buffer is lost
		t.Fatal(err)
	}
	src.Restart()
	WaitPort(t, src.Control, src.Proc)
	src.WriteImage(t, "v", gen2)
	src.Marker(t, "--volume", "v", "--snapshot", "s2")
	Eventually(t, 60*time.Second, "the refusal at both ends", func() (bool, error) {
		sv, dv := src.Status(t).Volumes[0], dst.Volume(t, "v")
		return len(sv.RefusedFiles) > 0 && strings.Contains(sv.LastPushError, "src init --volume v") &&
			len(dv.Refused) > 0 && dv.Refused[0].Reason == "stream", nil
	})
	sv, dv := src.Status(t).Volumes[0], dst.Volume(t, "v")
	if sv.FilesWaiting == 0 || sv.Stream == bound || dv.Stream != bound || !strings.Contains(sv.LastPushError, "conflict") ||
		!strings.Contains(dv.LastError, "--delta") {
		t.Fatalf("after the refusal: src %+v, dst %+v", sv, dv)
	}
	if m := Scrape(t, dst.Metrics); m[`aimwan_dst_refused_files_total{reason="stream",volume="v"}`] == 0 {
		t.Fatal("the refusal is not in the destination's metrics")
	}
	if got := testkit.ReadFile(t, dstVol); !bytes.Equal(got, before) {
		t.Fatalf("destination volume changed by the refused stream: %s", testkit.FirstDiff(before, got))
	}
	if FileExists(dst.Snapshot("v", "s2")) {
		t.Fatal("a snapshot of the refused stream exists")
	}

	MustAimwan(t, "src", "init", "--control", src.Control, "--buffer", src.Buffer, "--volume", "v")
	Eventually(t, 120*time.Second, "the initialize pushed and destaged", func() (bool, error) {
		sv, dv := src.Status(t).Volumes[0], dst.Volume(t, "v")
		return sv.FilesWaiting == 0 && sv.SrcDataBytes == 0 && !sv.Init.Running && dv.FilesWaiting == 0 &&
			dv.Stream == sv.Stream && strings.HasPrefix(dv.State, "idle"), nil
	})
	SameFile(t, dstVol, srcImg)
	SameFile(t, srcImg, gen2)
	dv = dst.Volume(t, "v")
	if dv.Previous == nil || dv.Previous.Stream != bound || dv.Previous.Snapshot == "" {
		t.Fatalf("previous binding not kept: %+v", dv.Previous)
	}
	if got := testkit.ReadFile(t, dv.Previous.Snapshot); !bytes.Equal(got, before) {
		t.Fatalf("the copy before the rebind: %s", testkit.FirstDiff(before, got))
	}
	if sv := src.Status(t).Volumes[0]; sv.FilesSuperseded == 0 || len(sv.RefusedFiles) != 0 || sv.LastPushError != "" {
		t.Fatalf("source after the initialize: %+v", sv)
	}
}

// forgedJournal writes 6 files of volume v (stream id fixed) with
// journal.Writer and returns their paths and the image they make.
func forgedJournal(t *testing.T, dir string, stream journal.StreamID, seed byte) ([]string, []byte) {
	t.Helper()
	const size = 1 << 20
	img := make([]byte, size)
	w, _, err := journal.OpenWriter(journal.WriterConfig{Dir: dir, Volume: "v", VolumeSize: size, MaxAge: time.Hour, Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		for j := range 4 {
			off := int64((i*4+j)*24<<10) % (size - 20<<10)
			data := bytes.Repeat([]byte{seed, byte(i), byte(j)}, 6<<10)
			if _, err := w.Write(off, data); err != nil {
				t.Fatal(err)
			}
			copy(img[off:], data)
		}
		if err := w.Seal(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var files []string
	for seq := uint64(1); seq <= 6; seq++ {
		files = append(files, filepath.Join(dir, journal.FileName(seq)))
	}
	return files, img
}

// TestForgedFilesRefused: pushed straight to dst, a file whose records jump
// to 10⁹ and a file of another journal stream are refused (push conflict,
// never acked), reported in status and metrics, and leave the destination
// volume byte-identical; the genuine files go on and the volume ends up as
// the source's.
func TestForgedFilesRefused(t *testing.T) {
	dir := t.TempDir()
	files, img := forgedJournal(t, filepath.Join(dir, "j"), journal.StreamID{1}, 'a')
	other, _ := forgedJournal(t, filepath.Join(dir, "other"), journal.StreamID{2}, 'b')
	vol := filepath.Join(dir, "dst-v.img")
	dst := StartDst(t, []string{"v=" + vol + ",create"})
	pushAll(t, dst.Listen, "v", files[:2], 1)
	Eventually(t, 30*time.Second, "files 1-2 destaged", func() (bool, error) { return dst.Volume(t, "v").DestagedFile == 2, nil })
	before := testkit.ReadFile(t, vol)

	jump := journaltest.Renumber(t, testkit.ReadFile(t, files[2]), 0, 1_000_000_000)
	if err := pushOne(t, dst.Listen, "v", 3, jump); !errors.Is(err, push.ErrConflict) || !strings.Contains(err.Error(), "do not follow") {
		t.Fatalf("cursor jump: %v, want a conflict", err)
	}
	if err := pushOne(t, dst.Listen, "v", 3, testkit.ReadFile(t, other[2])); !errors.Is(err, push.ErrConflict) ||
		!strings.Contains(err.Error(), "replicates stream") {
		t.Fatalf("file of another stream: %v, want a conflict", err)
	}
	if err := pushOne(t, dst.Listen, "v", 1, testkit.ReadFile(t, other[0])); !errors.Is(err, push.ErrConflict) {
		t.Fatalf("file 1 of another stream (destaged number, other contents): %v, want a conflict", err)
	}
	if got := testkit.ReadFile(t, vol); !bytes.Equal(got, before) {
		t.Fatalf("destination volume changed by refused files: %s", testkit.FirstDiff(before, got))
	}
	v := dst.Volume(t, "v") // the newest refusal per file number
	if len(v.Refused) != 2 || v.Refused[1].File != 3 || v.Refused[1].Count != 2 || v.Refused[0].Reason != "stream" ||
		v.DestagedFile != 2 || v.FilesWaiting != 0 {
		t.Fatalf("status after the forged files: %+v", v)
	}
	m := Scrape(t, dst.Metrics)
	if m[`aimwan_dst_refused_files_total{reason="sequence",volume="v"}`] != 1 || m[`aimwan_dst_refused_files_total{reason="stream",volume="v"}`] == 0 {
		t.Fatalf("refusal metrics: %v", m)
	}
	pushAll(t, dst.Listen, "v", files[2:], 2)
	Eventually(t, 30*time.Second, "every genuine file destaged", func() (bool, error) { return dst.Volume(t, "v").DestagedFile == 6, nil })
	want := filepath.Join(dir, "want.img")
	os.WriteFile(want, img, 0o600)
	SameFile(t, vol, want)
}

// TestDstGroupMarkerWithoutConfig: the destination runs without --group;
// the group marker names its members, so both snapshots are taken, at the
// marker.
func TestDstGroupMarkerWithoutConfig(t *testing.T) {
	NeedBins(t, "qemu-img")
	dir := t.TempDir()
	genA, genB := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	GenImage(t, genA, imgSize, 16)
	GenImage(t, genB, imgSize, 17)
	dst := StartDst(t, []string{"a=" + filepath.Join(dir, "dst-a.img") + ",create", "b=" + filepath.Join(dir, "dst-b.img") + ",create"})
	src := StartSrc(t, dst.Listen, []string{"a=" + filepath.Join(dir, "src-a.img") + ",size=4MiB",
		"b=" + filepath.Join(dir, "src-b.img") + ",size=4MiB"}, "--group", "g=a,b")
	src.WriteImage(t, "a", genA)
	src.WriteImage(t, "b", genB)
	src.Marker(t, "--group", "g", "--snapshot", "gs")
	SameFile(t, dst.WaitSnapshot(t, "a", "gs", 60*time.Second), genA)
	SameFile(t, dst.WaitSnapshot(t, "b", "gs", 60*time.Second), genB)
	if errs := dst.Status(t).GroupErrors; len(errs) != 0 {
		t.Fatalf("group errors: %+v", errs)
	}
}

// TestDstGroupMemberMissingReported: the group names a member the
// destination does not hold; the group point is taken on the member it
// holds and the missing one is reported in status and metrics.
func TestDstGroupMemberMissingReported(t *testing.T) {
	NeedBins(t, "qemu-img")
	dir := t.TempDir()
	genA := filepath.Join(dir, "a.img")
	GenImage(t, genA, imgSize, 18)
	dst := StartDst(t, []string{"a=" + filepath.Join(dir, "dst-a.img") + ",create"})
	src := StartSrc(t, dst.Listen, []string{"a=" + filepath.Join(dir, "src-a.img") + ",size=4MiB",
		"b=" + filepath.Join(dir, "src-b.img") + ",size=4MiB"}, "--group", "g=a,b")
	src.WriteImage(t, "a", genA)
	src.Marker(t, "--group", "g", "--snapshot", "gs")
	SameFile(t, dst.WaitSnapshot(t, "a", "gs", 60*time.Second), genA)
	Eventually(t, 30*time.Second, "the missing member reported", func() (bool, error) {
		errs := dst.Status(t).GroupErrors
		return len(errs) > 0 && errs[0].Reason == "member-missing" && strings.Contains(errs[0].Error, "b"), nil
	})
	if m := Scrape(t, dst.Metrics); m[`aimwan_dst_group_errors_total{group="g",reason="member-missing"}`] == 0 {
		t.Fatal("the missing member is not in the metrics")
	}
	// The source hears of volume b's refusal (unknown at the destination).
	Eventually(t, 30*time.Second, "b's files refused at the source", func() (bool, error) {
		for _, v := range src.Status(t).Volumes {
			if v.Name == "b" && len(v.RefusedFiles) > 0 && strings.Contains(v.LastPushError, "unknown") {
				return true, nil
			}
		}
		return false, nil
	})
}
