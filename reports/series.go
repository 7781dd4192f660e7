package reports

import (
	"math"
	"sort"
	"time"

	"github.com/aimwan/aimwan/internal/metrics"
)

// maxPoints bounds the points of a chart series; longer runs get a coarser grid.
const maxPoints = 1200

// grid is the common time base of a report: points at x_i = i*step seconds
// after t0, i in [0, n).
type grid struct {
	t0   time.Time
	step float64 // seconds
	n    int
	span float64 // seconds from the first to the last sample or phase boundary
}

// newGrid spans every sample of every recording and every phase boundary.
// ok is false when there are no samples.
func newGrid(recs []*Recording, phases []Phase) (g grid, ok bool) {
	var first, last time.Time
	see := func(t time.Time) {
		if first.IsZero() || t.Before(first) {
			first = t
		}
		if t.After(last) {
			last = t
		}
	}
	for _, r := range recs {
		for _, s := range r.Samples {
			see(s.Time)
		}
	}
	if first.IsZero() {
		return grid{}, false
	}
	for _, p := range phases {
		see(p.Start)
		if !p.End.IsZero() {
			see(p.End)
		}
	}
	span := last.Sub(first).Seconds()
	step := math.Max(1, math.Ceil(span/maxPoints))
	// The last point is at or after the last sample, so no sample falls off the end.
	return grid{t0: first, step: step, n: int(math.Ceil(span/step-1e-9)) + 1, span: span}, true
}

// rates turns per-interval increases into rates per second divided by div.
func (g grid) rates(inc []float64, div float64) []float64 { return scale(inc, g.step*div) }

// xs returns the grid's X values (seconds since t0).
func (g grid) xs() []float64 {
	x := make([]float64, g.n)
	for i := range x {
		x[i] = float64(i) * g.step
	}
	return x
}

// sec is t as seconds since t0.
func (g grid) sec(t time.Time) float64 { return t.Sub(g.t0).Seconds() }

// keyMatch selects the series of one metric, optionally by label.
type keyMatch func(name string, labels []metrics.Label) bool

func metricIs(name string) keyMatch {
	return func(n string, _ []metrics.Label) bool { return n == name }
}

// trace is one key's points in one recording: X in seconds since t0.
type trace struct {
	labels []metrics.Label
	x, y   []float64
}

// traces collects the points of every key matching m in every recording,
// in sample order. Keys that do not parse are skipped (the loader rejects
// them already).
func traces(recs []*Recording, g grid, m keyMatch) []trace {
	var out []trace
	for _, r := range recs {
		byKey := map[string]*trace{}
		var order []string
		for _, s := range r.Samples {
			for k, v := range s.Values {
				t, ok := byKey[k]
				if !ok {
					name, labels, err := metrics.ParseKey(k)
					if err != nil || !m(name, labels) {
						byKey[k] = nil
						continue
					}
					t = &trace{labels: labels}
					byKey[k] = t
					order = append(order, k)
				}
				if t != nil {
					t.x = append(t.x, g.sec(s.Time))
					t.y = append(t.y, v)
				}
			}
		}
		sort.Strings(order)
		for _, k := range order {
			out = append(out, sortedTrace(*byKey[k]))
		}
	}
	return out
}

// sortedTrace orders t's points by time (a clock step back can disorder them).
func sortedTrace(t trace) trace {
	if sort.Float64sAreSorted(t.x) {
		return t
	}
	idx := make([]int, len(t.x))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return t.x[idx[a]] < t.x[idx[b]] })
	s := trace{labels: t.labels, x: make([]float64, len(idx)), y: make([]float64, len(idx))}
	for i, j := range idx {
		s.x[i], s.y[i] = t.x[j], t.y[j]
	}
	return s
}

// cumulative turns a counter trace into its running increase from the first
// sample, treating a drop as a restart from zero (a daemon restarted).
func cumulative(t trace) trace {
	c := trace{labels: t.labels, x: t.x, y: make([]float64, len(t.y))}
	total := 0.0
	for i := 1; i < len(t.y); i++ {
		d := t.y[i] - t.y[i-1]
		if d < 0 {
			d = t.y[i]
		}
		if !math.IsNaN(d) && !math.IsInf(d, 0) {
			total += d
		}
		c.y[i] = total
	}
	return c
}

// interp is t's value at x by linear interpolation; NaN outside its samples.
func interp(t trace, x float64) float64 {
	n := len(t.x)
	if n == 0 || x < t.x[0] || x > t.x[n-1] {
		return math.NaN()
	}
	i := sort.SearchFloat64s(t.x, x)
	if t.x[i] == x || i == 0 {
		return t.y[i]
	}
	x0, x1 := t.x[i-1], t.x[i]
	return t.y[i-1] + (t.y[i]-t.y[i-1])*(x-x0)/(x1-x0)
}

// interpEnd is interp, but holds the first and last values for up to one step
// beyond the samples, so a counter's first and final increases land in the
// grid's first and last intervals.
func interpEnd(t trace, x, step float64) float64 {
	n := len(t.x)
	switch {
	case n > 0 && x > t.x[n-1] && x-t.x[n-1] < step:
		return t.y[n-1]
	case n > 0 && x < t.x[0] && t.x[0]-x < step:
		return t.y[0]
	}
	return interp(t, x)
}

// hold is t's latest value at or before x; NaN before its first sample or
// after its last.
func hold(t trace, x float64) float64 {
	n := len(t.x)
	if n == 0 || x < t.x[0] || x > t.x[n-1] {
		return math.NaN()
	}
	i := sort.Search(n, func(i int) bool { return t.x[i] > x })
	return t.y[i-1]
}

// increments sums, per grid interval (x_{i-1}, x_i], the increase of every
// counter matching m. inc[0] and intervals no counter covers are NaN.
func increments(recs []*Recording, g grid, m keyMatch) []float64 {
	return incrementsOf(recs, g, m, false)
}

// rateIncrements is increments for drawing rates: an interval a counter's
// samples cover only in part (its first and last, when the recording starts
// or stops inside them) is left out for that counter, since its increase is
// that of a fraction of the interval and the rate would dip to nothing where
// a daemon starts or stops. Totals use increments, which count every byte.
func rateIncrements(recs []*Recording, g grid, m keyMatch) []float64 {
	return incrementsOf(recs, g, m, true)
}

func incrementsOf(recs []*Recording, g grid, m keyMatch, whole bool) []float64 {
	inc := nanSlice(g.n)
	xs := g.xs()
	for _, t := range traces(recs, g, m) {
		if len(t.x) == 0 {
			continue
		}
		first, last := t.x[0], t.x[len(t.x)-1]
		c := cumulative(t)
		for i := 1; i < g.n; i++ {
			if whole && (xs[i-1] < first-1e-9 || xs[i] > last+1e-9) {
				continue
			}
			d := interpEnd(c, xs[i], g.step) - interpEnd(c, xs[i-1], g.step)
			if math.IsNaN(d) {
				continue
			}
			if math.IsNaN(inc[i]) {
				inc[i] = 0
			}
			inc[i] += d
		}
	}
	return inc
}

// levels samples the gauges matching m at each grid point, summed per value
// of label by (all together when by is ""). Groups come back sorted.
func levels(recs []*Recording, g grid, m keyMatch, by string) (groups []string, ys map[string][]float64) {
	ys = map[string][]float64{}
	xs := g.xs()
	for _, t := range traces(recs, g, m) {
		grp := ""
		if by != "" {
			grp, _ = metrics.LabelValue(t.labels, by)
		}
		y, ok := ys[grp]
		if !ok {
			y = nanSlice(g.n)
			ys[grp] = y
			groups = append(groups, grp)
		}
		for i, x := range xs {
			v := hold(t, x)
			if math.IsNaN(v) {
				continue
			}
			if math.IsNaN(y[i]) {
				y[i] = 0
			}
			y[i] += v
		}
	}
	sort.Strings(groups)
	return groups, ys
}

// scale returns ys divided by div, and over the step for rates.
func scale(ys []float64, div float64) []float64 {
	out := make([]float64, len(ys))
	for i, y := range ys {
		out[i] = y / div
	}
	return out
}

// windowSum is, at each i, the sum of the last w non-NaN values up to i; NaN
// when the window holds none.
func windowSum(ys []float64, w int) []float64 {
	out := nanSlice(len(ys))
	for i := range ys {
		sum, any := 0.0, false
		for j := max(0, i-w+1); j <= i; j++ {
			if !math.IsNaN(ys[j]) {
				sum, any = sum+ys[j], true
			}
		}
		if any {
			out[i] = sum
		}
	}
	return out
}

// runningSum is the cumulative sum of the non-NaN values; NaN until the first.
func runningSum(ys []float64) []float64 {
	out := nanSlice(len(ys))
	sum, any := 0.0, false
	for i, y := range ys {
		if !math.IsNaN(y) {
			sum, any = sum+y, true
		}
		if any {
			out[i] = sum
		}
	}
	return out
}

// ratio is a[i]/b[i], NaN where b[i] is 0 or either is NaN; times mul.
func ratio(a, b []float64, mul float64) []float64 {
	out := nanSlice(len(a))
	for i := range a {
		if b[i] > 0 && !math.IsNaN(a[i]) {
			out[i] = a[i] / b[i] * mul
		}
	}
	return out
}

// addSlices is a+b, treating NaN as absent (NaN only when both are).
func addSlices(a, b []float64) []float64 {
	out := nanSlice(len(a))
	for i := range a {
		switch {
		case math.IsNaN(a[i]):
			out[i] = b[i]
		case math.IsNaN(b[i]):
			out[i] = a[i]
		default:
			out[i] = a[i] + b[i]
		}
	}
	return out
}

// hasData reports whether ys holds a finite value.
func hasData(ys []float64) bool {
	for _, y := range ys {
		if !math.IsNaN(y) && !math.IsInf(y, 0) {
			return true
		}
	}
	return false
}

// total sums the non-NaN values.
func total(ys []float64) float64 {
	s := 0.0
	for _, y := range ys {
		if !math.IsNaN(y) {
			s += y
		}
	}
	return s
}

func nanSlice(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.NaN()
	}
	return s
}
