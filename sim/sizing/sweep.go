package sizing

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// NamedSchedule is a schedule in a sweep; a nil Schedule means no cap.
type NamedSchedule struct {
	Name     string
	Schedule RateSchedule
}

// SweepRow is one run of a sweep.
type SweepRow struct {
	Schedule    string  `json:"schedule"`
	Rate        float64 `json:"rate"`          // line rate, bytes/s
	PeakBacklog float64 `json:"peak_backlog"`  // buffer needed
	MaxLatency  float64 `json:"max_latency_s"` // worst Time Latency
	CatchUp     float64 `json:"catch_up_s"`
	Overflow    float64 `json:"overflow"`
	MeetsRPO    bool    `json:"meets_rpo"` // no overflow and MaxLatency ≤ RPO
	// Curve is the run's total Src Data and worst Time Latency over time
	// (SweepSamples points), for the sizing page.
	Curve Curve `json:"curve"`
}

// Curve is a run's figures over time, summed or maxed over the volumes.
type Curve struct {
	T       []float64 `json:"t_s"`       // seconds from the start
	Backlog []float64 `json:"backlog"`   // total Src Data, bytes
	Latency []float64 `json:"latency_s"` // worst Time Latency of any volume, seconds
}

// SweepSamples is the number of curve points kept per sweep run (fewer
// when the model asks for fewer Samples).
const SweepSamples = 200

func curveOf(ss []Sample) Curve {
	c := Curve{T: make([]float64, len(ss)), Backlog: make([]float64, len(ss)), Latency: make([]float64, len(ss))}
	for i, s := range ss {
		c.T[i], c.Backlog[i] = s.T, s.Total
		for _, l := range s.Latency {
			c.Latency[i] = math.Max(c.Latency[i], l)
		}
	}
	return c
}

// SweepResult answers "what line do I need for an RPO of X".
type SweepResult struct {
	RPO  float64    `json:"rpo_s"`
	Rows []SweepRow `json:"rows"`
	// Needed is, per schedule, the smallest rate that meets the RPO (0: none
	// of the rates tried does).
	Needed map[string]float64 `json:"needed"`
}

// Sweep runs m for every rate and schedule and finds, per schedule, the
// smallest rate that keeps every volume's Time Latency within rpo without
// overflowing the buffer.
func Sweep(m Model, rates []float64, schedules []NamedSchedule, rpo time.Duration) (*SweepResult, error) {
	if len(rates) == 0 || len(schedules) == 0 {
		return nil, fmt.Errorf("%w: a sweep needs at least one rate and one schedule", ErrBadModel)
	}
	if rpo <= 0 {
		return nil, fmt.Errorf("%w: rpo %v must be positive", ErrBadModel, rpo)
	}
	rs := append([]float64(nil), rates...)
	sort.Float64s(rs)
	out := &SweepResult{RPO: rpo.Seconds(), Needed: map[string]float64{}}
	for _, s := range schedules {
		out.Needed[s.Name] = 0
		for _, r := range rs {
			mm := m
			mm.Rate, mm.Schedule, mm.Samples = r, s.Schedule, min(SweepSamples, m.withDefaults().Samples)
			res, err := Run(mm)
			if err != nil {
				return nil, fmt.Errorf("sweep %s at %.0f B/s: %w", s.Name, r, err)
			}
			row := SweepRow{Schedule: s.Name, Rate: r, PeakBacklog: res.PeakBacklog, MaxLatency: res.MaxLatency,
				CatchUp: res.CatchUp, Overflow: res.Overflow, Curve: curveOf(res.Samples)}
			row.MeetsRPO = res.Overflow == 0 && res.MaxLatency <= rpo.Seconds()+1e-9
			if row.MeetsRPO && out.Needed[s.Name] == 0 {
				out.Needed[s.Name] = r
			}
			out.Rows = append(out.Rows, row)
		}
	}
	return out, nil
}

// StandardRates are the line rates a sweep tries when none are given:
// common WAN products from 512 kbit/s to 1 Gbit/s, in bytes per second.
var StandardRates = func() []float64 {
	kbit := []float64{512, 1000, 2000, 4000, 6000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000}
	out := make([]float64, len(kbit))
	for i, k := range kbit {
		out[i] = math.Round(k * 1000 / 8)
	}
	return out
}()
