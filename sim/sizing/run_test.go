package sizing

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/aimwan/aimwan/transport"
)

const kB = 1000

// burstHour writes rate bytes/s during hour 0 of each day, nothing else.
func burstHour(name string, rate float64) Volume {
	v := Volume{Name: name}
	v.Hourly[0] = rate * 3600
	return v
}

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.6g, want %.6g ± %.3g", what, got, want, tol)
	}
}

// Hand-computed cases; steps of 1 s, a 3 h run from Monday 00:00 UTC.
func TestRunHandComputed(t *testing.T) {
	base := Model{Duration: 3 * time.Hour, Step: time.Second, Samples: 100}
	t.Run("line faster than writes: no backlog", func(t *testing.T) {
		m := base
		m.Rate, m.Volumes = 250*kB, []Volume{burstHour("a", 100*kB)}
		r := mustRun(t, m)
		near(t, "peak backlog", r.PeakBacklog, 0, 1)
		near(t, "max latency", r.MaxLatency, 0, 0)
	})
	t.Run("writes at twice the line for an hour", func(t *testing.T) {
		// 500 kB/s for 3600 s over a 250 kB/s line: backlog grows 250 kB/s to
		// 900 MB at 1 h, drains by 2 h (catch-up 3600 s). Sent by time t:
		// 250t kB = what was written by t/2, so Time Latency is t/2: 1800 s
		// at 1 h, 3599.5 s one step before the backlog is empty.
		m := base
		m.Rate, m.Volumes = 250*kB, []Volume{burstHour("a", 500*kB)}
		r := mustRun(t, m)
		near(t, "peak backlog", r.PeakBacklog, 900e6, 1)
		near(t, "peak at", r.PeakAt, 3600, 0)
		near(t, "catch-up", r.CatchUp, 3600, 0)
		near(t, "max latency", r.MaxLatency, 3599.5, 0.01)
		near(t, "max latency at", r.Volumes[0].MaxLatencyAt, 7199, 0)
		near(t, "final backlog", r.Volumes[0].FinalBacklog, 0, 1)
		if r.Overflow != 0 || r.FirstOverflow != -1 {
			t.Errorf("overflow %v at %v, want none", r.Overflow, r.FirstOverflow)
		}
		s := r.Samples[len(r.Samples)-1]
		near(t, "last sample time", s.T, 3*3600, 0)
	})
	t.Run("data reduction 2 doubles the line", func(t *testing.T) {
		m := base
		m.Rate, m.Reduction, m.Volumes = 250*kB, 2, []Volume{burstHour("a", 500*kB)}
		r := mustRun(t, m)
		near(t, "peak backlog", r.PeakBacklog, 0, 1)
	})
	t.Run("cross traffic takes its share", func(t *testing.T) {
		// 250 − 70 = 180 kB/s left; writes 250 kB/s for 1 h: backlog 70 kB/s
		// × 3600 = 252 MB, drained in 252e6 / 180e3 = 1400 s.
		m := base
		m.Rate, m.Volumes = 250*kB, []Volume{burstHour("a", 250*kB)}
		for h := range m.CrossHourly {
			m.CrossHourly[h] = 70 * kB
		}
		r := mustRun(t, m)
		near(t, "peak backlog", r.PeakBacklog, 252e6, 1)
		near(t, "catch-up", r.CatchUp, 1400, 1)
	})
	t.Run("buffer overflows", func(t *testing.T) {
		// Backlog grows 250 kB/s; a 500 MB buffer fills at 2000 s; 400 MB
		// do not fit by 1 h.
		m := base
		m.Rate, m.Buffer, m.Volumes = 250*kB, 500e6, []Volume{burstHour("a", 500*kB)}
		r := mustRun(t, m)
		near(t, "peak backlog", r.PeakBacklog, 500e6, 1)
		near(t, "first overflow", r.FirstOverflow, 2001, 1)
		near(t, "overflow", r.Overflow, 400e6, 250*kB+1)
	})
	t.Run("two volumes share the line equally", func(t *testing.T) {
		// a writes 200 kB/s, b 50 kB/s during hour 0, line 200 kB/s: b gets
		// all it needs (50), a gets 150: only a builds a backlog, 50 kB/s ×
		// 3600 = 180 MB.
		m := base
		m.Rate, m.Volumes = 200*kB, []Volume{burstHour("a", 200*kB), burstHour("b", 50*kB)}
		r := mustRun(t, m)
		near(t, "a peak", r.Volumes[0].PeakBacklog, 180e6, 1)
		near(t, "b peak", r.Volumes[1].PeakBacklog, 0, 1)
	})
	t.Run("schedule pauses the line", func(t *testing.T) {
		// Paused 00:00-01:00, writes 100 kB/s all the time on a 250 kB/s
		// line: 360 MB at 1 h, then drains at 150 kB/s: 2400 s. The oldest
		// write waits the whole hour: Time Latency 3600 s at 1 h.
		s, err := transport.ParseSchedule("timezone UTC\n* 00:00-01:00 paused")
		if err != nil {
			t.Fatal(err)
		}
		m := base
		v := Volume{Name: "a"}
		for h := range v.Hourly {
			v.Hourly[h] = 100 * kB * 3600
		}
		m.Rate, m.Schedule, m.Volumes = 250*kB, s, []Volume{v}
		r := mustRun(t, m)
		near(t, "peak backlog", r.PeakBacklog, 360e6, 1)
		near(t, "catch-up", r.CatchUp, 2400, 1)
		near(t, "latency at 1 h", r.Volumes[0].MaxLatency, 3600, 1)
	})
	t.Run("initial backlog and a burst", func(t *testing.T) {
		// 100 MB to initialize, then 50 MB at 1 h, no other writes, 250 kB/s:
		// empty at 400 s; the burst empty 200 s after 1 h.
		m := base
		m.Rate = 250 * kB
		m.Volumes = []Volume{{Name: "a", Initial: 100e6, Bursts: []Burst{{At: time.Hour, Bytes: 50e6}}}}
		r := mustRun(t, m)
		near(t, "peak backlog", r.PeakBacklog, 100e6-250*kB, 1)
		near(t, "catch-up from the peak", r.CatchUp, 399, 0)
		near(t, "written", r.Volumes[0].Written, 150e6, 1)
		near(t, "latency of the initial data", r.Volumes[0].MaxLatency, 399, 1)
	})
}

func TestWeekend(t *testing.T) {
	v := Volume{Name: "a", Weekend: 0.5}
	for h := range v.Hourly {
		v.Hourly[h] = 3600
	}
	sat := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	mon := time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)
	if got := v.writeRate(sat); got != 0.5 {
		t.Errorf("saturday rate %v, want 0.5", got)
	}
	if got := v.writeRate(mon); got != 1 {
		t.Errorf("monday rate %v, want 1", got)
	}
	v.WeekendOff = true
	if got := v.writeRate(sat); got != 0 {
		t.Errorf("saturday rate with weekend off %v, want 0", got)
	}
}

func TestSweep(t *testing.T) {
	// 500 kB/s for an hour a day over a line of r < 500 kB/s: the backlog
	// empties at T = 3600·500/r, and Time Latency, t·(1 − r/500), is largest
	// then: 3600·(500/r − 1). An RPO of 15 min needs 500/r ≤ 1.25: r ≥ 400.
	m := Model{Duration: 6 * time.Hour, Step: 10 * time.Second, Volumes: []Volume{burstHour("a", 500*kB)}}
	rates := []float64{500 * kB, 250 * kB, 400 * kB, 375 * kB, 300 * kB}
	res, err := Sweep(m, rates, []NamedSchedule{{Name: "none"}}, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Needed["none"]; got != 400*kB {
		t.Errorf("needed rate %v, want 400000", got)
	}
	if len(res.Rows) != len(rates) || res.Rows[0].Rate != 250*kB || res.Rows[0].MeetsRPO {
		t.Errorf("rows %+v: want 5, sorted by rate, the slowest failing", res.Rows)
	}
	if _, err := Sweep(m, nil, []NamedSchedule{{Name: "none"}}, time.Minute); !errors.Is(err, ErrBadModel) {
		t.Errorf("sweep without rates: %v, want ErrBadModel", err)
	}
}

func TestModelErrors(t *testing.T) {
	ok := Model{Rate: 1, Volumes: []Volume{{Name: "a"}}}
	cases := []struct {
		name string
		mod  func(m *Model)
	}{
		{"no rate", func(m *Model) { m.Rate = 0 }},
		{"no volumes", func(m *Model) { m.Volumes = nil }},
		{"reduction below 1", func(m *Model) { m.Reduction = 0.5 }},
		{"negative change", func(m *Model) { m.Volumes[0].Hourly[3] = -1 }},
		{"step longer than the run", func(m *Model) { m.Duration, m.Step = time.Minute, time.Hour }},
		{"unnamed volume", func(m *Model) { m.Volumes[0].Name = "" }},
		{"negative buffer", func(m *Model) { m.Buffer = -1 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := ok
			m.Volumes = []Volume{{Name: "a"}}
			c.mod(&m)
			if _, err := Run(m); !errors.Is(err, ErrBadModel) {
				t.Fatalf("Run = %v, want ErrBadModel", err)
			}
		})
	}
}

func mustRun(t *testing.T, m Model) *Result {
	t.Helper()
	r, err := Run(m)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return r
}
