package reports

import (
	"math"
	"strings"

	"github.com/aimwan/aimwan/internal/metrics"
)

// Each chart builder returns the chart (no series when there is nothing to
// draw) and, for an empty chart, why.

// notRecorded says which metrics an empty chart needs.
func notRecorded(names ...string) string {
	return "no " + strings.Join(names, " or ") + " recorded"
}

// transferChart draws the wire rate (per grid step) beside the effective
// rate on a logarithmic axis: optimized, the effective rate is tens of times
// the wire rate, and a linear axis would flatten the wire to zero. The
// effective rate is the mean over the window: destage lands whole journal
// files, so per second it is a comb of spikes.
func transferChart(f *figures, _ []*Recording, w int) (Chart, string) {
	c := Chart{ID: "transfer-rate", Title: "Transfer rate: wire vs effective", YLabel: "KB/s (1000 B/s), log scale", LogY: true}
	xs := f.g.xs()
	if hasData(f.wire) {
		c.Series = append(c.Series, Series{Name: "wire (source edge to WAN)", X: xs, Y: f.g.rates(f.wireR, 1000)})
	}
	if hasData(f.link) {
		c.Series = append(c.Series, Series{Name: "link (simulated WAN, up)", X: xs, Y: f.g.rates(f.linkR, 1000), Dashed: hasData(f.wire)})
	}
	if eff, name := f.effective(); hasData(eff) {
		c.Series = append(c.Series, Series{Name: name + ", mean over " + windowName(f.g, w), X: xs,
			Y: windowMean(f.g.rates(f.effectiveRate(), 1000), w)})
	}
	c.Note = "Logarithmic scale: each gridline is ten times the one below. A rate of 0 is a gap."
	return c, notRecorded(metrics.ProxyWire, metrics.LinkBytes, metrics.DstLogical)
}

func srcDataChart(f *figures, recs []*Recording, _ int) (Chart, string) {
	c := Chart{ID: "src-data", Title: "Src Data per volume (bytes waiting in the source buffer)", YLabel: "MB (10⁶ bytes)", YMin0: true}
	groups, ys := levels(recs, f.g, metricIs(metrics.SrcData), "volume")
	for _, v := range groups {
		c.Series = append(c.Series, Series{Name: volumeName(v), X: f.g.xs(), Y: scale(ys[v], 1e6)})
	}
	return c, notRecorded(metrics.SrcData)
}

func latencyChart(f *figures, recs []*Recording, _ int) (Chart, string) {
	c := Chart{ID: "time-latency", Title: "Time Latency per volume (how far the destination lags)", YLabel: "seconds", YMin0: true}
	groups, ys := latencies(recs, f.g)
	gated := false
	for _, v := range groups {
		c.Series = append(c.Series, Series{Name: volumeName(v), X: f.g.xs(), Y: ys[v].y})
		gated = gated || ys[v].gated
	}
	if gated {
		c.Note = "A volume's line starts at its first destaged file: before it the destination has no Time Latency to report."
	}
	return c, notRecorded(metrics.TimeLatency)
}

// gatedLevels is one volume's Time Latency at each grid point, and whether
// points before its first destage were dropped.
type gatedLevels struct {
	y     []float64
	gated bool
}

// latencies is Time Latency per volume, without the points before the
// volume's first destaged file (aimwan_dst_files_destaged_total or
// aimwan_dst_destaged_seq above 0): until then the destination exports 0,
// which is not a measurement. Volumes whose destage was not recorded are
// drawn as recorded.
func latencies(recs []*Recording, g grid) ([]string, map[string]gatedLevels) {
	groups, ys := levels(recs, g, metricIs(metrics.TimeLatency), "volume")
	destaged := func(n string, _ []metrics.Label) bool {
		return n == metrics.DstFilesDestaged || n == metrics.DstDestagedSeq
	}
	_, progress := levels(recs, g, destaged, "volume")
	out := map[string]gatedLevels{}
	for _, v := range groups {
		y, p := ys[v], progress[v]
		if p == nil || v == "" {
			out[v] = gatedLevels{y: y}
			continue
		}
		gl := gatedLevels{y: append([]float64(nil), y...)}
		for i := range gl.y {
			if p[i] > 0 {
				break
			}
			if !math.IsNaN(gl.y[i]) {
				gl.gated = true
			}
			gl.y[i] = math.NaN()
		}
		out[v] = gl
	}
	return groups, out
}

func volumeName(v string) string {
	if v == "" {
		return "(no volume label)"
	}
	return v
}

func reductionChart(f *figures, _ []*Recording, w int) (Chart, string) {
	c := Chart{ID: "data-reduction", Title: "Data reduction (source edge: logical / wire bytes)", YLabel: "x", YMin0: true}
	logical, wire, _ := f.reductionInputs()
	if logical == nil || !hasData(wire) {
		return c, notRecorded(metrics.ProxyLogical, metrics.ProxyWire)
	}
	xs := f.g.xs()
	c.Series = append(c.Series,
		Series{Name: "over " + windowName(f.g, w), X: xs, Y: ratio(windowSum(logical, w), windowSum(wire, w), 1)},
		Series{Name: "since start", X: xs, Y: ratio(runningSum(logical), runningSum(wire), 1), Dashed: true},
	)
	c.Note = "Data reduction as defined at the top of the page, over a sliding window and since the start of the recording."
	return c, ""
}

func hitRateChart(f *figures, _ []*Recording, w int) (Chart, string) {
	c := Chart{ID: "cache-hit-rate", Title: "Chunk cache hit rate", YLabel: "% of chunks", YMin0: true}
	if !hasData(f.hits) && !hasData(f.misses) {
		return c, notRecorded(metrics.ProxyCacheHits, metrics.ProxyCacheMisses)
	}
	all := addSlices(f.hits, f.misses)
	hits := zeroWhereData(f.hits, all) // 0 hits where only misses were seen
	xs := f.g.xs()
	c.Series = append(c.Series,
		Series{Name: "over " + windowName(f.g, w), X: xs, Y: ratio(windowSum(hits, w), windowSum(all, w), 100)},
		Series{Name: "since start", X: xs, Y: ratio(runningSum(hits), runningSum(all), 100), Dashed: true},
	)
	return c, ""
}

func capChart(f *figures, recs []*Recording, _ int) (Chart, string) {
	c := Chart{ID: "schedule-cap", Title: "Schedule cap (rate the throttle schedule allows)", YLabel: "KB/s (1000 B/s)", YMin0: true}
	unlimited, points, limited := 0, 0, false
	for _, r := range recs { // one line per daemon: caps of two proxies do not add up
		groups, ys := levels([]*Recording{r}, f.g, metricIs(metrics.ProxyScheduleCap), "")
		if len(groups) == 0 {
			continue
		}
		capY := ys[groups[0]]
		for i, y := range capY {
			if math.IsNaN(y) {
				continue
			}
			points++
			if y < 0 || math.IsInf(y, 1) { // the proxy exports unlimited as -1
				capY[i] = math.Inf(1)
				unlimited++
			}
		}
		limited = limited || hasData(capY)
		c.Series = append(c.Series, Series{Name: "cap (" + r.Daemon + ")", X: f.g.xs(), Y: scale(capY, 1000)})
	}
	if len(c.Series) == 0 {
		return c, notRecorded(metrics.ProxyScheduleCap)
	}
	if !limited {
		c.Series = nil
		return c, "unlimited throughout the run"
	}
	if hasData(f.wire) {
		c.Series = append(c.Series, Series{Name: "wire (source edge to WAN)", X: f.g.xs(), Y: f.g.rates(f.wireR, 1000), Dashed: true})
	}
	if unlimited > 0 {
		c.Note = "The cap line is absent where the schedule allows an unlimited rate (" +
			num(100*float64(unlimited)/float64(points)) + "% of the samples)."
	}
	return c, ""
}

// windowMean is, at each i, the mean of the values among the last w up to i
// that are not NaN; NaN when there are none.
func windowMean(ys []float64, w int) []float64 {
	out := nanSlice(len(ys))
	for i := range ys {
		sum, n := 0.0, 0
		for j := max(0, i-w+1); j <= i; j++ {
			if !math.IsNaN(ys[j]) {
				sum, n = sum+ys[j], n+1
			}
		}
		if n > 0 {
			out[i] = sum / float64(n)
		}
	}
	return out
}

// windowName describes w grid steps, e.g. "10 s".
func windowName(g grid, w int) string {
	return num(float64(w)*g.step) + " s"
}

// zeroWhereData is ys with NaN replaced by 0 wherever ref has data.
func zeroWhereData(ys, ref []float64) []float64 {
	out := append([]float64(nil), ys...)
	for i := range out {
		if math.IsNaN(out[i]) && !math.IsNaN(ref[i]) {
			out[i] = 0
		}
	}
	return out
}
