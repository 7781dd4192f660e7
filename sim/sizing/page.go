package sizing

import (
	"fmt"
	"math"
	"time"

	"github.com/aimwan/aimwan/internal/units"
	"github.com/aimwan/aimwan/reports"
)

// Report is what the sizing page shows: the study's own run and, when the
// study has one, its sweep.
type Report struct {
	// Title of the page (default "Sizing study").
	Title string
	// Model is the study's model (its Rate, Reduction, Buffer and volume
	// names are shown).
	Model Model
	// Result is Run(Model).
	Result *Result
	// Sweep is Sweep(Model, ...) or nil.
	Sweep *SweepResult
}

// Page builds the sizing page for reports.WritePage: the summary and answer
// tables, then Src Data and Time Latency curves of the study (per volume)
// and of every sweep run (one chart per schedule, a line per link rate).
func (r *Report) Page() *reports.Page {
	title := r.Title
	if title == "" {
		title = "Sizing study"
	}
	m := r.Model.withDefaults()
	p := &reports.Page{Title: title, Subtitle: fmt.Sprintf("line %s, cross traffic %s, data reduction %.2fx, buffer %s, %s in steps of %s",
		units.FormatRate(m.Rate), crossText(m.CrossHourly), m.Reduction, bufferText(m.Buffer), m.Duration, m.Step)}
	p.Notes = append(p.Notes, "Virtual-time model (sim/sizing, docs/sizing.md): what the line carries is shared by the volumes with a backlog; "+
		"Time Latency is now minus the source time of the oldest byte not yet replicated.")
	if r.Result == nil {
		p.Notes = append(p.Notes, "No model run to show.")
		return p
	}
	p.Tables = append(p.Tables, summaryTable(r.Result), volumeTable(r.Result))
	if r.Sweep != nil {
		p.Tables = append(p.Tables, answerTable(r.Sweep), neededTable(r.Sweep))
	}
	sizeUnit := pickSize(r.Result.PeakBacklog, m.Buffer)
	timeUnit := pickTime(r.Result.MaxLatency)
	p.Charts = append(p.Charts, studyCharts(m, r.Result, sizeUnit, timeUnit)...)
	if r.Sweep != nil {
		p.Charts = append(p.Charts, sweepCharts(r.Sweep, m.Buffer)...)
	}
	return p
}

// unit is a display unit: divide by Div, label Name.
type unit struct {
	Name string
	Div  float64
}

func pickSize(xs ...float64) unit {
	if slicesMax(xs) >= 2<<30 {
		return unit{"GiB", 1 << 30}
	}
	return unit{"MiB", 1 << 20}
}

func pickTime(maxS float64) unit {
	switch {
	case maxS >= 2*3600:
		return unit{"hours", 3600}
	case maxS >= 120:
		return unit{"minutes", 60}
	}
	return unit{"seconds", 1}
}

func slicesMax(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		if !math.IsInf(x, 0) && !math.IsNaN(x) {
			m = math.Max(m, x)
		}
	}
	return m
}

func crossText(c [24]float64) string {
	lo, hi := c[0], c[0]
	for _, x := range c {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	if lo == hi {
		return units.FormatRate(lo)
	}
	return units.FormatRate(lo) + " to " + units.FormatRate(hi) + " by hour"
}

func bufferText(b float64) string {
	if b <= 0 {
		return "unlimited"
	}
	return units.FormatSize(int64(b))
}

// secsText formats seconds; negative means "not within the run".
func secsText(s float64) string {
	if s < 0 {
		return "not within the run"
	}
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}

// catchUpText says "no backlog" when there never was one (CatchUp is then
// -1 too).
func catchUpText(catchUp, peak float64) string {
	if peak <= 0 {
		return "no backlog"
	}
	return secsText(catchUp)
}

func sizeText(b float64) string { return units.FormatSize(int64(math.Round(b))) }

func summaryTable(r *Result) reports.Table {
	over := "no"
	if r.Overflow > 0 {
		over = fmt.Sprintf("yes: %s lost, first at %s", sizeText(r.Overflow), secsText(r.FirstOverflow))
	}
	return reports.Table{Title: "The study", Columns: []string{"figure", "value"}, Rows: [][]string{
		{"Peak buffer needed (largest total Src Data)", sizeText(r.PeakBacklog) + " at " + secsText(r.PeakAt)},
		{"Buffer overflows", over},
		{"Worst Time Latency", secsText(r.MaxLatency)},
		{"Catch-up time after the peak", catchUpText(r.CatchUp, r.PeakBacklog)},
	}}
}

func volumeTable(r *Result) reports.Table {
	t := reports.Table{Title: "Per volume", Columns: []string{"volume", "written", "peak Src Data", "at",
		"max Time Latency", "final Src Data", "final Time Latency"}}
	for _, v := range r.Volumes {
		t.Rows = append(t.Rows, []string{v.Name, sizeText(v.Written), sizeText(v.PeakBacklog), secsText(v.PeakAt),
			secsText(v.MaxLatency), sizeText(v.FinalBacklog), secsText(v.FinalLatency)})
	}
	return t
}

// answerTable is "what line do I need for an RPO of X": one row per
// candidate (schedule × line rate).
func answerTable(sw *SweepResult) reports.Table {
	t := reports.Table{Title: "What line do I need for an RPO of " + secsText(sw.RPO),
		Columns: []string{"schedule", "line", "peak buffer", "overflow", "worst Time Latency", "catch-up", "meets RPO"}}
	for _, row := range sw.Rows {
		over := "no"
		if row.Overflow > 0 {
			over = "yes (" + sizeText(row.Overflow) + ")"
		}
		meets := "no"
		if row.MeetsRPO {
			meets = "yes"
		}
		t.Rows = append(t.Rows, []string{row.Schedule, units.FormatRate(row.Rate), sizeText(row.PeakBacklog), over,
			secsText(row.MaxLatency), catchUpText(row.CatchUp, row.PeakBacklog), meets})
	}
	return t
}

// neededTable names, per schedule, the smallest line that meets the RPO.
func neededTable(sw *SweepResult) reports.Table {
	t := reports.Table{Title: "Smallest line that meets the RPO", Columns: []string{"schedule", "line needed"}}
	seen := map[string]bool{}
	for _, row := range sw.Rows { // schedules in sweep order
		if seen[row.Schedule] {
			continue
		}
		seen[row.Schedule] = true
		need := "more than the rates tried"
		if n := sw.Needed[row.Schedule]; n > 0 {
			need = units.FormatRate(n)
		}
		t.Rows = append(t.Rows, []string{row.Schedule, need})
	}
	return t
}

func studyCharts(m Model, r *Result, su, tu unit) []reports.Chart {
	src := reports.Chart{ID: "src-data", Title: "Src Data per volume (the study)", Time: true, YLabel: su.Name, YMin0: true}
	lat := reports.Chart{ID: "time-latency", Title: "Time Latency per volume (the study)", Time: true, YLabel: tu.Name, YMin0: true}
	n := len(r.Samples)
	xs := make([]float64, n)
	for i, s := range r.Samples {
		xs[i] = s.T
	}
	for v, vr := range r.Volumes {
		b, l := make([]float64, n), make([]float64, n)
		for i, s := range r.Samples {
			b[i], l[i] = s.Backlog[v]/su.Div, s.Latency[v]/tu.Div
		}
		src.Series = append(src.Series, reports.Series{Name: vr.Name, X: xs, Y: b})
		lat.Series = append(lat.Series, reports.Series{Name: vr.Name, X: xs, Y: l})
	}
	if len(r.Volumes) > 1 {
		tot := make([]float64, n)
		for i, s := range r.Samples {
			tot[i] = s.Total / su.Div
		}
		src.Series = append(src.Series, reports.Series{Name: "total", X: xs, Y: tot})
	}
	if m.Buffer > 0 {
		src.Series = append(src.Series, flat("buffer", xs, m.Buffer/su.Div))
	}
	if r.FirstOverflow >= 0 {
		src.Marks = append(src.Marks, reports.Mark{X: r.FirstOverflow, Label: "overflow"})
	}
	if r.PeakBacklog > 0 {
		src.Marks = append(src.Marks, reports.Mark{X: r.PeakAt, Label: "peak"})
	}
	return []reports.Chart{src, lat}
}

// flat is a dashed horizontal line over xs (a limit).
func flat(name string, xs []float64, y float64) reports.Series {
	if len(xs) == 0 {
		return reports.Series{Name: name, Dashed: true}
	}
	return reports.Series{Name: name, X: []float64{xs[0], xs[len(xs)-1]}, Y: []float64{y, y}, Dashed: true}
}

// sweepCharts: per schedule, total Src Data and worst Time Latency, one
// line per rate.
func sweepCharts(sw *SweepResult, buffer float64) []reports.Chart {
	var out []reports.Chart
	var peaks, lats []float64
	for _, row := range sw.Rows {
		peaks = append(peaks, row.PeakBacklog)
		lats = append(lats, row.MaxLatency)
	}
	su, tu := pickSize(append(peaks, buffer)...), pickTime(slicesMax(lats))
	for i, row := range sw.Rows {
		if i > 0 && sw.Rows[i-1].Schedule == row.Schedule {
			continue
		}
		k := len(out) / 2
		src := reports.Chart{ID: fmt.Sprintf("sweep-%d-src-data", k), Time: true, YLabel: su.Name, YMin0: true,
			Title: fmt.Sprintf("Src Data by line rate, schedule %q", row.Schedule)}
		lat := reports.Chart{ID: fmt.Sprintf("sweep-%d-time-latency", k), Time: true, YLabel: tu.Name, YMin0: true,
			Title: fmt.Sprintf("Worst Time Latency by line rate, schedule %q", row.Schedule)}
		var xs []float64
		for _, r := range sw.Rows[i:] {
			if r.Schedule != row.Schedule {
				break
			}
			xs = r.Curve.T
			src.Series = append(src.Series, reports.Series{Name: units.FormatRate(r.Rate), X: r.Curve.T, Y: scaled(r.Curve.Backlog, su.Div)})
			lat.Series = append(lat.Series, reports.Series{Name: units.FormatRate(r.Rate), X: r.Curve.T, Y: scaled(r.Curve.Latency, tu.Div)})
		}
		if buffer > 0 {
			src.Series = append(src.Series, flat("buffer", xs, buffer/su.Div))
		}
		lat.Series = append(lat.Series, flat("RPO", xs, sw.RPO/tu.Div))
		out = append(out, src, lat)
	}
	return out
}

func scaled(ys []float64, div float64) []float64 {
	out := make([]float64, len(ys))
	for i, y := range ys {
		out[i] = y / div
	}
	return out
}

// Page builds the validation page: predicted and measured Src Data and
// Time Latency over the bench run, and the comparison table.
func (v *Validation) Page() *reports.Page {
	m := v.Model.withDefaults()
	p := &reports.Page{Title: "Sizing model vs a measured bench run",
		Subtitle: fmt.Sprintf("%s: line %s, cross traffic %s, files of %s, %d in flight per volume",
			v.Dir, units.FormatRate(m.Rate), units.FormatRate(m.CrossHourly[0]), sizeText(m.FileSize), m.Window)}
	p.Notes = append(p.Notes, "The model (file-granular, docs/sizing.md) is fed the run's line, cross traffic, ingest profile and "+
		"per-phase data reduction; it does not see the measured Src Data or Time Latency.")
	for _, n := range v.Notes {
		p.Notes = append(p.Notes, "Warning: "+n+".")
	}
	p.Tables = append(p.Tables, v.Table(), v.phaseTable())
	var marks []reports.Mark
	for _, ph := range v.Phases {
		marks = append(marks, reports.Mark{X: ph.Start, Label: ph.Name})
	}
	src := reports.Chart{ID: "src-data", Title: "Src Data, all volumes: predicted vs measured", Time: true, YLabel: "MiB", YMin0: true, Marks: marks}
	lat := reports.Chart{ID: "time-latency", Title: "Worst Time Latency: predicted vs measured", Time: true, YLabel: "seconds", YMin0: true, Marks: marks}
	c := curveOf(v.Result.Samples)
	src.Series = []reports.Series{
		{Name: "predicted", X: c.T, Y: scaled(c.Backlog, 1<<20)},
		{Name: "measured", X: v.Measured.T, Y: scaled(v.Measured.SrcData, 1<<20), Dashed: true},
	}
	lat.Series = []reports.Series{
		{Name: "predicted", X: c.T, Y: c.Latency},
		{Name: "measured", X: v.Measured.LT, Y: v.Measured.Latency, Dashed: true},
	}
	p.Charts = []reports.Chart{src, lat}
	return p
}

// pctOrNone is the error, or "—" when both figures are 0.
func pctOrNone(f Figure) string {
	if f.Predicted == 0 && f.Measured == 0 {
		return "—"
	}
	return fmt.Sprintf("%+.1f%%", 100*f.Error)
}

// Table is the comparison: peak Src Data, worst Time Latency, end of run
// (the final Time Latency of a drained run is about 0 by definition).
func (v *Validation) Table() reports.Table {
	pct := func(f Figure) string { return fmt.Sprintf("%+.1f%%", 100*f.Error) }
	return reports.Table{Title: "Predicted vs measured", Columns: []string{"figure", "predicted", "measured", "error"},
		Rows: [][]string{
			{"peak Src Data", sizeText(v.PeakBacklog.Predicted), sizeText(v.PeakBacklog.Measured), pct(v.PeakBacklog)},
			{"worst Time Latency", fmt.Sprintf("%.1fs", v.MaxLatency.Predicted), fmt.Sprintf("%.1fs", v.MaxLatency.Measured), pct(v.MaxLatency)},
			{"final Src Data", sizeText(v.FinalBacklog.Predicted), sizeText(v.FinalBacklog.Measured), pctOrNone(v.FinalBacklog)},
			{"end of the run", fmt.Sprintf("%.1fs", v.Result.End), fmt.Sprintf("%.1fs", v.Measured.End), pct(figure(v.Result.End, v.Measured.End))},
		}}
}

func (v *Validation) phaseTable() reports.Table {
	t := reports.Table{Title: "Phases as the model takes them",
		Columns: []string{"phase", "from", "data reduction (logical / link bytes)", "line use (measured)"}}
	for _, ph := range v.Phases {
		t.Rows = append(t.Rows, []string{ph.Name, fmt.Sprintf("%.1fs", ph.Start), fmt.Sprintf("%.2fx", ph.Reduction),
			fmt.Sprintf("%.0f%%", 100*ph.LineUse)})
	}
	return t
}
