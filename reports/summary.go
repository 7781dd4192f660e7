package reports

import (
	"fmt"
	"math"
	"time"

	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/internal/units"
)

// summaryTable sums up the whole recording: what moved, how fast, how far
// behind the destination fell. Rows without data are left out. With phases,
// data reduction is given per phase (a figure over the whole run would mix
// pass-through into it) and left out here.
func summaryTable(f *figures, recs []*Recording, w int, phased bool) Table {
	t := Table{Title: "Run summary (from the recordings)", Columns: []string{"figure", "value"}}
	add := func(name, value string) { t.Rows = append(t.Rows, []string{name, value}) }
	secs := f.g.span
	add("Recorded", time.Duration(secs*float64(time.Second)).Round(time.Second).String())
	eff, effName := f.effective()
	wire, wireName := f.wire, "source edge"
	if !hasData(wire) {
		wire, wireName = f.link, "simulated link, up"
	}
	if hasData(eff) {
		add("Logical bytes, "+effName, units.FormatSizeDecimal(int64(total(eff))))
	}
	if hasData(wire) {
		add("Wire bytes ("+wireName+")", units.FormatSizeDecimal(int64(total(wire))))
	}
	if logical, wb, _ := f.reductionInputs(); logical != nil && total(wb) > 0 && !phased {
		add("Data reduction (whole recording)", fmt.Sprintf("%.2fx", total(logical)/total(wb)))
	}
	if secs > 0 && hasData(eff) {
		add("Effective rate: mean / peak over "+windowName(f.g, w),
			fmt.Sprintf("%.1f / %.1f KB/s", total(eff)/secs/1000, maxOf(windowSum(eff, w))/(float64(w)*f.g.step)/1000))
	}
	if secs > 0 && hasData(wire) {
		add("Wire rate: mean / peak over "+windowName(f.g, w),
			fmt.Sprintf("%.1f / %.1f KB/s", total(wire)/secs/1000, maxOf(windowSum(wire, w))/(float64(w)*f.g.step)/1000))
	}
	if _, ys := levels(recs, f.g, metricIs(metrics.SrcData), ""); hasData(ys[""]) {
		add("Src Data, peak (all volumes)", units.FormatSizeDecimal(int64(maxOf(ys[""]))))
	}
	groups, lat := latencies(recs, f.g)
	worst, worstVol := math.Inf(-1), ""
	for _, v := range groups {
		if m := maxOf(lat[v].y); m > worst {
			worst, worstVol = m, v
		}
	}
	if !math.IsInf(worst, -1) {
		add("Time Latency, worst", fmt.Sprintf("%s (%s)", duration(worst), volumeName(worstVol)))
	}
	return t
}

// maxOf is the largest finite value, or -Inf when there is none.
func maxOf(ys []float64) float64 {
	m := math.Inf(-1)
	for _, y := range ys {
		if !math.IsNaN(y) && !math.IsInf(y, 0) {
			m = math.Max(m, y)
		}
	}
	return m
}
