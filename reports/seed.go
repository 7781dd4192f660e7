package reports

import (
	"fmt"
	"math"
	"time"

	"github.com/aimwan/aimwan/internal/units"
)

// The seed experiment's figures (the "before/after" screenshots the project
// started from): a 2 Mbit/s line, pass-through at line rate, 8x as soon as
// optimization starts, 20x at peak, 14.2x on average over 102 minutes.
const (
	seedLine      = "240 KB/s (2 Mbit/s)"
	seedPass      = "≈ line (240 KB/s)"
	seedAtOnce    = "8x"
	seedPeak      = "20x = 5100 KB/s"
	seedAverage   = "14.2x = 3425 KB/s over 102 min"
	seedMoved     = "36 GB in 3.06 h instead of 42.7 h"
	seedVerified  = "yes"
	atOnceSeconds = 60 // "at once": the first minute of the optimize phase, or its first tenth when shorter
	atOnceMin     = 10 // ... but at least 10 s (or the whole phase)
)

// OptimizePhase is the phase name the bench gives its optimized transfer; the
// report measures the "at once" speed-up over its first minute.
const OptimizePhase = "optimize"

// seedTable sets the seed's figures beside the bench's. f (the recordings) may
// be nil; it only adds the speed-up in the first minute of the optimize phase.
func seedTable(r *BenchResult, f *figures, phases []Phase) Table {
	t := Table{Title: "Seed experiment vs this run", Columns: []string{"figure", "seed", "measured"}}
	add := func(name, seed, measured string) { t.Rows = append(t.Rows, []string{name, seed, measured}) }
	add("Line rate", seedLine, kbps(r.LineKBps))
	pass := kbps(r.PassthroughKBps)
	if r.LineKBps > 0 && r.PassthroughKBps > 0 {
		pass += fmt.Sprintf(" (%.2fx line)", r.PassthroughKBps/r.LineKBps)
	}
	add("Pass-through rate", seedPass, pass)
	add("Speed-up at once (start of optimize phase)", seedAtOnce, atOnce(r, f, phases))
	peak := "—"
	if r.PeakSpeedup > 0 {
		peak = fmt.Sprintf("%.1fx", r.PeakSpeedup)
		if r.LineKBps > 0 {
			peak += fmt.Sprintf(" = %.0f KB/s", r.PeakSpeedup*r.LineKBps)
		}
	}
	add("Peak speed-up", seedPeak, peak)
	avg := "—"
	if r.Speedup > 0 {
		avg = fmt.Sprintf("%.1fx = %.0f KB/s", r.Speedup, r.EffectiveKBps)
		if r.ElapsedS > 0 {
			avg += " over " + duration(r.ElapsedS)
		}
	}
	add("Average speed-up", seedAverage, avg)
	moved := "—"
	if r.LogicalBytes > 0 && r.ElapsedS > 0 {
		moved = fmt.Sprintf("%s in %s", units.FormatSizeDecimal(r.LogicalBytes), duration(r.ElapsedS))
		if r.LineKBps > 0 {
			moved += " instead of " + duration(float64(r.LogicalBytes)/(r.LineKBps*1000))
		}
	}
	add("Data moved", seedMoved, moved)
	add("Data reduction (source edge, logical / wire)", "—", seedReduction(r, f, phases))
	add("Verified (destination = source)", seedVerified, yesNo(r.Verified))
	return t
}

// seedReduction is the data reduction of the optimize phase as the rest of
// the page defines it (the source edge's logical / wire bytes, from the
// recordings), so the seed table and the phase table agree; without
// recordings, result.json's logical / wire bytes, said so.
func seedReduction(r *BenchResult, f *figures, phases []Phase) string {
	if f != nil {
		logical, wire, _ := f.reductionInputs()
		for _, rp := range resolvePhases(phases, f.g) {
			if rp.name != OptimizePhase || logical == nil {
				continue
			}
			l, _ := phaseSum(logical, f.g, rp)
			if wb, _ := phaseSum(wire, f.g, rp); wb > 0 && l > 0 {
				return fmt.Sprintf("%.1fx over the optimize phase (%s on the wire)", l/wb, units.FormatSizeDecimal(int64(wb)))
			}
		}
	}
	if r.WireBytes > 0 {
		return fmt.Sprintf("%.1fx (result.json: %s logical / %s on the wire)", float64(r.LogicalBytes)/float64(r.WireBytes),
			units.FormatSizeDecimal(r.LogicalBytes), units.FormatSizeDecimal(r.WireBytes))
	}
	return "—"
}

// atOnce is the effective rate at the start of the optimize phase (its first
// minute, or first tenth when shorter than ten minutes) divided by the line
// rate, when the recordings allow it.
func atOnce(r *BenchResult, f *figures, phases []Phase) string {
	if f == nil || r.LineKBps <= 0 {
		return "—"
	}
	for _, rp := range resolvePhases(phases, f.g) {
		if rp.name != OptimizePhase {
			continue
		}
		length := rp.end - rp.start
		window := math.Max(math.Min(atOnceMin, length), math.Min(atOnceSeconds, length/10))
		window = math.Max(window, f.g.step)
		rp.end = math.Min(rp.end, rp.start+window)
		eff, _ := f.effective()
		bytes, secs := phaseSum(eff, f.g, rp)
		if secs <= 0 || !hasData(eff) {
			return "—"
		}
		rate := bytes / secs / 1000
		return fmt.Sprintf("%.1fx = %.0f KB/s over the first %s", rate/r.LineKBps, rate, duration(secs))
	}
	return "—"
}

func kbps(v float64) string {
	if v <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f KB/s", v)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// duration formats seconds as the seed does: hours above 2 h, else minutes,
// else seconds.
func duration(s float64) string {
	switch {
	case s >= 2*3600:
		return fmt.Sprintf("%.2f h", s/3600)
	case s >= 120:
		return fmt.Sprintf("%.0f min", s/60)
	}
	return (time.Duration(s*10) * time.Second / 10).String()
}
