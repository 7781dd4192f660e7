package aimsrc

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// heartbeatFiles counts the files of volume the fake destination holds that
// are heartbeat files (one watermark record).
func heartbeatFiles(t *testing.T, d *fakeDst, volume string) int {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for name, b := range d.files[volume] {
		f, err := journal.Parse(name, b)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Records) == 1 && f.Records[0].Kind == journal.KindWatermark {
			n++
		}
	}
	return n
}

// TestHeartbeatAndLatency: an idle, caught-up volume seals heartbeat files
// (one per interval, only when nothing waits) and its source-side Time
// Latency stays about 0; while the far end refuses everything one heartbeat
// waits (not one per interval) and Time Latency grows with its age; when the
// far end is back it falls to about 0 again. Rate and ETA follow the acks.
func TestHeartbeatAndLatency(t *testing.T) {
	const size = 4 << 20
	dir := t.TempDir()
	vc := VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: size}
	cfg := testConfig(t, dir, vc)
	cfg.FileAge = 50 * time.Millisecond
	cfg.Heartbeat = 300 * time.Millisecond
	cfg.RetryMax = 50 * time.Millisecond
	var down atomic.Bool
	dst := newFakeDst()
	dst.fail = func(push.Offer, int) error {
		if down.Load() {
			return push.ErrUnavailable
		}
		return nil
	}
	cfg.Push = serveFakeDst(t, dst)
	n, _ := runNode(t, cfg)
	writeSome(t, n, "v1", 20, 1)
	testkit.WaitFor(t, 20*time.Second, "heartbeats after the writes", func() bool {
		return heartbeatFiles(t, dst, "v1") >= 2
	})
	st := n.Status().Volumes[0]
	if st.Heartbeats < 2 || st.Rate <= 0 {
		t.Errorf("after heartbeats: heartbeats %d, rate %v", st.Heartbeats, st.Rate)
	}
	testkit.WaitFor(t, 10*time.Second, "caught up", func() bool {
		st := n.Status().Volumes[0]
		return st.FilesWaiting == 0 && st.TimeLatency == 0 && st.ETA == 0
	})

	down.Store(true)
	testkit.WaitFor(t, 20*time.Second, "Time Latency grows while the far end is down", func() bool {
		return n.Status().Volumes[0].TimeLatency > 1.5
	})
	st = n.Status().Volumes[0]
	if st.FilesWaiting != 1 {
		t.Errorf("while down: %d files waiting, want 1 (one heartbeat, not one per interval)", st.FilesWaiting)
	}
	if st.ETA <= 0 && st.Rate > 0 || st.ETA == 0 {
		t.Errorf("while down: ETA %v with rate %v and %d bytes waiting", st.ETA, st.Rate, st.SrcDataBytes)
	}
	down.Store(false)
	testkit.WaitFor(t, 20*time.Second, "Time Latency falls back", func() bool {
		st := n.Status().Volumes[0]
		return st.FilesWaiting == 0 && st.TimeLatency == 0
	})
	dst.checkReplica(t, "v1", vc.Path, size)
}

// TestHeartbeatOff: a negative interval seals no heartbeat files.
func TestHeartbeatOff(t *testing.T) {
	dir := t.TempDir()
	vc := VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: 1 << 20}
	cfg := testConfig(t, dir, vc)
	cfg.FileAge = 20 * time.Millisecond
	cfg.Heartbeat = -1
	n, _ := runNode(t, cfg)
	v := n.vols["v1"]
	v.mu.Lock()
	v.opened = time.Now().Add(-time.Hour)
	v.mu.Unlock()
	if err := v.sealOld(); err != nil {
		t.Fatal(err)
	}
	if st := n.Status().Volumes[0]; st.Heartbeats != 0 || st.FilesWaiting != 0 {
		t.Fatalf("heartbeat with heartbeats off: %+v", st)
	}
}
