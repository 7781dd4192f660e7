package aimdst

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
)

// TestTimeLatencyWatermark: Time Latency is now minus the watermark of the
// newest destaged record. A write sets it; a heartbeat file (one watermark
// record, nothing applied) moves it forward on an idle volume, so a caught-up
// volume shows about 0 however long it has been idle; a file not yet
// destaged does not count. Markers set the last marker and snapshot times,
// and a group's latency is its most behind member's.
func TestTimeLatencyWatermark(t *testing.T) {
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	clock := t0
	dir := t.TempDir()
	w, _, err := journal.OpenWriter(journal.WriterConfig{Dir: dir, Volume: "vol", VolumeSize: 1 << 20,
		Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	step := func(d time.Duration) { clock = clock.Add(d) }
	if _, err := w.Write(0, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	step(time.Second)
	if _, err := w.Marker(journal.Record{Kind: journal.KindSnapshot, Label: "s1"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	step(time.Hour) // idle for an hour, then a heartbeat
	if ok, err := w.Heartbeat(); !ok || err != nil {
		t.Fatalf("heartbeat: %v %v", ok, err)
	}
	hb := clock
	step(5 * time.Second)
	if ok, err := w.Heartbeat(); !ok || err != nil {
		t.Fatalf("heartbeat: %v %v", ok, err)
	}
	files := []string{filepath.Join(dir, journal.FileName(1)), filepath.Join(dir, journal.FileName(2)), filepath.Join(dir, journal.FileName(3))}

	var now time.Time
	tn := newTestNode(t, func(c *Config) {
		c.Now = func() time.Time { return now }
		c.Groups = map[string][]string{"g": {"vol"}}
	})
	now = t0
	if st := tn.n.Status(); st.Volumes[0].TimeLatency != 0 || !st.Volumes[0].CompleteUntil.IsZero() {
		t.Fatalf("before the first file: %+v", st.Volumes[0])
	}
	deliverAll(t, tn.n, "vol", files[:2])
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	deliverAll(t, tn.n, "vol", files[2:]) // received, not destaged
	now = hb.Add(2 * time.Second)
	st := tn.n.Status()
	vs := st.Volumes[0]
	if !vs.CompleteUntil.Equal(hb) || vs.TimeLatency != 2 {
		t.Errorf("after the heartbeat: complete until %v (want %v), Time Latency %v (want 2)", vs.CompleteUntil, hb, vs.TimeLatency)
	}
	if !vs.NewestWrite.Equal(t0) {
		t.Errorf("newest write %v, want %v", vs.NewestWrite, t0)
	}
	if vs.LastSnapshot != "s1" || !vs.LastSnapshotTime.Equal(t0.Add(time.Second)) || !vs.LastMarkerTime.Equal(t0.Add(time.Second)) {
		t.Errorf("last snapshot %q at %v, marker at %v", vs.LastSnapshot, vs.LastSnapshotTime, vs.LastMarkerTime)
	}
	if got := testkit.ReadFile(t, tn.volPath); len(got) < 5 || string(got[:5]) != "hello" {
		t.Errorf("volume holds %q", got)
	}
	if len(st.Groups) != 1 || st.Groups[0].Group != "g" || st.Groups[0].TimeLatency != 2 || !st.Groups[0].CompleteUntil.Equal(hb) {
		t.Errorf("groups %+v", st.Groups)
	}
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	now = hb.Add(6 * time.Second)
	if vs := tn.n.Status().Volumes[0]; vs.TimeLatency != 1 || vs.DestagedFile != 3 {
		t.Errorf("after the second heartbeat: %+v", vs)
	}
	// A restart keeps the watermark (it is in the cursor).
	n2, err := NewNode(tn.cfg)
	if err != nil {
		t.Fatal(err)
	}
	n2.cfg.Now = func() time.Time { return now }
	if vs := n2.Status().Volumes[0]; vs.TimeLatency != 1 || vs.LastSnapshot != "s1" {
		t.Errorf("after a restart: %+v", vs)
	}
}

// TestLatencyClamp: a source clock ahead of the destination's gives 0, not
// a negative latency; unset is 0.
func TestLatencyClamp(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, c := range []struct {
		t    time.Time
		want float64
	}{{time.Time{}, 0}, {now.Add(time.Second), 0}, {now.Add(-1500 * time.Millisecond), 1.5}} {
		if got := latency(now, c.t); got != c.want {
			t.Errorf("latency(%v) = %v, want %v", c.t, got, c.want)
		}
	}
}
