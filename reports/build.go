package reports

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/aimwan/aimwan/internal/metrics"
)

// BuildOptions tunes BuildPage. The zero value means the defaults.
type BuildOptions struct {
	// Title of the page. Default "aimwan replication report".
	Title string
	// Window smooths data reduction and cache hit rate (the charts also show
	// the cumulative figure). Default 10s.
	Window time.Duration
}

func (o *BuildOptions) populate() {
	if o.Title == "" {
		o.Title = "aimwan replication report"
	}
	if o.Window <= 0 {
		o.Window = 10 * time.Second
	}
}

// figures are the per-interval counter increases a report is computed from.
type figures struct {
	g                     grid
	wire, link, destaged  []float64 // bytes per grid interval
	logical, hits, misses []float64 // bytes, chunks, chunks per grid interval
	// The same over whole intervals only, for rates (rateIncrements).
	wireR, linkR, destagedR, logicalR []float64
}

func computeFigures(recs []*Recording, g grid) *figures {
	edge, is := sourceEdge(recs)
	return &figures{
		g:        g,
		wire:     increments(edge, g, is(metrics.ProxyWire)),
		link:     increments(recs, g, linkData(recs)),
		destaged: increments(recs, g, metricIs(metrics.DstLogical)),
		logical:  increments(edge, g, is(metrics.ProxyLogical)),
		hits:     increments(edge, g, is(metrics.ProxyCacheHits)),
		misses:   increments(edge, g, is(metrics.ProxyCacheMisses)),

		wireR:     rateIncrements(edge, g, is(metrics.ProxyWire)),
		linkR:     rateIncrements(recs, g, linkData(recs)),
		destagedR: rateIncrements(recs, g, metricIs(metrics.DstLogical)),
		logicalR:  rateIncrements(edge, g, is(metrics.ProxyLogical)),
	}
}

// sourceEdge returns the recordings and the key match to take the proxy
// figures from: the source edge's only. Both edges count the files they
// carry, so summing them would count every file twice (and the destination
// edge's wire bytes are acks and miss lists going the other way). Proxies
// label their metrics role="source" or role="destination"; recordings made
// before the label existed fall back to the recording whose proxy put the
// most bytes on the WAN.
func sourceEdge(recs []*Recording) ([]*Recording, func(name string) keyMatch) {
	bySource := func(name string) keyMatch {
		return func(n string, labels []metrics.Label) bool {
			r, _ := metrics.LabelValue(labels, metrics.LabelRole)
			return n == name && r == metrics.RoleSource
		}
	}
	var best *Recording
	bestWire := 0.0
	for _, r := range recs {
		wire := 0.0
		for _, s := range r.Samples {
			for k, v := range s.Values {
				if !strings.HasPrefix(k, metrics.ProxyWire) {
					continue // most keys: other metrics, parsed for nothing
				}
				name, labels, err := metrics.ParseKey(k)
				if err != nil || name != metrics.ProxyWire {
					continue
				}
				if _, labelled := metrics.LabelValue(labels, metrics.LabelRole); labelled {
					return recs, bySource
				}
				wire = max(wire, v)
			}
		}
		if wire > bestWire {
			best, bestWire = r, wire
		}
	}
	if best == nil {
		return recs, metricIs
	}
	return []*Recording{best}, metricIs
}

// linkData selects the link's data direction (direction="up") when the
// recordings have it, else every direction.
func linkData(recs []*Recording) keyMatch {
	up := func(name string, labels []metrics.Label) bool {
		d, _ := metrics.LabelValue(labels, "direction")
		return name == metrics.LinkBytes && d == metrics.DirectionUp
	}
	for _, r := range recs {
		for _, s := range r.Samples[:min(len(r.Samples), 10)] { // series appear early
			for k := range s.Values {
				if name, labels, err := metrics.ParseKey(k); err == nil && up(name, labels) {
					return up
				}
			}
		}
	}
	return metricIs(metrics.LinkBytes)
}

// reductionInputs picks logical and wire bytes for data reduction: the
// source edge's own pair when recorded (the definition), else destaged bytes
// over the source edge's or the link's bytes; how says which in words.
func (f *figures) reductionInputs() (logical, wire []float64, how string) {
	if hasData(f.logical) && hasData(f.wire) {
		return f.logical, f.wire, "the source-edge proxy's (role=\"source\") logical bytes (journal-file bytes it was given, " +
			metrics.ProxyLogical + ") divided by its wire bytes (what it put on the WAN after dedupe and compression, " +
			"framing included, " + metrics.ProxyWire + ")"
	}
	if hasData(f.destaged) {
		if hasData(f.wire) {
			return f.destaged, f.wire, "bytes destaged at the destination (" + metrics.DstLogical +
				") divided by the source-edge proxy's wire bytes (" + metrics.ProxyWire + "); its logical bytes were not recorded"
		}
		return f.destaged, f.link, "bytes destaged at the destination (" + metrics.DstLogical +
			") divided by the bytes the link carried up (" + metrics.LinkBytes + "); no proxy was recorded"
	}
	return nil, nil, ""
}

// unitsNote names the unit system of every report page.
const unitsNote = "Units are decimal throughout, as in aimwan bench's terminal lines: KB = 1000 bytes, MB = 10⁶ bytes, KB/s = 1000 bytes a second."

// effective is the logical transfer: bytes destaged, or the proxy's logical
// bytes when no destination was recorded.
func (f *figures) effective() ([]float64, string) {
	if hasData(f.destaged) {
		return f.destaged, "effective (destaged)"
	}
	return f.logical, "logical (proxy)"
}

// effectiveRate is effective over whole intervals only, for rates.
func (f *figures) effectiveRate() []float64 {
	if hasData(f.destaged) {
		return f.destagedR
	}
	return f.logicalR
}

// BuildPage computes the report of a run: the seed comparison (bench runs),
// a per-phase table and the charts. Charts without data are left out and
// named in a note.
func BuildPage(run *Run, opt BuildOptions) (*Page, error) {
	opt.populate()
	p := &Page{Title: opt.Title}
	g, ok := newGrid(run.Recordings, run.Phases)
	var f *figures // nil without samples
	if ok {
		f = computeFigures(run.Recordings, g)
	}
	if run.Result != nil {
		p.Tables = append(p.Tables, seedTable(run.Result, f, run.Phases))
	}
	if !ok {
		p.Notes = append(p.Notes, "No samples: the folder holds no *.jsonl recording with data.")
		return p, nil
	}
	p.Subtitle = subtitle(run, g)
	p.Notes = append(p.Notes, unitsNote)
	if _, _, how := f.reductionInputs(); how != "" {
		p.Notes = append(p.Notes, "Data reduction, wherever this page gives it, is "+how+", over the interval named.")
	}
	phases := resolvePhases(run.Phases, g)
	if len(phases) > 0 {
		p.Tables = append(p.Tables, phaseTable(f, phases))
	}
	w := max(1, int(math.Round(opt.Window.Seconds()/g.step)))
	p.Tables = append(p.Tables, summaryTable(f, run.Recordings, w, len(phases) > 0))
	marks := phaseMarks(phases, g)
	var missing []string
	for _, mk := range []func(*figures, []*Recording, int) (Chart, string){
		transferChart, srcDataChart, latencyChart, reductionChart, hitRateChart, capChart,
	} {
		c, why := mk(f, run.Recordings, w)
		if len(c.Series) == 0 {
			missing = append(missing, c.Title+" ("+why+")")
			continue
		}
		c.Time, c.Marks = true, marks
		p.Charts = append(p.Charts, c)
	}
	if len(missing) > 0 {
		p.Notes = append(p.Notes, "Not charted: "+strings.Join(missing, "; ")+".")
	}
	return p, nil
}

func subtitle(run *Run, g grid) string {
	names := make([]string, 0, len(run.Recordings))
	samples := 0
	for _, r := range run.Recordings {
		names = append(names, r.Daemon)
		samples += len(r.Samples)
	}
	span := time.Duration(g.span * float64(time.Second)).Round(time.Second)
	return fmt.Sprintf("Run of %s from %s UTC; %d samples from %s; one point every %gs.",
		span, g.t0.UTC().Format("2006-01-02 15:04:05"), samples, strings.Join(names, ", "), g.step)
}

// resolvedPhase is a phase in grid seconds with its end filled in.
type resolvedPhase struct {
	name       string
	start, end float64
}

func resolvePhases(ps []Phase, g grid) []resolvedPhase {
	sorted := append([]Phase(nil), ps...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Start.Before(sorted[j].Start) })
	runEnd := float64(g.n-1) * g.step
	out := make([]resolvedPhase, 0, len(sorted))
	for i, p := range sorted {
		rp := resolvedPhase{name: p.Name, start: g.sec(p.Start), end: runEnd}
		switch {
		case !p.End.IsZero():
			rp.end = g.sec(p.End)
		case i+1 < len(sorted):
			rp.end = g.sec(sorted[i+1].Start)
		}
		out = append(out, rp)
	}
	return out
}

// phaseMarks marks every phase start, and a phase end that no other phase
// starts at.
func phaseMarks(ps []resolvedPhase, g grid) []Mark {
	runEnd := float64(g.n-1) * g.step
	starts := map[float64]bool{}
	var marks []Mark
	for _, p := range ps {
		starts[p.start] = true
		marks = append(marks, Mark{X: p.start, Label: p.name})
	}
	for _, p := range ps {
		if !starts[p.end] && p.end < runEnd {
			marks = append(marks, Mark{X: p.end, Label: "end of " + p.name})
		}
	}
	sort.SliceStable(marks, func(i, j int) bool { return marks[i].X < marks[j].X })
	return marks
}

// phaseSum sums ys over the grid intervals (x_{i-1}, x_i] inside (start, end].
func phaseSum(ys []float64, g grid, p resolvedPhase) (sum float64, secs float64) {
	for i := 1; i < g.n; i++ {
		x := float64(i) * g.step
		if x <= p.start || x > p.end+1e-9 {
			continue
		}
		secs += g.step
		if !math.IsNaN(ys[i]) {
			sum += ys[i]
		}
	}
	return sum, secs
}

// phaseTable: per phase, its length and average figures. The link's own
// count (a simulated run) gets a column of its own beside the proxies'.
func phaseTable(f *figures, ps []resolvedPhase) Table {
	cols := []string{"phase", "length"}
	var rates [][]float64
	if hasData(f.wire) {
		cols, rates = append(cols, "wire KB/s (source edge)"), append(rates, f.wire)
	}
	if hasData(f.link) {
		cols, rates = append(cols, "link KB/s"), append(rates, f.link)
	}
	eff, _ := f.effective()
	cols, rates = append(cols, "effective KB/s"), append(rates, eff)
	t := Table{Title: "Phases", Columns: append(cols, "data reduction", "cache hit rate")}
	logical, wire, _ := f.reductionInputs()
	for _, p := range ps {
		_, secs := phaseSum(eff, f.g, p)
		row := []string{p.name, (time.Duration(secs) * time.Second).String()}
		for _, r := range rates {
			b, _ := phaseSum(r, f.g, p)
			row = append(row, perSec(b, secs))
		}
		red, hit := "—", "—"
		if logical != nil {
			l, _ := phaseSum(logical, f.g, p)
			if wb, _ := phaseSum(wire, f.g, p); wb > 0 && l > 0 {
				red = fmt.Sprintf("%.2fx", l/wb)
			}
		}
		h, _ := phaseSum(f.hits, f.g, p)
		m, _ := phaseSum(f.misses, f.g, p)
		if h+m > 0 {
			hit = fmt.Sprintf("%.1f%%", 100*h/(h+m))
		}
		t.Rows = append(t.Rows, append(row, red, hit))
	}
	return t
}

// perSec formats bytes over secs as KB/s.
func perSec(bytes, secs float64) string {
	if secs <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", bytes/secs/1000)
}
