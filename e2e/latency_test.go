package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/aimwan/aimwan/aimdst"
	"github.com/aimwan/aimwan/aimsrc"
)

// volumeOf returns the source status of volume name.
func (s *SrcNode) volumeOf(t *testing.T, name string) aimsrc.VolumeStatus {
	t.Helper()
	for _, v := range s.Status(t).Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("src status has no volume %s", name)
	return aimsrc.VolumeStatus{}
}

// caughtUp waits until nothing of volume v waits at the source and the
// destination's Time Latency is under limit seconds.
func caughtUp(t *testing.T, src *SrcNode, dst *DstNode, limit float64, timeout time.Duration) (aimsrc.VolumeStatus, aimdst.VolumeStatus) {
	t.Helper()
	var sv aimsrc.VolumeStatus
	var dv aimdst.VolumeStatus
	Eventually(t, timeout, "Time Latency under the limit at both ends", func() (bool, error) {
		sv, dv = src.volumeOf(t, "v"), dst.Volume(t, "v")
		return sv.FilesWaiting == 0 && sv.TimeLatency < limit && !dv.CompleteUntil.IsZero() && dv.TimeLatency < limit, nil
	})
	return sv, dv
}

// TestTimeLatencyIdle: a caught-up volume that stays idle for a minute shows
// a Time Latency under 10 s at the destination and at the source, through the
// proxy pair, with the default heartbeat (5 s): the heartbeat files carry the
// watermark end to end. What the idle heartbeats cost on the WAN is logged.
func TestTimeLatencyIdle(t *testing.T) {
	NeedBins(t, "qemu-img")
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen.img")
	GenImage(t, gen, imgSize, 21)
	dst := StartDst(t, []string{"v=" + filepath.Join(dir, "dst-v.img") + ",create"})
	pp := StartProxyPair(t, dst.Listen, pairOpts{})
	src := StartSrc(t, pp.LAN, []string{"v=" + filepath.Join(dir, "src-v.img") + ",size=4MiB"})
	replicate(t, src, dst, gen, "s1")
	caughtUp(t, src, dst, 10, 60*time.Second)
	settle(t, pp)

	wireSrc0 := Metric(t, pp.SourceMetrics, "aimwan_proxy_wire_bytes_total")
	wireDst0 := Metric(t, pp.DestMetrics, "aimwan_proxy_wire_bytes_total")
	logical0 := Metric(t, pp.SourceMetrics, "aimwan_proxy_logical_bytes_total")
	hb0 := src.volumeOf(t, "v").Heartbeats
	start := time.Now()
	const idle = 60 * time.Second
	time.Sleep(idle) // the idleness under test: nothing is written for a minute
	sv, dv := src.volumeOf(t, "v"), dst.Volume(t, "v")
	elapsed := time.Since(start).Seconds()
	t.Logf("after %.0f s idle: dst Time Latency %.2f s (complete until %s, newest write %s), src Time Latency %.2f s, %d heartbeats",
		elapsed, dv.TimeLatency, dv.CompleteUntil.Format(time.RFC3339Nano), dv.NewestWrite.Format(time.RFC3339Nano), sv.TimeLatency, sv.Heartbeats-hb0)
	if dv.TimeLatency >= 10 || dv.CompleteUntil.IsZero() {
		t.Errorf("dst Time Latency %.2f s after a minute of idleness, want under 10 s", dv.TimeLatency)
	}
	if sv.TimeLatency >= 10 {
		t.Errorf("src Time Latency %.2f s after a minute of idleness, want under 10 s", sv.TimeLatency)
	}
	if age := time.Since(dv.NewestWrite).Seconds(); age < idle.Seconds() {
		t.Errorf("newest write %.0f s old: the volume was not idle", age)
	}
	if n := sv.Heartbeats - hb0; n < 8 || n > 14 {
		t.Errorf("%d heartbeats in %.0f s, want about one per 5 s", n, elapsed)
	}
	settle(t, pp)
	wireSrc := Metric(t, pp.SourceMetrics, "aimwan_proxy_wire_bytes_total") - wireSrc0
	wireDst := Metric(t, pp.DestMetrics, "aimwan_proxy_wire_bytes_total") - wireDst0
	logical := Metric(t, pp.SourceMetrics, "aimwan_proxy_logical_bytes_total") - logical0
	elapsed = time.Since(start).Seconds()
	t.Logf("idle heartbeat cost over %.0f s: journal bytes %.0f (%.1f B/s), WAN source->destination %.0f B (%.1f B/s), destination->source %.0f B (%.1f B/s)",
		elapsed, logical, logical/elapsed, wireSrc, wireSrc/elapsed, wireDst, wireDst/elapsed)
	if logical <= 0 || wireSrc <= 0 {
		t.Errorf("no heartbeat crossed the proxies: journal %.0f B, WAN %.0f B", logical, wireSrc)
	}
	if rate := (wireSrc + wireDst) / elapsed; rate > 1000 {
		t.Errorf("idle heartbeats cost %.0f B/s on the WAN, want well under 1 KB/s", rate)
	}
}

// TestTimeLatencyDestinationDown: Time Latency rises while the destination
// is unreachable and falls back once it is back: at the source while dst is
// stopped (the waiting heartbeat ages), and at the destination while the
// destination edge proxy is stopped (no watermark arrives), then both fall
// back under 10 s after the restart.
func TestTimeLatencyDestinationDown(t *testing.T) {
	NeedBins(t, "qemu-img")
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen.img")
	GenImage(t, gen, imgSize, 22)
	dst := StartDst(t, []string{"v=" + filepath.Join(dir, "dst-v.img") + ",create"})
	pp := StartProxyPair(t, dst.Listen, pairOpts{})
	src := StartSrc(t, pp.LAN, []string{"v=" + filepath.Join(dir, "src-v.img") + ",size=4MiB"}, "--heartbeat", "1s")
	replicate(t, src, dst, gen, "s1")
	sv, dv := caughtUp(t, src, dst, 5, 60*time.Second)
	t.Logf("caught up: src Time Latency %.2f s, dst %.2f s", sv.TimeLatency, dv.TimeLatency)

	// dst stopped: the source's view rises.
	dst.Stop()
	Eventually(t, 60*time.Second, "src Time Latency to rise while dst is down", func() (bool, error) {
		sv = src.volumeOf(t, "v")
		return sv.TimeLatency > 15, nil
	})
	t.Logf("dst down: src Time Latency %.2f s, %d file(s) waiting, ETA %.0f s", sv.TimeLatency, sv.FilesWaiting, sv.ETA)
	if sv.FilesWaiting > 2 {
		t.Errorf("%d files waiting while idle and dst down: heartbeats must not pile up", sv.FilesWaiting)
	}
	dst.Restart()
	sv, dv = caughtUp(t, src, dst, 10, 90*time.Second)
	t.Logf("dst back: src Time Latency %.2f s, dst %.2f s", sv.TimeLatency, dv.TimeLatency)

	// The destination edge stopped: dst stays up and its Time Latency rises.
	pp.Dest.Stop()
	Eventually(t, 60*time.Second, "dst Time Latency to rise while the destination edge is down", func() (bool, error) {
		dv = dst.Volume(t, "v")
		return dv.TimeLatency > 15, nil
	})
	sv = src.volumeOf(t, "v")
	t.Logf("destination edge down: dst Time Latency %.2f s, src %.2f s", dv.TimeLatency, sv.TimeLatency)
	if sv.TimeLatency < 5 {
		t.Errorf("src Time Latency %.2f s while nothing reaches dst", sv.TimeLatency)
	}
	pp.Dest.Restart()
	sv, dv = caughtUp(t, src, dst, 10, 90*time.Second)
	t.Logf("destination edge back: src Time Latency %.2f s, dst %.2f s", sv.TimeLatency, dv.TimeLatency)
	SameFile(t, filepath.Join(dir, "dst-v.img"), gen)
}
