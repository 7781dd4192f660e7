package sizing

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrBadModel is wrapped by every error about a model's settings.
var ErrBadModel = errors.New("bad sizing model")

// RateSchedule caps the line rate by time of week; transport.Schedule
// implements it.
type RateSchedule interface {
	// RateAt returns the cap in bytes per second at t (+Inf: no cap, 0: paused).
	RateAt(t time.Time) float64
}

// Burst is a one-off write of Bytes at At from the start (a clone created,
// a volume initialized).
type Burst struct {
	At    time.Duration `json:"at"`
	Bytes float64       `json:"bytes"`
}

// Volume is one replicated volume's change profile.
type Volume struct {
	Name string `json:"name"`
	// Hourly is the bytes written in each hour of a weekday (0..23).
	Hourly [24]float64 `json:"hourly"`
	// Weekend multiplies Hourly on Saturday and Sunday. Zero means 1.
	Weekend float64 `json:"weekend"`
	// WeekendOff means no writes on Saturday and Sunday (overrides Weekend).
	WeekendOff bool `json:"weekend_off,omitempty"`
	// Initial is the backlog at the start (e.g. a volume being initialized).
	Initial float64 `json:"initial"`
	// Bursts are one-off writes.
	Bursts []Burst `json:"bursts,omitempty"`
}

// Model is one sizing scenario. Zero fields take defaults.
type Model struct {
	// Start is the virtual time of the start (matters for hourly profiles
	// and schedules). Default Monday 2026-01-05 00:00 UTC.
	Start time.Time
	// Duration simulated. Default 7 days.
	Duration time.Duration
	// Step of the model. Default 1 minute.
	Step time.Duration
	// Samples is the number of curve points kept. Default 2016 (every 5
	// minutes over a week).
	Samples int
	// Buffer is the source buffer size in bytes; 0 means unlimited.
	Buffer float64
	// Rate is the line rate in bytes per second (wire bytes).
	Rate float64
	// CrossHourly is the cross traffic in bytes per second per hour of day.
	CrossHourly [24]float64
	// Schedule caps the line rate by time of week; nil means no cap.
	Schedule RateSchedule
	// Reduction is logical bytes per wire byte (dedupe and compression).
	// Default 1 (no proxies).
	Reduction float64
	// Volumes replicated over the line.
	Volumes []Volume
}

func (m Model) withDefaults() Model {
	if m.Start.IsZero() {
		m.Start = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	}
	if m.Duration == 0 {
		m.Duration = 7 * 24 * time.Hour
	}
	if m.Step == 0 {
		m.Step = time.Minute
	}
	if m.Samples == 0 {
		m.Samples = 2016
	}
	if m.Reduction == 0 {
		m.Reduction = 1
	}
	vs := make([]Volume, len(m.Volumes))
	copy(vs, m.Volumes)
	for i := range vs {
		if vs[i].Weekend == 0 {
			vs[i].Weekend = 1
		}
	}
	m.Volumes = vs
	return m
}

func (m Model) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrBadModel}, a...)...)
	}
	switch {
	case m.Duration <= 0 || m.Step <= 0 || m.Step > m.Duration:
		return bad("duration %v and step %v must be positive, the step not longer", m.Duration, m.Step)
	case m.Duration/m.Step > 50_000_000:
		return bad("%v in steps of %v is more than 50 million steps", m.Duration, m.Step)
	case m.Samples < 2:
		return bad("samples %d: want at least 2", m.Samples)
	case !(m.Rate > 0):
		return bad("line rate %v must be positive", m.Rate)
	case !(m.Reduction >= 1) || math.IsInf(m.Reduction, 1):
		return bad("data reduction %v must be ≥ 1 and finite", m.Reduction)
	case !(m.Buffer >= 0):
		return bad("buffer %v must not be negative", m.Buffer)
	case len(m.Volumes) == 0:
		return bad("no volumes")
	}
	for _, c := range m.CrossHourly {
		if !(c >= 0) || math.IsInf(c, 1) {
			return bad("cross traffic %v must be finite and not negative", c)
		}
	}
	for _, v := range m.Volumes {
		if v.Name == "" {
			return bad("a volume has no name")
		}
		if !(v.Weekend >= 0) || !(v.Initial >= 0) {
			return bad("volume %s: weekend factor and initial backlog must not be negative", v.Name)
		}
		for _, h := range v.Hourly {
			if !(h >= 0) || math.IsInf(h, 1) {
				return bad("volume %s: hourly change %v must be finite and not negative", v.Name, h)
			}
		}
		for _, b := range v.Bursts {
			if b.At < 0 || !(b.Bytes >= 0) {
				return bad("volume %s: burst %v at %v must be ≥ 0 at a time ≥ 0", v.Name, b.Bytes, b.At)
			}
		}
	}
	return nil
}

// writeRate returns the volume's write rate (bytes/s) at t.
func (v *Volume) writeRate(t time.Time) float64 {
	r := v.Hourly[t.Hour()] / 3600
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		r *= v.Weekend
		if v.WeekendOff {
			r = 0
		}
	}
	return r
}
