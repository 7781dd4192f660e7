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
	// Over spreads the writes evenly over [At, At+Over) (0: all at At).
	Over time.Duration `json:"over,omitempty"`
}

// ReductionStep sets the data reduction from a time on (e.g. a bench's
// optimized phase after its pass-through phase).
type ReductionStep struct {
	From      time.Duration `json:"from"`      // from the start
	Reduction float64       `json:"reduction"` // logical bytes per wire byte, ≥ 1
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
	// Reductions override Reduction from their From on (sorted by From).
	Reductions []ReductionStep
	// Volumes replicated over the line.
	Volumes []Volume

	// FileSize > 0 makes the model file-granular, as the chain is (see
	// files.go): writes fill journal files of FileSize payload bytes, a file
	// leaves Src Data only once it has crossed the line whole, Window files
	// per volume are in flight at once and share the line equally, and
	// Time Latency is the destination's: now minus the source time of the
	// newest write of the files replicated in order (0 before the first).
	// 0 keeps the fluid model.
	FileSize float64
	// FileAge seals a non-empty file this old (file-granular model).
	// Default DefaultFileAge.
	FileAge time.Duration
	// Window is how many files of one volume are in flight at once
	// (file-granular model). Default DefaultWindow.
	Window int
	// Restarts are times at which the transfer restarts (the proxies are
	// restarted): the files in flight start over from their first byte.
	// File-granular model only.
	Restarts []time.Duration
	// StopWhenDrained ends the run at the end of the first step after every
	// burst has been written in which nothing is left to send (as the bench
	// stops once everything is destaged); Duration is then a limit.
	StopWhenDrained bool
}

// Defaults of the file-granular model: the journal's age rotation
// (journal.DefaultMaxAge) and the source's push window
// (aimsrc.DefaultPushWindow); a test checks they agree.
const (
	DefaultFileAge = 2 * time.Second
	DefaultWindow  = 4
)

// MinFileSize is the smallest FileSize of the file-granular model.
const MinFileSize = 4096

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
	if m.FileSize > 0 && m.FileAge == 0 {
		m.FileAge = DefaultFileAge
	}
	if m.FileSize > 0 && m.Window == 0 {
		m.Window = DefaultWindow
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
	case !(m.FileSize == 0 || m.FileSize >= MinFileSize) || math.IsInf(m.FileSize, 1) || m.FileAge < 0 || m.Window < 0:
		return bad("file size %v (0 or at least %d), file age %v and window %d must not be negative", m.FileSize, MinFileSize, m.FileAge, m.Window)
	}
	if m.FileSize > 0 {
		if n := m.maxFiles(); n > maxFiles {
			return bad("the file-granular model would make up to %.3g files (more than %d): use larger files or the fluid model", n, maxFiles)
		}
	}
	for _, r := range m.Reductions {
		if !(r.Reduction >= 1) || math.IsInf(r.Reduction, 1) || r.From < 0 {
			return bad("data reduction %v from %v must be ≥ 1 and finite, from a time ≥ 0", r.Reduction, r.From)
		}
	}
	for _, r := range m.Restarts {
		if r < 0 {
			return bad("restart at %v: must not be negative", r)
		}
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
			if b.At < 0 || b.Over < 0 || !(b.Bytes >= 0) || math.IsInf(b.Bytes, 1) {
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

// reductionAt returns the data reduction at t seconds from the start.
func (m *Model) reductionAt(t float64) float64 {
	r := m.Reduction
	best := time.Duration(-1)
	for _, s := range m.Reductions {
		if s.From.Seconds() <= t && s.From > best {
			r, best = s.Reduction, s.From
		}
	}
	return r
}

// lastWrite returns when the last burst has been written, in seconds.
func (m *Model) lastWrite() float64 {
	end := 0.0
	for _, v := range m.Volumes {
		for _, b := range v.Bursts {
			end = math.Max(end, (b.At + b.Over).Seconds())
		}
	}
	return end
}

// maxFiles bounds the files the file-granular model may create: every byte
// written in full files, plus one file per age period per volume.
const maxFiles = 10_000_000

func (m *Model) maxFiles() float64 {
	n := 0.0
	for _, v := range m.Volumes {
		w := v.Initial
		for _, h := range v.Hourly {
			w += h * m.Duration.Hours() / 24 * math.Max(1, v.Weekend)
		}
		for _, b := range v.Bursts {
			w += b.Bytes
		}
		n += w/m.FileSize + m.Duration.Seconds()/math.Max(m.FileAge.Seconds(), m.Step.Seconds()) + 1
	}
	return n
}
