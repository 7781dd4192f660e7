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

func transferChart(f *figures, _ []*Recording, _ int) (Chart, string) {
	c := Chart{ID: "transfer-rate", Title: "Transfer rate: wire vs effective", YLabel: "KB/s (1000 B/s)", YMin0: true}
	kb := f.g.step * 1000
	xs := f.g.xs()
	if hasData(f.wire) {
		c.Series = append(c.Series, Series{Name: "wire (proxy to WAN)", X: xs, Y: scale(f.wire, kb)})
	}
	if hasData(f.link) {
		c.Series = append(c.Series, Series{Name: "link (simulated WAN, up)", X: xs, Y: scale(f.link, kb), Dashed: hasData(f.wire)})
	}
	if eff, name := f.effective(); hasData(eff) {
		c.Series = append(c.Series, Series{Name: name, X: xs, Y: scale(eff, kb)})
	}
	return c, notRecorded(metrics.ProxyWire, metrics.LinkBytes, metrics.DstLogical)
}

func srcDataChart(f *figures, recs []*Recording, _ int) (Chart, string) {
	c := Chart{ID: "src-data", Title: "Src Data per volume (bytes waiting in the source buffer)", YLabel: "MiB", YMin0: true}
	groups, ys := levels(recs, f.g, metricIs(metrics.SrcData), "volume")
	for _, v := range groups {
		c.Series = append(c.Series, Series{Name: volumeName(v), X: f.g.xs(), Y: scale(ys[v], 1<<20)})
	}
	return c, notRecorded(metrics.SrcData)
}

func latencyChart(f *figures, recs []*Recording, _ int) (Chart, string) {
	c := Chart{ID: "time-latency", Title: "Time Latency per volume (how far the destination lags)", YLabel: "seconds", YMin0: true}
	groups, ys := levels(recs, f.g, metricIs(metrics.TimeLatency), "volume")
	for _, v := range groups {
		c.Series = append(c.Series, Series{Name: volumeName(v), X: f.g.xs(), Y: ys[v]})
	}
	return c, notRecorded(metrics.TimeLatency)
}

func volumeName(v string) string {
	if v == "" {
		return "(no volume label)"
	}
	return v
}

func reductionChart(f *figures, _ []*Recording, w int) (Chart, string) {
	c := Chart{ID: "data-reduction", Title: "Data reduction (logical / wire bytes)", YLabel: "x", YMin0: true}
	logical, wire, how := f.reductionInputs()
	if logical == nil || !hasData(wire) {
		return c, notRecorded(metrics.ProxyLogical, metrics.ProxyWire)
	}
	xs := f.g.xs()
	c.Series = append(c.Series,
		Series{Name: "over " + windowName(f.g, w), X: xs, Y: ratio(windowSum(logical, w), windowSum(wire, w), 1)},
		Series{Name: "since start", X: xs, Y: ratio(runningSum(logical), runningSum(wire), 1), Dashed: true},
	)
	c.Note = "From " + how + "."
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
		c.Series = append(c.Series, Series{Name: "wire (proxy to WAN)", X: f.g.xs(), Y: scale(f.wire, f.g.step*1000), Dashed: true})
	}
	if unlimited > 0 {
		c.Note = "The cap line is absent where the schedule allows an unlimited rate (" +
			num(100*float64(unlimited)/float64(points)) + "% of the samples)."
	}
	return c, ""
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
