package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/aimwan/aimwan/internal/durable"
	"github.com/aimwan/aimwan/reports"
	"github.com/aimwan/aimwan/sim/estimate"
)

// Projection size: the seed's "36 GB would take 3.06 h instead of 42.7 h".
const projectBytes = 36e9

// Result is result.json. The first fields are the contract read by
// `aimwan report` (rates in KB/s = 1000 B/s); the rest are details.
type Result struct {
	LineKBps        float64 `json:"line_kbps"`        // configured line rate
	PassthroughKBps float64 `json:"passthrough_kbps"` // logical bytes destaged per second, pass-through phase
	EffectiveKBps   float64 `json:"effective_kbps"`   // logical bytes destaged per second, optimized phase
	Speedup         float64 `json:"speedup"`          // effective / line
	PeakSpeedup     float64 `json:"peak_speedup"`     // best 60-s effective rate / line
	LogicalBytes    int64   `json:"logical_bytes"`    // logical bytes destaged in the optimized phase
	WireBytes       int64   `json:"wire_bytes"`       // source edge's wire bytes in the optimized phase
	ElapsedS        float64 `json:"elapsed_s"`        // duration of the optimized phase
	Verified        bool    `json:"verified"`         // every destination volume SHA-256-equal to its source

	Scale       string          `json:"scale"`
	Seed        uint64          `json:"seed,omitempty"`
	Workload    string          `json:"workload"` // "generated" or "images"
	Primed      bool            `json:"primed"`   // the destination cache was primed with the template
	Drained     bool            `json:"drained"`  // the optimized phase ended with everything destaged
	Link        LinkInfo        `json:"link"`
	Phases      []PhaseResult   `json:"phase_details"`
	Projection  Projection      `json:"projection_36gb"`
	Volumes     []VolumeResult  `json:"volumes"`
	CPU         map[string]CPU  `json:"cpu"` // per daemon and phase ("proxy-src/optimize"), and "bench"
	Notes       []string        `json:"notes,omitempty"`
	PhaseMarks  []reports.Phase `json:"phases"`
	TotalS      float64         `json:"total_s"` // the whole run, setup and verify included
	StartedAt   time.Time       `json:"started_at"`
	ReductionX  float64         `json:"data_reduction"` // logical / wire in the optimized phase
	LineUsePct  float64         `json:"line_use_pct"`   // link bytes / (line - cross) in the optimized phase
	CacheHitPct float64         `json:"cache_hit_pct"`  // chunks sent as references, optimized phase
	ProxyFlags  []string        `json:"proxy_flags"`    // settings given to the proxies besides addresses and keys

	// Creation says how the VMs were created: "thick" or "thin", "side by
	// side" or "one after another".
	Creation string `json:"creation"`
	// WrittenBytes are the bytes written through NBD as data (all clones);
	// ZeroedBytes those written as WRITE_ZEROES (thin creation).
	WrittenBytes int64 `json:"written_bytes"`
	ZeroedBytes  int64 `json:"zeroed_bytes"`
	// PeakRSS is each daemon's peak resident set size (VmHWM), by name;
	// the proxies per phase ("proxy-src/optimize"), as they restart at the
	// switch.
	PeakRSS map[string]int64 `json:"peak_rss_bytes"`
	// Estimate is the offline estimate of the clones (sim/estimate):
	// content-defined chunks, unique ones each compressed with zstd -3.
	// EstimateBytes is its total and WireVsEstimate = wire_bytes /
	// estimate_bytes (at most 1: the pair sent no more than an offline
	// dedupe+compress would need).
	Estimate       *estimate.Result `json:"estimate,omitempty"`
	EstimateBytes  int64            `json:"estimate_bytes,omitempty"`
	WireVsEstimate float64          `json:"wire_vs_estimate,omitempty"`
	// LineScale is the scale's line multiplier (10 at scale seed: 20
	// Mbit/s); SeedUnits then holds the figures converted to the seed's
	// line.
	LineScale float64    `json:"line_scale"`
	SeedUnits *SeedUnits `json:"seed_units,omitempty"`
}

// SeedUnits are the figures of a run on a line LineScale times the seed's,
// converted to the seed's line: rates divided by LineScale, durations
// multiplied by it (the same bytes over a line that many times slower take
// that many times longer). Speed-ups and data reduction are ratios and need
// no conversion.
type SeedUnits struct {
	LineKBps              float64    `json:"line_kbps"`
	PassthroughKBps       float64    `json:"passthrough_kbps"`
	EffectiveKBps         float64    `json:"effective_kbps"`
	PeakKBps              float64    `json:"peak_kbps"`
	PassthroughMin        float64    `json:"passthrough_min"`           // length of the pass-through phase
	OptimizedMin          float64    `json:"optimized_min"`             // length of the optimized phase
	TimeLatencyEndPassMin float64    `json:"time_latency_end_pass_min"` // at the end of pass-through
	Projection            Projection `json:"projection_36gb"`
}

// LinkInfo is the simulated line.
type LinkInfo struct {
	Simulated bool    `json:"simulated"`           // false: proxies connected directly (development)
	Unlimited bool    `json:"unlimited,omitempty"` // no rate limit (rate_bytes_per_s is then 0)
	RateBps   float64 `json:"rate_bytes_per_s"`
	RTTMs     float64 `json:"rtt_ms"`
	CrossBps  float64 `json:"cross_bytes_per_s"`
	// CrossPacket is the cross-traffic packet size when the scale sets one
	// (0: the link simulator's 200 bytes).
	CrossPacket int `json:"cross_packet_bytes,omitempty"`
}

// PhaseResult is what one phase achieved.
type PhaseResult struct {
	Name            string   `json:"name"`
	DurationS       float64  `json:"duration_s"`
	Created         []string `json:"created"`        // clones created in the phase
	DestagedBytes   int64    `json:"destaged_bytes"` // logical bytes destaged
	KBps            float64  `json:"kbps"`           // destaged / duration
	WireBytes       int64    `json:"wire_bytes"`     // source edge's wire bytes
	LinkBytes       int64    `json:"link_bytes"`     // link forward bytes (IP/UDP headers included)
	LinkKBps        float64  `json:"link_kbps"`      // link forward rate
	LinkDrops       int64    `json:"link_drops"`     // packets the link dropped (queue, loss)
	CrossKBps       float64  `json:"cross_kbps"`     // cross traffic the link queued, per second
	TimeLatencyEndS float64  `json:"time_latency_end_s"`
	TimeLatencyMaxS float64  `json:"time_latency_max_s"`
	OldestUnackedS  float64  `json:"oldest_unacked_end_s"` // src: age of the oldest write not yet acked (its RPO) at the end
	SrcDataEndBytes int64    `json:"src_data_end_bytes"`
	PeakKBps        float64  `json:"peak_kbps"`     // best 60-s destage rate
	Peak10sKBps     float64  `json:"peak_10s_kbps"` // best 10-s destage rate (bursty: files land together)
}

// Projection: time to move 36 GB at each rate.
type Projection struct {
	PassthroughH float64 `json:"passthrough_h"`
	EffectiveH   float64 `json:"effective_h"`
}

// VolumeResult is the verification of one volume.
type VolumeResult struct {
	Name      string `json:"name"`
	Image     string `json:"image"`
	Bytes     int64  `json:"bytes"`
	SHA256    string `json:"sha256"`     // of the image as written
	SrcSHA256 string `json:"src_sha256"` // source volume
	DstSHA256 string `json:"dst_sha256"` // destination volume
	Verify    string `json:"aimwan_verify"`
	Equal     bool   `json:"equal"`
}

// CPU is a process's CPU use over an interval.
type CPU struct {
	Seconds float64 `json:"seconds"`
	Percent float64 `json:"percent_of_one_core"`
}

func cpuOver(used, over time.Duration) CPU {
	c := CPU{Seconds: used.Seconds()}
	if over > 0 {
		c.Percent = 100 * used.Seconds() / over.Seconds()
	}
	return c
}

// writeJSON writes v to dir/name atomically.
func writeJSON(dir, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: %s: %w", name, err)
	}
	if err := durable.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// hours formats a duration in hours like the seed ("3.06 h").
func hours(h float64) string {
	if h <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f h", h)
}

// latency formats a Time Latency; 0 means no write was destaged yet.
func latency(s float64) string {
	if s == 0 {
		return "none destaged yet"
	}
	return minsec(s)
}

func minsec(s float64) string {
	return (time.Duration(s) * time.Second).Round(time.Second).String()
}

// PrintTable writes the result beside the seed's figures.
func (r *Result) PrintTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(a, b, c string) { fmt.Fprintf(tw, "%s\t%s\t%s\n", a, b, c) }
	pt, opt := r.phase("passthrough"), r.phase("optimize")
	_, hasPass := r.hasPhase("passthrough")
	row("FIGURE", "SEED", "THIS RUN")
	row("Line", "240 KB/s (2 Mbit/s), VoIP ≈70 KB/s", r.lineText())
	row("VMs created", "3 × 12 GB from one template", fmt.Sprintf("%s; %s written as data, %s as zeroes", r.Creation,
		mb(float64(r.WrittenBytes)), mb(float64(r.ZeroedBytes))))
	if hasPass {
		row("Pass-through rate (journal bytes on the line)", "≈ line", fmt.Sprintf("%.0f KB/s (%s line) for %s; %s destaged (%.0f KB/s)",
			r.PassthroughKBps, times(r.PassthroughKBps, r.LineKBps), minsec(pt.DurationS), mb(float64(pt.DestagedBytes)), pt.KBps))
		row("Time Latency, end of pass-through", "20 → 40 min (growing)", fmt.Sprintf("%s (growing; oldest unacked write at src: %s)",
			latency(pt.TimeLatencyEndS), minsec(pt.OldestUnackedS)))
		row("Src Data, end of pass-through", "—", mb(float64(pt.SrcDataEndBytes)))
	} else {
		row("Pass-through phase", "20+ min", "none: every clone created in the optimized phase")
	}
	if r.LineKBps > 0 {
		row("Peak speed-up (best minute of destage)", "20x = 5100 KB/s", fmt.Sprintf("%.1fx = %.0f KB/s (bursty: files land together; best 10 s: %.0fx)",
			r.PeakSpeedup, r.PeakSpeedup*r.LineKBps, opt.Peak10sKBps/r.LineKBps))
		row("Effective rate, optimized", "14.2x = 3425 KB/s over 102 min", fmt.Sprintf("%.1fx = %.0f KB/s over %s", r.Speedup, r.EffectiveKBps, minsec(r.ElapsedS)))
	} else {
		row("Ingest, optimized (unlimited line)", "—", fmt.Sprintf("%.1f MB/s over %s (best minute %.1f MB/s)", r.EffectiveKBps/1e3, minsec(r.ElapsedS), opt.PeakKBps/1e3))
	}
	row("Logical / wire bytes, optimized", "20 GB / —", fmt.Sprintf("%s / %s (%.1fx reduction)", mb(float64(r.LogicalBytes)), mb(float64(r.WireBytes)), r.ReductionX))
	row("Offline estimate (8 KiB chunks, unique ones zstd -3)", "—", r.estimateText())
	if r.LineKBps > 0 {
		row("Line use, optimized", "saturated", fmt.Sprintf("%.0f%% of line minus cross (%.0f KB/s on the link)", r.LineUsePct, opt.LinkKBps))
	}
	caught := "NOT caught up"
	if r.Drained {
		caught = "every volume caught up; on a quiet volume it grows by definition"
	}
	row("Time Latency, end of optimized", "—", fmt.Sprintf("%s (%s)", minsec(opt.TimeLatencyEndS), caught))
	row("36 GB at pass-through / optimized", "42.7 h / 3.06 h", hours(r.Projection.PassthroughH)+" / "+hours(r.Projection.EffectiveH))
	if u := r.SeedUnits; u != nil {
		row(fmt.Sprintf("In seed units (rates ÷ %g, times × %g)", r.LineScale, r.LineScale), "", fmt.Sprintf(
			"line %.0f KB/s; pass-through %.0f KB/s for %.0f min; effective %.0f KB/s over %.0f min; 36 GB: %s / %s",
			u.LineKBps, u.PassthroughKBps, u.PassthroughMin, u.EffectiveKBps, u.OptimizedMin, hours(u.Projection.PassthroughH), hours(u.Projection.EffectiveH)))
	}
	row("Proxy CPU, optimized (src / dst edge)", "—", fmt.Sprintf("%.0f%% / %.0f%% of one core", r.CPU[nameProxySrc+"/optimize"].Percent, r.CPU[nameProxyDst+"/optimize"].Percent))
	row("Proxy peak RSS, optimized (src / dst edge)", "—", fmt.Sprintf("%s / %s", mib(r.PeakRSS[nameProxySrc+"/optimize"]), mib(r.PeakRSS[nameProxyDst+"/optimize"])))
	row("DR cache primed with the template", "—", yesNo(r.Primed))
	row("Verified (SHA-256, every volume)", "yes", yesNo(r.Verified))
	tw.Flush()
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

// lineText describes the line for the table.
func (r *Result) lineText() string {
	switch {
	case !r.Link.Simulated:
		return "direct (no link simulator)"
	case r.Link.Unlimited:
		return fmt.Sprintf("unlimited, RTT %.0f ms, cross %.0f KB/s", r.Link.RTTMs, r.Link.CrossBps/1e3)
	}
	return fmt.Sprintf("%.0f KB/s, RTT %.0f ms, cross %.0f KB/s", r.LineKBps, r.Link.RTTMs, r.Link.CrossBps/1e3)
}

// estimateText compares the wire bytes with the offline estimate.
func (r *Result) estimateText() string {
	if r.Estimate == nil {
		return "not computed"
	}
	return fmt.Sprintf("%s for the clones' %s: wire / estimate = %.2f", mb(float64(r.EstimateBytes)), mb(float64(r.Estimate.Bytes)), r.WireVsEstimate)
}

// times is a/b as "0.74x", or "—" without b.
func times(a, b float64) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// mib formats a memory size in MiB; 0 is unknown.
func mib(n int64) string {
	if n <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

func (r *Result) hasPhase(name string) (PhaseResult, bool) {
	for _, p := range r.Phases {
		if p.Name == name {
			return p, true
		}
	}
	return PhaseResult{Name: name}, false
}

func (r *Result) phase(name string) PhaseResult {
	p, _ := r.hasPhase(name)
	return p
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}
