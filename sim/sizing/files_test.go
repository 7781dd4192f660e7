package sizing

import (
	"errors"
	"testing"
	"time"

	"github.com/aimwan/aimwan/aimsrc"
	"github.com/aimwan/aimwan/journal"
)

const mib = 1 << 20

// burstAt0 is a volume that writes n bytes at once at the start.
func burstAt0(name string, n float64) Volume {
	return Volume{Name: name, Bursts: []Burst{{Bytes: n}}}
}

// Hand-computed cases of the file-granular model: a line of 1 MiB/s, files
// of 4 MiB, steps of 100 ms, stopping once drained.
func TestFilesHandComputed(t *testing.T) {
	base := Model{Duration: time.Minute, Step: 100 * time.Millisecond, Samples: 601, Rate: mib,
		FileSize: 4 * mib, StopWhenDrained: true}
	t.Run("files cross the line one after the other", func(t *testing.T) {
		// 8 MiB = 2 files, both offered, sent in order at 1 MiB/s: the first
		// leaves Src Data at 4 s, the second at 8 s. Time Latency (the age of
		// the oldest write not yet replicated, written at 0) is 7.9 s in the
		// last step before the drain, and 0 once everything is across.
		m := base
		m.Volumes = []Volume{burstAt0("a", 8*mib)}
		r := mustRun(t, m)
		near(t, "peak", r.PeakBacklog, 8*mib, 1)
		near(t, "backlog at 3.9 s", backlogAt(r, 3.9), 8*mib, 1)
		near(t, "backlog at 4 s", backlogAt(r, 4), 4*mib, 1)
		near(t, "end", r.End, 8, 1e-9)
		near(t, "final latency", r.Volumes[0].FinalLatency, 0, 1e-9)
		near(t, "max latency", r.MaxLatency, 7.9, 1e-9)
	})
	t.Run("the window lets a later volume in", func(t *testing.T) {
		// a: 12 MiB at 0 (3 files), b: 4 MiB at 1 s. Window 4: a's three
		// files are offered first, b's file is done at 16 s. Window 1: b's
		// file is offered at 1 s, before a's second (offered at 4 s): done
		// at 8 s: Time Latency 6.9 s in the step before, 0 from then on.
		vols := []Volume{burstAt0("a", 12*mib), {Name: "b", Bursts: []Burst{{At: time.Second, Bytes: 4 * mib}}}}
		m := base
		m.Volumes = vols
		r := mustRun(t, m)
		near(t, "window 4: b written by", r.Volumes[1].PeakAt, 1.1, 1e-9)
		near(t, "window 4: end", r.End, 16, 1e-9)
		near(t, "window 4: b's final latency", r.Volumes[1].FinalLatency, 0, 1e-9)
		near(t, "window 4: b's latency at 15.9 s", latencyAt(r, 1, 15.9), 14.9, 1e-9)
		m.Window = 1
		r = mustRun(t, m)
		near(t, "window 1: b's latency at 7.9 s", latencyAt(r, 1, 7.9), 6.9, 1e-9)
		near(t, "window 1: b's latency at 8 s", latencyAt(r, 1, 8), 0, 1e-9)
		near(t, "window 1: b's backlog at 8 s", r.Samples[79].Backlog[1], 0, 1)
		near(t, "window 1: b's backlog at 7.9 s", r.Samples[78].Backlog[1], 4*mib, 1)
	})
	t.Run("a restart loses the files in flight", func(t *testing.T) {
		// Window 1, restart at 3 s: the 3 MiB sent of the first file are
		// lost; it is done at 7 s, the second at 11 s.
		m := base
		m.Window, m.Restarts, m.Volumes = 1, []time.Duration{3 * time.Second}, []Volume{burstAt0("a", 8*mib)}
		r := mustRun(t, m)
		near(t, "backlog at 6.9 s", backlogAt(r, 6.9), 8*mib, 1)
		near(t, "backlog at 7 s", backlogAt(r, 7), 4*mib, 1)
		near(t, "end", r.End, 11, 1e-9)
	})
	t.Run("cross traffic and a reduction step", func(t *testing.T) {
		// Line 1 MiB/s − 0.5 MiB/s cross = 0.5 MiB/s; reduction 1 for 4 s
		// (2 MiB of the 4 MiB file), then 4: 2 MiB at 2 MiB/s = 1 s more.
		m := base
		m.Reductions = []ReductionStep{{From: 0, Reduction: 1}, {From: 4 * time.Second, Reduction: 4}}
		for h := range m.CrossHourly {
			m.CrossHourly[h] = mib / 2
		}
		m.Volumes = []Volume{burstAt0("a", 4*mib)}
		r := mustRun(t, m)
		near(t, "end", r.End, 5, 1e-9)
	})
	t.Run("age seals small files", func(t *testing.T) {
		// 100 kB/s of writes, files sealed every 2 s (200 kB) and pushed
		// at once: Src Data never above one file's worth and a step, Time
		// Latency never above the age and a step.
		m := base
		m.Duration, m.StopWhenDrained = 20*time.Second, false
		v := Volume{Name: "a"}
		for h := range v.Hourly {
			v.Hourly[h] = 100e3 * 3600
		}
		m.Volumes = []Volume{v}
		r := mustRun(t, m)
		near(t, "peak", r.PeakBacklog, 200e3, 10e3+1)
		if r.MaxLatency > 2.1+1e-9 || r.MaxLatency < 1.9 {
			t.Errorf("max latency %v, want about the 2 s age", r.MaxLatency)
		}
		near(t, "written", r.Volumes[0].Written, 2e6, 1)
	})
	t.Run("volumes take turns, file by file", func(t *testing.T) {
		// a: 8 MiB (2 files), b: 4 MiB (1 file), all offered at once:
		// a1, b1, a2 in turn, done at 4, 8 and 12 s.
		m := base
		m.Volumes = []Volume{burstAt0("a", 8*mib), burstAt0("b", 4*mib)}
		r := mustRun(t, m)
		near(t, "backlog at 4 s", backlogAt(r, 4), 8*mib, 1)
		near(t, "b's backlog at 8 s", r.Samples[79].Backlog[1], 0, 1)
		near(t, "a's backlog at 8 s", r.Samples[79].Backlog[0], 4*mib, 1)
		near(t, "end", r.End, 12, 1e-9)
	})
	t.Run("a burst spread over time", func(t *testing.T) {
		// 4 MiB written over [1 s, 3 s): the file is full at 3 s, its
		// oldest write at 1 s; window 4, line 1 MiB/s: done at 7 s, within
		// a step (a file sealed in a step is pushed from that step's start:
		// 6.9 s); Time Latency peaks just before at about 6 s, then 0.
		m := base
		m.Volumes = []Volume{{Name: "a", Bursts: []Burst{{At: time.Second, Over: 2 * time.Second, Bytes: 4 * mib}}}}
		r := mustRun(t, m)
		near(t, "end", r.End, 7, 0.1+1e-9)
		near(t, "final latency", r.Volumes[0].FinalLatency, 0, 1e-9)
		near(t, "max latency", r.MaxLatency, 5.8, 0.2+1e-9) // writes of a step are stamped within it
	})
}

// latencyAt returns volume v's Time Latency in the sample ending at t.
func latencyAt(r *Result, v int, t float64) float64 {
	for _, s := range r.Samples {
		if s.T > t-1e-9 && s.T < t+1e-9 {
			return s.Latency[v]
		}
	}
	return -1
}

// backlogAt returns the total Src Data of the sample ending at t.
func backlogAt(r *Result, t float64) float64 {
	for _, s := range r.Samples {
		if s.T > t-1e-9 && s.T < t+1e-9 {
			return s.Total
		}
	}
	return -1
}

func TestFilesBadModel(t *testing.T) {
	for name, m := range map[string]Model{
		"negative file size": {Rate: 1, FileSize: -1, Volumes: []Volume{{Name: "a"}}},
		"tiny file size":     {Rate: 1, FileSize: 0.3, Volumes: []Volume{{Name: "a"}}},
		"too many files":     {Rate: 1, FileSize: 4096, Volumes: []Volume{{Name: "a", Bursts: []Burst{{Bytes: 1e15}}}}},
		"negative window":    {Rate: 1, FileSize: 1, Window: -1, Volumes: []Volume{{Name: "a"}}},
		"reduction below 1":  {Rate: 1, Reductions: []ReductionStep{{Reduction: 0.5}}, Volumes: []Volume{{Name: "a"}}},
		"negative restart":   {Rate: 1, Restarts: []time.Duration{-time.Second}, Volumes: []Volume{{Name: "a"}}},
		"negative burst":     {Rate: 1, Volumes: []Volume{{Name: "a", Bursts: []Burst{{Over: -1, Bytes: 1}}}}},
	} {
		if _, err := Run(m); !errors.Is(err, ErrBadModel) {
			t.Errorf("%s: err %v, want ErrBadModel", name, err)
		}
	}
}

// The model's defaults are the chain's.
func TestFileDefaultsMatchTheChain(t *testing.T) {
	if DefaultWindow != aimsrc.DefaultPushWindow {
		t.Errorf("DefaultWindow %d, aimsrc.DefaultPushWindow %d", DefaultWindow, aimsrc.DefaultPushWindow)
	}
	if DefaultFileAge != journal.DefaultMaxAge {
		t.Errorf("DefaultFileAge %v, journal.DefaultMaxAge %v", DefaultFileAge, journal.DefaultMaxAge)
	}
	if BenchFileSize != journal.DefaultMaxFileSize {
		t.Errorf("BenchFileSize %d, journal.DefaultMaxFileSize %d", BenchFileSize, journal.DefaultMaxFileSize)
	}
}
