package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// readSamples reads a recording back, failing the test on any line that is
// not a whole sample (the recorder never leaves one behind).
func readSamples(t *testing.T, path string) []Sample {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []Sample
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var s Sample
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("%s line %d: %v", path, i+1, err)
		}
		out = append(out, s)
	}
	return out
}

// fakeClock hands out times one second apart, starting at base.
type fakeClock struct {
	base time.Time
	n    int
}

func (c *fakeClock) Now() time.Time {
	t := c.base.Add(time.Duration(c.n) * time.Second)
	c.n++
	return t
}

func TestRecorderSamples(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		reg := prometheus.NewRegistry()
		wire := prometheus.NewCounter(prometheus.CounterOpts{Name: "aimwan_proxy_wire_bytes_total", Help: "h"})
		data := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aimwan_src_data_bytes", Help: "h"}, []string{"volume"})
		lat := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "aimwan_push_seconds", Help: "h"})
		capG := prometheus.NewGauge(prometheus.GaugeOpts{Name: "aimwan_proxy_schedule_cap_bytes_per_second", Help: "h"})
		reg.MustRegister(wire, data, lat, capG)
		capG.Set(math.Inf(1))

		ticks := make(chan time.Time)
		stopped := false
		clock := &fakeClock{base: time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)}
		rec, err := NewRecorder(RecorderConfig{
			Dir: dir, Daemon: "proxy-a", Gatherer: reg, Now: clock.Now,
			NewTicker: func(d time.Duration) (<-chan time.Time, func()) {
				if d != time.Second {
					t.Errorf("interval %v, want 1s", d)
				}
				return ticks, func() { stopped = true }
			},
			Registerer: reg,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- rec.Serve(ctx) }()
		synctest.Wait() // first sample taken at once
		for i := 1; i <= 3; i++ {
			wire.Add(1000)
			data.WithLabelValues("vm1").Set(float64(i * 4096))
			lat.Observe(0.5)
			ticks <- time.Time{}
			synctest.Wait()
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Serve: %v", err)
		}
		if !stopped {
			t.Error("ticker not stopped")
		}

		if want := filepath.Join(dir, "proxy-a.jsonl"); rec.Path() != want {
			t.Errorf("recording at %s, want %s", rec.Path(), want)
		}
		got := readSamples(t, rec.Path())
		if len(got) != 5 { // start + 3 ticks + final
			t.Fatalf("%d samples, want 5", len(got))
		}
		for i, s := range got {
			if want := clock.base.Add(time.Duration(i) * time.Second); !s.Time.Equal(want) {
				t.Errorf("sample %d at %v, want %v", i, s.Time, want)
			}
		}
		last := got[4].Values
		checks := map[string]float64{
			"aimwan_proxy_wire_bytes_total":              3000,
			`aimwan_src_data_bytes{volume="vm1"}`:        3 * 4096,
			"aimwan_push_seconds_count":                  3,
			"aimwan_push_seconds_sum":                    1.5,
			"aimwan_recorder_samples_total":              4,
			"aimwan_proxy_schedule_cap_bytes_per_second": math.Inf(1),
		}
		for k, want := range checks {
			if v, ok := last[k]; !ok || v != want {
				t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
			}
		}
		if _, ok := got[0].Values[`aimwan_src_data_bytes{volume="vm1"}`]; ok {
			t.Error("first sample has a series that did not exist yet")
		}
	})
}

func TestRecorderConfigErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	tests := []struct {
		name string
		cfg  RecorderConfig
		want string
	}{
		{"no dir", RecorderConfig{Daemon: "d", Gatherer: reg}, "no directory"},
		{"no daemon", RecorderConfig{Dir: "x", Gatherer: reg}, "daemon name"},
		{"bad daemon", RecorderConfig{Dir: "x", Daemon: "a/b", Gatherer: reg}, "daemon name"},
		{"no gatherer", RecorderConfig{Dir: "x", Daemon: "d"}, "no gatherer"},
		{"negative interval", RecorderConfig{Dir: "x", Daemon: "d", Gatherer: reg, Interval: -time.Second}, "negative interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRecorder(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestRecorderOpenFails(t *testing.T) {
	dir := t.TempDir()
	rec, err := NewRecorder(RecorderConfig{Dir: filepath.Join(dir, "f", "\x00"), Daemon: "d", Gatherer: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Serve(t.Context()); err == nil {
		t.Fatal("Serve on an impossible path: no error")
	}
}

func TestRecorderMetricsLint(t *testing.T) {
	rec, err := NewRecorder(RecorderConfig{Dir: "x", Daemon: "d", Gatherer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []prometheus.Collector{rec.samples, rec.errs} {
		problems, err := testutil.CollectAndLint(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("lint %s: %s", p.Metric, p.Text)
		}
	}
}

func TestRecorderSameNameRefused(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	newRec := func() *Recorder {
		r, err := NewRecorder(RecorderConfig{Dir: dir, Daemon: "proxy", Gatherer: reg, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ctx, cancel := context.WithCancel(t.Context())
	started := make(chan struct{})
	ticks := make(chan time.Time)
	first, err := NewRecorder(RecorderConfig{Dir: dir, Daemon: "proxy", Gatherer: reg, Logger: slog.New(slog.DiscardHandler),
		NewTicker: func(time.Duration) (<-chan time.Time, func()) { close(started); return ticks, func() {} }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- first.Serve(ctx) }()
	<-started // the file is open and locked once the ticker is made
	if err := newRec().Serve(t.Context()); !errors.Is(err, ErrRecordingInUse) {
		t.Errorf("second recorder under the same name: %v, want ErrRecordingInUse", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRecorderAfterTornLine: a daemon killed while appending a sample leaves
// a torn last line; after its restart the recording still loads (the torn
// sample is lost, nothing else).
func TestRecorderAfterTornLine(t *testing.T) {
	dir := t.TempDir()
	good := `{"time":"2026-11-22T06:00:00Z","values":{"a":1}}` + "\n"
	torn := `{"time":"2026-11-22T06:00:01Z","val`
	path := filepath.Join(dir, "dst.jsonl")
	if err := os.WriteFile(path, []byte(good+torn), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "a", Help: "h"}))
	rec, err := NewRecorder(RecorderConfig{Dir: dir, Daemon: "dst", Gatherer: reg,
		NewTicker: func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // one sample at start, one on the way out
	if err := rec.Serve(ctx); err != nil {
		t.Fatal(err)
	}
	got := readSamples(t, path) // every line whole: the torn one was cut off
	if len(got) != 3 {
		t.Fatalf("%d samples, want 3 (the one before the crash, two after)", len(got))
	}
}

func TestDropTornLine(t *testing.T) {
	long := strings.Repeat("x", 100<<10) // longer than one read block
	for _, c := range []struct{ name, in, want string }{
		{"empty", "", ""},
		{"complete", "a\nb\n", "a\nb\n"},
		{"torn", "a\nb", "a\n"},
		{"only torn", "b", ""},
		{"long torn", "a\n" + long, "a\n"},
		{"long complete then torn", long + "\nb", long + "\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r.jsonl")
			if err := os.WriteFile(path, []byte(c.in), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := dropTornLine(f); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(path); string(got) != c.want {
				t.Errorf("left %d bytes, want %d", len(got), len(c.want))
			}
		})
	}
}
