package sizing

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFromBenchMatchesMeasuredRuns: the model's prediction for each real
// bench run under testdata/bench-* (recorded by `aimwan bench`, trimmed by
// testdata/trim_bench.py) is within 10% of the measured peak Src Data and
// final Time Latency.
func TestFromBenchMatchesMeasuredRuns(t *testing.T) {
	dirs, err := filepath.Glob("testdata/bench-*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no bench fixtures: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			v, err := FromBench(dir)
			if err != nil {
				t.Fatal(err)
			}
			// The fixtures were recorded before heartbeats, when dst's Time
			// Latency was now minus the newest destaged write: while data
			// waits that trails the age of the oldest unreplicated write
			// (the model's) by up to a file age (2 s) and a recording
			// interval (1 s). So the worst Time Latency agrees within 10 %
			// or those 3 s.
			for name, f := range map[string]Figure{"peak Src Data": v.PeakBacklog, "worst Time Latency": v.MaxLatency} {
				t.Logf("%s: predicted %.4g, measured %.4g (%+.1f%%)", name, f.Predicted, f.Measured, 100*f.Error)
				if f.Measured <= 0 {
					t.Errorf("%s: nothing measured", name)
				}
				slack := 0.0
				if name == "worst Time Latency" {
					slack = 3
				}
				if math.Abs(f.Error) > 0.10 && math.Abs(f.Predicted-f.Measured) > slack {
					t.Errorf("%s: predicted %.4g, measured %.4g: %+.1f%%, want within 10%%", name, f.Predicted, f.Measured, 100*f.Error)
				}
			}
		})
	}
}

// The scenario FromBench derives from the tiny run: the figures of its
// result.json and recordings.
func TestFromBenchScenario(t *testing.T) {
	v, err := FromBench("testdata/bench-tiny")
	if err != nil {
		t.Fatal(err)
	}
	m := v.Model
	if m.Rate != 250_000 || m.CrossHourly[0] != 70_000 || m.FileSize != 4<<20 || !m.StopWhenDrained {
		t.Errorf("line %v, cross %v, file size %v, stop when drained %v", m.Rate, m.CrossHourly[0], m.FileSize, m.StopWhenDrained)
	}
	if len(m.Volumes) != 3 {
		t.Fatalf("%d volumes, want 3", len(m.Volumes))
	}
	for i, vol := range m.Volumes {
		sum := 0.0
		for _, b := range vol.Bursts {
			sum += b.Bytes
			if b.Over > 1100*time.Millisecond {
				t.Errorf("%s: a burst spread over %v, more than a sample interval", vol.Name, b.Over)
			}
		}
		if sum != 8<<20 { // each clone is 8 MiB, thick
			t.Errorf("%s wrote %v bytes, want 8 MiB", vol.Name, sum)
		}
		// clone-1 and clone-2 in the pass-through phase, clone-3 in the optimized one
		if first := vol.Bursts[0].At.Seconds(); (i < 2) != (first < v.Phases[1].Start) {
			t.Errorf("%s first writes at %v; optimize starts at %vs", vol.Name, first, v.Phases[1].Start)
		}
	}
	if len(v.Phases) != 2 || v.Phases[0].Reduction != 1 || v.Phases[1].Reduction < 15 || v.Phases[1].Reduction > 25 {
		t.Errorf("phases %+v: want pass-through 1x, optimize about 20x", v.Phases)
	}
	if len(m.Restarts) != 1 || math.Abs(m.Restarts[0].Seconds()-v.Phases[1].Start) > 1e-6 {
		t.Errorf("restarts %v, want one at the optimize phase", m.Restarts)
	}
	if !v.Measured.Drained || v.Measured.PeakBacklog < 25e6 {
		t.Errorf("measured %+v", v.Measured)
	}
}

func TestFromBenchErrors(t *testing.T) {
	tiny, err := os.ReadFile("testdata/bench-tiny/result.json")
	if err != nil {
		t.Fatal(err)
	}
	phases, err := os.ReadFile("testdata/bench-tiny/phases.json")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("testdata/bench-tiny/src.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files map[string]string
	}{
		{"empty folder", map[string]string{}},
		{"no phases", map[string]string{"result.json": `{"line_kbps": 250}`, "src.jsonl": string(src), "dst.jsonl": string(src)}},
		{"no dst recording", map[string]string{"result.json": string(tiny), "phases.json": string(phases), "src.jsonl": string(src)}},
		{"bad result", map[string]string{"result.json": `{`, "phases.json": string(phases)}},
		{"no captured bytes", map[string]string{"result.json": string(tiny), "phases.json": string(phases),
			"src.jsonl": `{"time":"2026-11-22T07:05:01Z","metrics":{}}` + "\n", "dst.jsonl": `{"time":"2026-11-22T07:05:01Z","metrics":{}}` + "\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := FromBench(dir); !errors.Is(err, ErrBadBench) {
				t.Errorf("err %v, want ErrBadBench", err)
			}
		})
	}
	if _, err := FromBench(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, ErrBadBench) {
		t.Errorf("missing folder: err %v, want ErrBadBench", err)
	}
}

// The fixtures were line-bound (the premise of the 10% claim); a run whose
// line carried well under what it could gets a warning.
func TestFromBenchLineUse(t *testing.T) {
	for _, dir := range []string{"testdata/bench-tiny", "testdata/bench-small"} {
		v, err := FromBench(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range v.Phases {
			if p.LineUse < MinLineUse || p.LineUse > 1.05 {
				t.Errorf("%s phase %s: line use %.2f", dir, p.Name, p.LineUse)
			}
		}
		if len(v.Notes) != 0 {
			t.Errorf("%s: notes %q", dir, v.Notes)
		}
	}
	// The same run, told the line was twice as fast: it used under half.
	dir := t.TempDir()
	for _, name := range []string{"phases.json", "src.jsonl", "dst.jsonl", "link.jsonl", "proxy-src.jsonl", "result.json"} {
		b, err := os.ReadFile(filepath.Join("testdata/bench-tiny", name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "result.json" {
			b = bytes.Replace(b, []byte(`"rate_bytes_per_s": 250000`), []byte(`"rate_bytes_per_s": 430000`), 1)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v, err := FromBench(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Notes) != 2 || !strings.Contains(v.Notes[0], "not the line, was the bottleneck") {
		t.Errorf("notes %q, want one per phase", v.Notes)
	}
}

// Spreading each second's writes over it (the other reading of a 1 Hz
// recording) dates the tiny run's clones up to a second late: its final
// Time Latency comes out shorter.
func TestFromBenchSpreadIngest(t *testing.T) {
	asap, err := FromBench("testdata/bench-tiny")
	if err != nil {
		t.Fatal(err)
	}
	spread, err := FromBenchWith("testdata/bench-tiny", BenchOptions{SpreadIngest: true})
	if err != nil {
		t.Fatal(err)
	}
	d := asap.MaxLatency.Predicted - spread.MaxLatency.Predicted
	if d <= 0 || d > 1.1 {
		t.Errorf("worst Time Latency %v (at once) vs %v (spread): want the spread one shorter by up to a second",
			asap.MaxLatency.Predicted, spread.MaxLatency.Predicted)
	}
}
