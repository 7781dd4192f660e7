package aimsrc

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aimwan/aimwan/journal"
)

// markerRecords returns the marker records journaled for volume (the node
// must be closed: its open file sealed).
func markerRecords(t *testing.T, buffer, volume string) []journal.Record {
	t.Helper()
	dir := filepath.Join(buffer, volume)
	seqs, err := journal.ListSealed(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []journal.Record
	for _, seq := range seqs {
		f, err := journal.ReadFile(filepath.Join(dir, journal.FileName(seq)))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range f.Records {
			if r.Kind.IsMarker() {
				out = append(out, r)
			}
		}
	}
	return out
}

func labels(recs []journal.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Label)
	}
	return out
}

// schedNode is a source node whose schedules run (no NBD, no pushing) in a
// synctest bubble: its clock is the bubble's.
type schedNode struct {
	n      *Node
	cancel context.CancelFunc
	done   chan struct{}
}

func startSchedules(t *testing.T, cfg Config) *schedNode {
	t.Helper()
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &schedNode{n: n, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for _, sc := range n.cfg.Schedules {
			if err := n.serveSchedule(ctx, sc); err != nil {
				t.Error(err)
			}
		}
	}()
	return s
}

func (s *schedNode) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	<-s.done
	if err := s.n.Close(); err != nil {
		t.Fatal(err)
	}
}

func scheduleConfig(t *testing.T, dir string, every time.Duration) Config {
	cfg := testConfig(t, dir, VolumeConfig{Name: "v", Path: filepath.Join(dir, "v.img"), Size: 1 << 20})
	cfg.Schedules = []ScheduleConfig{{Volume: "v", Every: every}}
	return cfg
}

// TestScheduleAlignedNoCatchUp: under the bubble's fake clock (which starts
// at 2000-01-01 00:00 UTC), a 15-minute schedule started at 00:07 places
// markers at 00:15, 00:30, 00:45 and 01:00 — never one for the slot it
// started in. Stopped at 01:05 and started again at 01:40, it places the
// next at 01:45: no markers for 01:15 and 01:30 (no burst of catch-up).
// Started again with the clock set back 30 minutes, it repeats no label.
func TestScheduleAlignedNoCatchUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		cfg := scheduleConfig(t, dir, 15*time.Minute)
		time.Sleep(7 * time.Minute)
		s := startSchedules(t, cfg)
		time.Sleep(58 * time.Minute) // to 01:05
		synctest.Wait()
		if got := testutil.ToFloat64(s.n.schedMetric.WithLabelValues("v", SlotPlaced)); got != 4 {
			t.Errorf("placed %v markers by 01:05, want 4", got)
		}
		s.stop(t)
		time.Sleep(35 * time.Minute) // down until 01:40
		s = startSchedules(t, cfg)
		time.Sleep(10 * time.Minute) // to 01:50
		synctest.Wait()
		s.stop(t)

		back := cfg // the clock went back 30 minutes: 01:20 instead of 01:50
		back.Now = func() time.Time { return time.Now().Add(-30 * time.Minute) }
		s = startSchedules(t, back)
		time.Sleep(40 * time.Minute) // skewed clock 01:20 -> 02:00
		synctest.Wait()
		s.stop(t)

		want := []string{"auto-20000101-0015", "auto-20000101-0030", "auto-20000101-0045", "auto-20000101-0100",
			"auto-20000101-0145", "auto-20000101-0200"}
		recs := markerRecords(t, cfg.Buffer, "v")
		if got := labels(recs); !slices.Equal(got, want) {
			t.Fatalf("markers:\n got %v\nwant %v", got, want)
		}
		if r := recs[0]; r.Kind != journal.KindSnapshot || !r.Time.Equal(time.Date(2000, 1, 1, 0, 15, 0, 0, time.UTC)) {
			t.Errorf("first marker %+v: want a snapshot marker at 00:15:00", r)
		}
	})
}

// TestScheduleSkips: a slot is skipped (and counted) while the volume is
// initializing or not consistent (pull-ahead); the next slot after that
// places its marker again. Intervals in seconds get labels with seconds.
func TestScheduleSkips(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		s := startSchedules(t, scheduleConfig(t, dir, 10*time.Second))
		v := s.n.vols["v"]
		time.Sleep(10*time.Second + time.Millisecond) // 00:00:10 placed
		synctest.Wait()
		v.initJob.update(func(st *InitStatus) { st.Running = true })
		time.Sleep(10 * time.Second) // 00:00:20 skipped: initializing
		synctest.Wait()
		v.initJob.update(func(st *InitStatus) { st.Running = false })
		v.mu.Lock()
		v.pullAhead = true
		v.mu.Unlock()
		time.Sleep(10 * time.Second) // 00:00:30 skipped: pull-ahead
		synctest.Wait()
		v.mu.Lock()
		v.pullAhead = false
		v.mu.Unlock()
		time.Sleep(10 * time.Second) // 00:00:40 placed
		synctest.Wait()
		placed := testutil.ToFloat64(s.n.schedMetric.WithLabelValues("v", SlotPlaced))
		skipped := testutil.ToFloat64(s.n.schedMetric.WithLabelValues("v", SlotSkipped))
		s.stop(t)
		if placed != 2 || skipped != 2 {
			t.Errorf("placed %v, skipped %v; want 2 and 2", placed, skipped)
		}
		if got := labels(markerRecords(t, filepath.Join(dir, "buffer"), "v")); !slices.Equal(got,
			[]string{"auto-20000101-000010", "auto-20000101-000040"}) {
			t.Fatalf("markers %v", got)
		}
	})
}

// TestScheduleGroup: a group schedule places one group marker in every
// member, with the same label and group seq.
func TestScheduleGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		cfg := testConfig(t, dir, VolumeConfig{Name: "a", Path: filepath.Join(dir, "a.img"), Size: 1 << 20},
			VolumeConfig{Name: "b", Path: filepath.Join(dir, "b.img"), Size: 1 << 20})
		cfg.Groups = []GroupConfig{{Name: "app", Volumes: []string{"b", "a"}}}
		cfg.Schedules = []ScheduleConfig{{Group: "app", Every: time.Hour, Prefix: "hourly"}}
		s := startSchedules(t, cfg)
		time.Sleep(2*time.Hour + time.Second)
		synctest.Wait()
		s.stop(t)
		for _, vol := range []string{"a", "b"} {
			recs := markerRecords(t, cfg.Buffer, vol)
			if got := labels(recs); !slices.Equal(got, []string{"hourly-20000101-0100", "hourly-20000101-0200"}) {
				t.Fatalf("%s: markers %v", vol, got)
			}
			if recs[1].Group != "app" || recs[1].GroupSeq != 2 {
				t.Errorf("%s: marker %+v: want group app #2", vol, recs[1])
			}
		}
	})
}

func TestParseSchedule(t *testing.T) {
	cases := []struct {
		in   string
		want ScheduleConfig
		err  string
	}{
		{in: "db=15m", want: ScheduleConfig{Volume: "db", Every: 15 * time.Minute}},
		{in: "group:app=1h,prefix=hourly", want: ScheduleConfig{Group: "app", Every: time.Hour, Prefix: "hourly"}},
		{in: "db", err: "want VOLUME=EVERY"},
		{in: "db=often", err: `interval "often"`},
		{in: "db=15m,keep=3", err: "unknown option"},
		{in: "group:=1h", err: "wants a group name"},
	}
	for _, c := range cases {
		got, err := ParseSchedule(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseSchedule(%q): %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseSchedule(%q) = %+v, %v", c.in, got, err)
		}
	}
	dir := t.TempDir()
	for _, c := range []struct {
		sc  ScheduleConfig
		err string
	}{
		{ScheduleConfig{Volume: "x", Every: time.Minute}, `unknown volume "x"`},
		{ScheduleConfig{Group: "g", Every: time.Minute}, `unknown group "g"`},
		{ScheduleConfig{Volume: "v", Every: 500 * time.Millisecond}, "whole seconds"},
		{ScheduleConfig{Volume: "v", Every: 1500 * time.Millisecond}, "whole seconds"},
		{ScheduleConfig{Volume: "v", Every: time.Minute, Prefix: "a/b"}, `prefix "a/b"`},
		{ScheduleConfig{Volume: "v", Group: "g", Every: time.Minute}, "a volume or a group"},
	} {
		cfg := scheduleConfig(t, dir, time.Minute)
		cfg.Schedules = []ScheduleConfig{c.sc}
		if _, err := NewNode(cfg); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("schedule %+v: %v, want %q", c.sc, err, c.err)
		}
	}
	cfg := scheduleConfig(t, dir, time.Minute)
	cfg.Schedules = append(cfg.Schedules, cfg.Schedules[0])
	if _, err := NewNode(cfg); err == nil || !strings.Contains(err.Error(), "collide") {
		t.Errorf("two schedules with one prefix: %v", err)
	}
}

// FuzzParseSchedule: a parsed --schedule names exactly one target, a
// non-empty prefix when one is given, and its label at any time is the
// prefix and a timestamp.
func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"db=15m", "group:app=1h,prefix=hourly", "db", "=1m", "db=", "db=1m,prefix=", "group:=1m",
		"db=15m,keep=3", "db=-1m", "db=1m,prefix=a,prefix=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseSchedule(s)
		if err != nil {
			return
		}
		if (sc.Volume == "") == (sc.Group == "") {
			t.Fatalf("ParseSchedule(%q) = %+v: want one target", s, sc)
		}
		if strings.Contains(s, ",prefix=") && sc.Prefix == "" {
			t.Fatalf("ParseSchedule(%q) lost the prefix", s)
		}
		if l := sc.Label(time.Date(2026, 12, 2, 15, 4, 5, 0, time.UTC)); !strings.HasPrefix(l, sc.prefix()+"-20261202-1504") {
			t.Fatalf("label %q of %+v", l, sc)
		}
	})
}
