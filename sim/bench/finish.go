package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aimwan/aimwan/internal/testkit/procs"
	"github.com/aimwan/aimwan/reports"
)

// finish verifies the volumes, completes the result, writes result.json
// and phases.json and prints the table. drainErr is the optimized phase's
// outcome (nil or ErrNotDrained).
func (r *run) finish(ctx context.Context, drainErr error) (*Result, error) {
	res := r.res
	fmt.Fprintln(r.cfg.Progress, "verifying every volume (SHA-256 of source and destination, aimwan verify)...")
	res.Volumes, res.Verified = verify(ctx, r.c, r.ws.images)
	for _, im := range r.ws.images {
		res.WrittenBytes += im.sent.data
		res.ZeroedBytes += im.sent.zeros
	}
	pass, opt := res.phase(phasePass), res.phase(phaseOpt)
	// Pass-through moves journal files whole, so bytes destaged at dst come
	// in steps of a file (4 MiB = 23 s of a 2 Mbit/s line): over a short
	// phase the line's own count of journal bytes carried is the transfer
	// rate, as the seed's chart showed it. Without a link, the destaged rate.
	res.PassthroughKBps = pass.KBps
	if res.Link.Simulated && pass.LinkKBps > 0 {
		res.PassthroughKBps = pass.LinkKBps
	}
	res.EffectiveKBps = opt.KBps
	res.LogicalBytes = opt.DestagedBytes
	res.WireBytes = opt.WireBytes
	res.ElapsedS = opt.DurationS
	if res.LineKBps > 0 {
		res.Speedup = res.EffectiveKBps / res.LineKBps
		res.PeakSpeedup = opt.PeakKBps / res.LineKBps
	}
	if res.WireBytes > 0 {
		res.ReductionX = float64(res.LogicalBytes) / float64(res.WireBytes)
	}
	if avail := (r.cfg.Rate - r.cfg.Cross) / 1e3; avail > 0 && res.Link.Simulated && !res.Link.Unlimited {
		res.LineUsePct = 100 * opt.LinkKBps / avail
	}
	if res.PassthroughKBps > 0 {
		res.Projection.PassthroughH = projectBytes / (res.PassthroughKBps * 1e3) / 3600
	}
	if res.EffectiveKBps > 0 {
		res.Projection.EffectiveH = projectBytes / (res.EffectiveKBps * 1e3) / 3600
	}
	res.SeedUnits = r.seedUnits()
	if !r.cfg.NoEstimate {
		if err := r.estimate(ctx); err != nil {
			if ctx.Err() != nil {
				return res, err
			}
			res.Notes = append(res.Notes, fmt.Sprintf("offline estimate failed: %v", err))
		}
	}
	if cpu, err := procs.SelfCPU(); err == nil {
		res.CPU["bench"] = cpuOver(cpu, time.Since(r.start))
	}
	res.TotalS = time.Since(r.start).Seconds()
	res.Notes = append(res.Notes, r.diagnose()...)
	if err := writeJSON(r.cfg.Out, reports.ResultFile, res); err != nil {
		return res, err
	}
	if err := writeJSON(r.cfg.Out, reports.PhasesFile, res.PhaseMarks); err != nil {
		return res, err
	}
	fmt.Fprintln(r.cfg.Progress)
	res.PrintTable(r.cfg.Progress)
	var err error
	if drainErr != nil {
		err = drainErr
	}
	if !res.Verified {
		err = errors.Join(err, fmt.Errorf("bench: %w (see %s)", ErrNotVerified, r.cfg.Out+"/"+reports.ResultFile))
	}
	return res, err
}

// diagnose explains the figures: what limited the optimized phase.
func (r *run) diagnose() []string {
	res := r.res
	var notes []string
	if !res.Link.Simulated {
		notes = append(notes, "no link simulator (--no-link): the proxies were connected directly; rates and speed-ups are not a WAN's")
		return notes
	}
	opt := res.phase(phaseOpt)
	ps, pd := res.CPU[nameProxySrc+"/"+phaseOpt], res.CPU[nameProxyDst+"/"+phaseOpt]
	switch {
	case res.Link.Unlimited:
		notes = append(notes, fmt.Sprintf("unlimited line: the chain itself set the pace (%.1f MB/s destaged); CPU over the optimized phase: proxies %.0f%% (source edge) and %.0f%% (destination edge) of one core; over the run: src %.0f%%, dst %.0f%%, link %.0f%%",
			res.EffectiveKBps/1e3, ps.Percent, pd.Percent, res.CPU[nameSrc].Percent, res.CPU[nameDst].Percent, res.CPU[nameLink].Percent))
	case res.LineUsePct >= 85:
		notes = append(notes, fmt.Sprintf("the line was the bottleneck in the optimized phase: %.0f%% of the rate left by the cross traffic was used; proxy CPU %.0f%% (source edge) and %.0f%% (destination edge) of one core",
			res.LineUsePct, ps.Percent, pd.Percent))
	case opt.DurationS < 30:
		notes = append(notes, fmt.Sprintf("the line carried %.0f%% of the rate left by the cross traffic; the optimized phase (%.0f s) is too short for the start (proxy restart, QUIC handshake and slow start, first round trips) and the last acknowledgements not to weigh",
			res.LineUsePct, opt.DurationS))
	default:
		notes = append(notes, fmt.Sprintf("the line was NOT saturated in the optimized phase (%.0f%% of the rate left by the cross traffic, %.0f KB/s); proxy CPU %.0f%% / %.0f%% of one core, src %.0f%%, dst %.0f%% over the run: the bottleneck was elsewhere",
			res.LineUsePct, opt.LinkKBps, ps.Percent, pd.Percent, res.CPU[nameSrc].Percent, res.CPU[nameDst].Percent))
	}
	if res.Speedup > 0 && res.ReductionX > 0 && !res.Link.Unlimited {
		ceiling := res.ReductionX * (r.cfg.Rate - r.cfg.Cross) / r.cfg.Rate
		notes = append(notes, fmt.Sprintf("ceiling at this data reduction: %.1fx (reduction %.1fx × the %.0f%% of the line left by cross traffic); measured %.1fx",
			ceiling, res.ReductionX, 100*(r.cfg.Rate-r.cfg.Cross)/r.cfg.Rate, res.Speedup))
	}
	for _, p := range res.Phases {
		if want := res.Link.CrossBps / 1e3; want > 0 && p.CrossKBps < 0.9*want {
			notes = append(notes, fmt.Sprintf("the link simulator queued only %.0f KB/s of the %.0f KB/s of cross traffic in the %s phase (its packet clock fell behind on a loaded machine): the line had more room than the figures assume",
				p.CrossKBps, want, p.Name))
		}
	}
	if pass, ok := res.hasPhase(phasePass); ok && pass.LinkBytes > 0 {
		notes = append(notes, fmt.Sprintf("the pass-through phase carried %s of journal bytes (link) that wire_bytes, the optimized phase's, does not count; the offline estimate covers every clone",
			strings.TrimSpace(mb(float64(pass.LinkBytes)))))
	}
	if !res.Drained {
		notes = append(notes, "the optimized phase hit its time limit before everything was destaged")
	}
	return notes
}

// seedUnits converts a scaled-line run's figures to the seed's line (nil at
// a scale with the seed's line, or without a rate-limited link).
func (r *run) seedUnits() *SeedUnits {
	res := r.res
	k := res.LineScale
	if k <= 1 || !res.Link.Simulated || res.Link.Unlimited {
		return nil
	}
	pass, opt := res.phase(phasePass), res.phase(phaseOpt)
	return &SeedUnits{LineKBps: res.LineKBps / k, PassthroughKBps: res.PassthroughKBps / k, EffectiveKBps: res.EffectiveKBps / k,
		PeakKBps: opt.PeakKBps / k, PassthroughMin: pass.DurationS * k / 60, OptimizedMin: opt.DurationS * k / 60,
		TimeLatencyEndPassMin: pass.TimeLatencyEndS * k / 60,
		Projection:            Projection{PassthroughH: res.Projection.PassthroughH * k, EffectiveH: res.Projection.EffectiveH * k}}
}
