package sizing

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/reports"
)

// ErrBadBench is wrapped by every error about a bench run folder that
// cannot be turned into a model.
var ErrBadBench = errors.New("bad bench run for the sizing model")

// BenchFileSize is the replication file size of a bench run (the journal's
// default, which the bench does not change).
const BenchFileSize = 4 << 20

// benchStep is the model step for a bench scenario.
const benchStep = 100 * time.Millisecond

// Measured is what a bench run recorded, as curves from the start of its
// first phase.
type Measured struct {
	T            []float64 `json:"t_s"`             // seconds from the start of the first phase
	SrcData      []float64 `json:"src_data"`        // total Src Data, bytes (src recording)
	LT           []float64 `json:"latency_t_s"`     // times of the dst samples
	Latency      []float64 `json:"latency_s"`       // worst Time Latency of any volume (dst recording)
	PeakBacklog  float64   `json:"peak_backlog"`    // largest total Src Data
	FinalBacklog float64   `json:"final_backlog"`   // total Src Data in the last src sample
	FinalLatency float64   `json:"final_latency_s"` // worst Time Latency at the end: result.json's, else the last dst sample
	End          float64   `json:"end_s"`           // end of the last phase
	Drained      bool      `json:"drained"`         // the run replicated everything before its limit
}

// Figure is one predicted-vs-measured comparison.
type Figure struct {
	Predicted float64 `json:"predicted"`
	Measured  float64 `json:"measured"`
	// Error is (predicted − measured) / measured: 0 when both are 0, +1
	// (100%) when only the measured one is 0.
	Error float64 `json:"error"`
}

func figure(pred, meas float64) Figure {
	f := Figure{Predicted: pred, Measured: meas}
	switch {
	case meas != 0:
		f.Error = (pred - meas) / math.Abs(meas)
	case pred != 0:
		f.Error = 1
	}
	return f
}

// Phase is a bench phase as the model sees it.
type Phase struct {
	Name      string  `json:"name"`
	Start     float64 `json:"start_s"`   // from the start of the first phase
	Reduction float64 `json:"reduction"` // measured logical / link bytes (1 when nothing was measured)
	// LineUse is the link's bytes in the phase over what the line left by
	// the cross traffic could carry (0: no link recording). The model
	// assumes the line is the bottleneck; well below 1, it was not.
	LineUse float64 `json:"line_use"`
}

// MinLineUse is the line use below which a phase was not line-bound.
const MinLineUse = 0.9

// Validation is the model run on a bench's scenario beside what the bench
// measured.
type Validation struct {
	Dir          string   `json:"dir"`
	Model        Model    `json:"-"`
	Phases       []Phase  `json:"phases"`
	Result       *Result  `json:"result"`
	Measured     Measured `json:"measured"`
	PeakBacklog  Figure   `json:"peak_backlog"`
	FinalLatency Figure   `json:"final_latency_s"`
	// MaxLatency is the worst Time Latency of the run (the largest of any
	// volume): with Time Latency defined as now minus the time up to which
	// the destination is complete (0 once caught up, kept there on an idle
	// volume by the source's heartbeats), the final figure of a drained run
	// is about 0 on both sides; the worst one is what an RPO is sized on.
	MaxLatency Figure `json:"max_latency_s"`
	// FinalBacklog is the Src Data left at the end (0 for a drained run;
	// for a run that hit its limit, what the line did not carry in time).
	FinalBacklog Figure `json:"final_backlog"`
	// Notes warn about what makes the comparison unfair (a phase in which
	// the line was not the bottleneck).
	Notes []string `json:"notes,omitempty"`
}

// benchLink is the part of result.json that describes the line.
type benchLink struct {
	LineKBps float64 `json:"line_kbps"`
	Drained  *bool   `json:"drained"`
	Phases   []struct {
		LatencyEnd *float64 `json:"time_latency_end_s"`
	} `json:"phase_details"`
	Link struct {
		Simulated bool    `json:"simulated"`
		Rate      float64 `json:"rate_bytes_per_s"`
		Cross     float64 `json:"cross_bytes_per_s"`
	} `json:"link"`
}

// FromBench builds the model of a bench run folder (result.json,
// phases.json, the src, dst, proxy-src and link recordings), runs it and
// compares its peak Src Data and final Time Latency with the measured
// ones. The scenario: the line rate and cross traffic of result.json; the
// ingest profile from the source's captured-bytes counters (each second's
// increment written at once at the start of that second, or of the phase
// it falls in if that started later: see ingest); the data reduction per phase as logical bytes (proxy) per
// byte on the link; a restart of the transfer at every phase boundary (the
// bench restarts both proxies); the file-granular model with the journal's
// 4 MiB files; and the bench's stop rule (the run ends once everything is
// replicated).
func FromBench(dir string) (*Validation, error) { return FromBenchWith(dir, BenchOptions{}) }

// BenchOptions vary how FromBench reads a run.
type BenchOptions struct {
	// SpreadIngest spreads each sampling interval's written bytes evenly
	// over the interval instead of placing them at its start (a
	// sensitivity check: when within a second the writes happened is not
	// recorded).
	SpreadIngest bool
}

// FromBenchWith is FromBench with options.
func FromBenchWith(dir string, o BenchOptions) (*Validation, error) {
	run, bl, recs, err := loadBench(dir)
	if err != nil {
		return nil, err
	}
	t0 := run.Phases[0].Start
	val := &Validation{Dir: dir}
	m := &val.Model
	m.Start, m.Step, m.Samples, m.FileSize, m.StopWhenDrained = t0, benchStep, 2000, BenchFileSize, true
	m.Rate = bl.Link.Rate
	if m.Rate == 0 {
		m.Rate = bl.LineKBps * 1e3
	}
	for h := range m.CrossHourly {
		m.CrossHourly[h] = bl.Link.Cross
	}
	if m.Volumes, err = ingest(recs["src"], run.Phases, t0, o.SpreadIngest); err != nil {
		return nil, err
	}
	val.Phases = phaseReductions(run.Phases, t0, recs["proxy-src"], recs["link"], m.Rate-bl.Link.Cross)
	for i, p := range val.Phases {
		at := time.Duration(p.Start * float64(time.Second))
		m.Reductions = append(m.Reductions, ReductionStep{From: at, Reduction: p.Reduction})
		if i > 0 {
			m.Restarts = append(m.Restarts, at)
		}
		if p.LineUse > 0 && p.LineUse < MinLineUse {
			val.Notes = append(val.Notes, fmt.Sprintf("phase %s: the line carried only %.0f%% of the rate the cross traffic left; "+
				"the chain (CPU, the machine's load), not the line, was the bottleneck, and the model assumes the line is", p.Name, 100*p.LineUse))
		}
	}
	val.Measured = measure(recs["src"], recs["dst"], run.Phases, t0)
	val.Measured.Drained = bl.Drained == nil || *bl.Drained
	if n := len(bl.Phases); n > 0 && bl.Phases[n-1].LatencyEnd != nil {
		val.Measured.FinalLatency = *bl.Phases[n-1].LatencyEnd // the bench's figure, at the end of the run
	}
	// A drained run: the model runs until it has replicated everything (up
	// to a generous limit); a run that hit its time limit: the model stops
	// there too.
	limit := 2*val.Measured.End + 600
	if !val.Measured.Drained {
		limit, m.StopWhenDrained = val.Measured.End, false
	}
	m.Duration = time.Duration(math.Ceil(limit/benchStep.Seconds())) * benchStep
	if val.Result, err = Run(*m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBench, err)
	}
	val.compare()
	return val, nil
}

// loadBench reads a run folder: its recordings by daemon, result.json's
// line and phases; src and dst recordings and phases are required.
func loadBench(dir string) (*reports.Run, *benchLink, map[string]*reports.Recording, error) {
	run, err := reports.LoadRun(dir)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", ErrBadBench, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, reports.ResultFile))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", ErrBadBench, err)
	}
	var bl benchLink
	if err := json.Unmarshal(b, &bl); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %s: %w", ErrBadBench, reports.ResultFile, err)
	}
	if len(run.Phases) == 0 {
		return nil, nil, nil, fmt.Errorf("%w: %s has no phases", ErrBadBench, dir)
	}
	recs := map[string]*reports.Recording{}
	for _, r := range run.Recordings {
		recs[r.Daemon] = r
	}
	for _, d := range []string{"src", "dst"} {
		if recs[d] == nil || len(recs[d].Samples) == 0 {
			return nil, nil, nil, fmt.Errorf("%w: %s has no %s.jsonl recording", ErrBadBench, dir, d)
		}
	}
	return run, &bl, recs, nil
}

// compare fills the figures from the model's result and the measurement.
func (val *Validation) compare() {
	final, left := 0.0, 0.0
	for _, v := range val.Result.Volumes {
		final = math.Max(final, v.FinalLatency)
		left += v.FinalBacklog
	}
	val.PeakBacklog = figure(val.Result.PeakBacklog, val.Measured.PeakBacklog)
	val.FinalLatency = figure(final, val.Measured.FinalLatency)
	val.MaxLatency = figure(val.Result.MaxLatency, slices.Max(val.Measured.Latency))
	val.FinalBacklog = figure(left, val.Measured.FinalBacklog)
}

// phaseStart returns the start (seconds from t0) of the phase holding t.
func phaseStart(ps []reports.Phase, t0, t time.Time) float64 {
	start := 0.0
	for _, p := range ps {
		if !p.Start.After(t) {
			start = p.Start.Sub(t0).Seconds()
		}
	}
	return start
}

// ingest turns the captured-bytes counters into bursts, one per volume and
// sample interval. When within the interval the bytes were written is not
// recorded; they are placed as soon as the recording allows: at the
// interval's start, or at the start of the phase it falls in if that came
// later. Writers such as the bench (a hypervisor creating a VM) write as
// fast as the source takes them from the moment they start; spreading the
// bytes over the interval instead would date them up to a second late and
// let the model drain while they are still being written (docs/sizing.md
// has both).
func ingest(src *reports.Recording, ps []reports.Phase, t0 time.Time, spread bool) ([]Volume, error) {
	byVol := map[string]*Volume{}
	var names []string
	prev := map[string]float64{}
	var prevT time.Time
	for i, s := range src.Samples {
		for key, val := range s.Values {
			name, labels, err := metrics.ParseKey(key)
			if err != nil || name != metrics.SrcBytesCaptured {
				continue
			}
			vol, _ := metrics.LabelValue(labels, "volume")
			v := byVol[vol]
			if v == nil {
				v = &Volume{Name: vol}
				byVol[vol] = v
				names = append(names, vol)
			}
			inc := val - prev[vol]
			if val < prev[vol] { // counter reset (src restarted)
				inc = val
			}
			prev[vol] = val
			if i == 0 || inc <= 0 {
				continue
			}
			from := math.Max(prevT.Sub(t0).Seconds(), phaseStart(ps, t0, s.Time))
			to := math.Max(from, s.Time.Sub(t0).Seconds())
			if spread {
				v.Bursts = append(v.Bursts, Burst{At: secDur(math.Max(0, from)), Over: secDur(to - math.Max(0, from)), Bytes: inc})
			} else {
				v.Bursts = append(v.Bursts, Burst{At: secDur(math.Max(0, from)), Bytes: inc})
			}
		}
		prevT = s.Time
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: src.jsonl has no %s", ErrBadBench, metrics.SrcBytesCaptured)
	}
	slices.Sort(names)
	out := make([]Volume, 0, len(names))
	for _, n := range names {
		out = append(out, *byVol[n])
	}
	return out, nil
}

func secDur(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// increase sums the increments of the counters named name (all label sets)
// between from and to, counting a drop as a reset (the proxies restart).
func increase(rec *reports.Recording, name string, match func([]metrics.Label) bool, from, to time.Time) float64 {
	if rec == nil {
		return 0
	}
	sum := 0.0
	prev := map[string]float64{}
	for _, s := range rec.Samples {
		for key, val := range s.Values {
			n, labels, err := metrics.ParseKey(key)
			if err != nil || n != name || (match != nil && !match(labels)) {
				continue
			}
			p, seen := prev[key]
			prev[key] = val
			if !seen || s.Time.Before(from) || s.Time.After(to) {
				continue
			}
			if val >= p {
				sum += val - p
			} else {
				sum += val
			}
		}
	}
	return sum
}

// phaseReductions measures each phase's line use and data reduction as the
// line sees it: logical bytes the source edge carried per byte the link carried up
// (proxy framing, QUIC and UDP/IP headers, resends included); without a
// link recording, per byte the proxy put on the WAN. A phase without
// logical bytes (pass-through: the proxy counts none) gets 1.
func phaseReductions(ps []reports.Phase, t0 time.Time, proxy, link *reports.Recording, capacity float64) []Phase {
	out := make([]Phase, len(ps))
	up := func(ls []metrics.Label) bool {
		d, _ := metrics.LabelValue(ls, "direction")
		return d == metrics.DirectionUp
	}
	for i, p := range ps {
		// A phase's counters run until the next phase starts; the last
		// phase's until the end of the recordings (the bench takes a last
		// sample after the end, which the counters of the last files may
		// only reach then).
		end := time.Unix(1<<40, 0)
		if i+1 < len(ps) {
			end = ps[i+1].Start
		}
		out[i] = Phase{Name: p.Name, Start: p.Start.Sub(t0).Seconds(), Reduction: 1}
		logical := increase(proxy, metrics.ProxyLogical, nil, p.Start, end)
		wire := increase(link, metrics.LinkBytes, up, p.Start, end)
		if wire == 0 {
			wire = increase(proxy, metrics.ProxyWire, nil, p.Start, end)
		}
		if logical > 0 && wire > 0 {
			out[i].Reduction = math.Max(1, logical/wire)
		}
		stop := p.End
		if stop.IsZero() && i+1 < len(ps) {
			stop = ps[i+1].Start
		}
		if onLink := increase(link, metrics.LinkBytes, up, p.Start, end); onLink > 0 && capacity > 0 && stop.After(p.Start) {
			out[i].LineUse = onLink / (capacity * stop.Sub(p.Start).Seconds())
		}
	}
	return out
}

// measure reads the measured curves and figures.
func measure(src, dst *reports.Recording, ps []reports.Phase, t0 time.Time) Measured {
	var me Measured
	for _, s := range src.Samples {
		tot := 0.0
		for key, val := range s.Values {
			if n, _, err := metrics.ParseKey(key); err == nil && n == metrics.SrcData {
				tot += val
			}
		}
		me.T = append(me.T, s.Time.Sub(t0).Seconds())
		me.SrcData = append(me.SrcData, tot)
		me.PeakBacklog = math.Max(me.PeakBacklog, tot)
	}
	for _, s := range dst.Samples {
		worst := 0.0
		for key, val := range s.Values {
			if n, _, err := metrics.ParseKey(key); err == nil && n == metrics.TimeLatency {
				worst = math.Max(worst, val)
			}
		}
		me.LT = append(me.LT, s.Time.Sub(t0).Seconds())
		me.Latency = append(me.Latency, worst)
	}
	me.FinalLatency = me.Latency[len(me.Latency)-1]
	me.FinalBacklog = me.SrcData[len(me.SrcData)-1]
	last := ps[len(ps)-1]
	end := last.End
	if end.IsZero() {
		end = dst.Samples[len(dst.Samples)-1].Time
	}
	me.End = end.Sub(t0).Seconds()
	return me
}
