package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/internal/testkit/procs"
	"github.com/aimwan/aimwan/reports"
)

// Phase names (the report measures "at once" on the optimize phase).
const (
	phasePass = "passthrough"
	phaseOpt  = reports.OptimizePhase
)

// Windows of the peak speed-up (shorter phases use their whole length).
// Destage is file-granular: a dozen 4 MiB files in flight land together, so
// a 10-s window of bytes destaged measures a burst, not a rate; the peak in
// result.json is over a minute and the 10-s figure is kept as a detail.
const (
	peakWindow      = time.Minute
	peakWindowShort = 10 * time.Second
)

// ErrNotDrained: the optimized phase hit its time limit before everything
// was destaged.
var ErrNotDrained = errors.New("replication did not finish in the time limit")

// ErrNotVerified: a destination volume differs from its source.
var ErrNotVerified = errors.New("a destination volume differs from its source")

// run is the state of one bench run.
type run struct {
	cfg   Config
	sc    Scale
	ws    *workloadSet
	c     *chain
	s     *sampler
	res   *Result
	start time.Time
	// stopBg ends the sampler and the link recorder (before the daemons
	// stop, so neither scrapes a daemon that is gone). Idempotent.
	stopBg func()
}

// Run runs the experiment and writes result.json and phases.json into
// cfg.Out. The result is returned even with ErrNotDrained or ErrNotVerified.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, sc: cfg.scale(), start: time.Now()}
	if err := cleanOut(cfg.Out); err != nil {
		return nil, err
	}
	var err error
	if r.ws, err = prepareWorkload(cfg, r.sc); err != nil {
		return nil, err
	}
	defer r.ws.close()
	if r.c, err = newChain(cfg, r.ws.volumes(filepath.Join(cfg.Out, "work"))); err != nil {
		return nil, err
	}
	defer r.c.stop()
	r.res = r.newResult()
	if err := r.setUp(ctx); err != nil {
		return nil, err
	}
	bgCtx, stopBg := context.WithCancel(ctx)
	var bg errgroup.Group
	r.s = newSampler(r.c)
	bg.Go(func() error { r.s.serve(bgCtx, cfg.Progress, cfg.ProgressEvery); return nil })
	bg.Go(func() error {
		if err := r.c.recordLink(bgCtx); err != nil {
			cfg.Logger.Warn("bench: link recording", "err", err)
		}
		return nil
	})
	r.stopBg = func() { stopBg(); _ = bg.Wait() }
	runErr := r.phases(ctx)
	r.stopBg()
	if runErr != nil && !errors.Is(runErr, ErrNotDrained) {
		return nil, runErr
	}
	return r.finish(ctx, runErr)
}

// cleanOut removes what an earlier run left in dir (only the bench's own
// files), so recordings do not mix runs.
func cleanOut(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	old = append(old, filepath.Join(dir, reports.ResultFile), filepath.Join(dir, reports.PhasesFile),
		filepath.Join(dir, "report.html"), filepath.Join(dir, "work"), filepath.Join(dir, "logs"))
	for _, p := range old {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("bench: clean %s: %w", dir, err)
		}
	}
	return nil
}

func (r *run) newResult() *Result {
	cfg := r.cfg
	res := &Result{LineKBps: cfg.Rate / 1e3, Scale: r.sc.Name, Workload: "generated", Primed: cfg.Prime,
		Link: LinkInfo{Simulated: !cfg.NoLink, RateBps: cfg.Rate, RTTMs: float64(cfg.RTT) / 1e6, CrossBps: cfg.Cross},
		CPU:  map[string]CPU{}, PeakRSS: map[string]int64{}, StartedAt: r.start.UTC(),
		ProxyFlags: r.c.windowArgs(), LineScale: r.sc.lineScale(), Creation: r.creation()}
	if cfg.Cross > 0 {
		res.Link.CrossPacket = r.sc.CrossPacket
	}
	if cfg.unlimited() { // JSON has no infinity
		res.LineKBps, res.Link.RateBps, res.Link.Unlimited = 0, 0, true
	}
	if len(cfg.Images) > 0 {
		res.Workload = "images"
	} else {
		res.Seed = cfg.Seed
	}
	return res
}

// creation describes how the VMs are created.
func (r *run) creation() string {
	s := "thick"
	if r.sc.Thin {
		s = "thin"
	}
	if r.sc.OneByOne {
		return s + ", one after another"
	}
	return s + ", side by side in each phase"
}

// setUp makes identities, primes the cache if asked and starts the chain in
// pass-through (in optimize without a pass-through phase).
func (r *run) setUp(ctx context.Context) error {
	out := r.cfg.Progress
	var total int64
	for _, im := range r.ws.images {
		total += im.size
	}
	pass := "pass-through phase " + r.sc.Passthrough.String()
	if r.sc.noPassthrough() {
		pass = "no pass-through phase"
	}
	fmt.Fprintf(out, "aimwan bench: scale %s, %d clones (%s each, %s in all, %s, created %s), %s\n",
		r.sc.Name, len(r.ws.images), mb(float64(r.ws.images[0].size)), mb(float64(total)), r.res.Workload, r.res.Creation, pass)
	switch {
	case r.cfg.NoLink:
		fmt.Fprintln(out, "aimwan bench: NO LINK SIMULATOR: proxies connected directly; rates are not a WAN's")
	case r.cfg.unlimited():
		fmt.Fprintf(out, "aimwan bench: line unlimited, RTT %s, cross traffic %.0f KB/s; run folder %s\n", r.cfg.RTT, r.cfg.Cross/1e3, r.cfg.Out)
	default:
		fmt.Fprintf(out, "aimwan bench: line %.0f KB/s, RTT %s, cross traffic %.0f KB/s; run folder %s\n",
			r.cfg.Rate/1e3, r.cfg.RTT, r.cfg.Cross/1e3, r.cfg.Out)
	}
	if err := r.c.keygen(ctx); err != nil {
		return err
	}
	if r.cfg.Prime {
		img := r.cfg.Template
		if img == "" {
			img = filepath.Join(r.c.work, "template.img")
			if err := r.ws.writeTemplate(ctx, img); err != nil {
				return err
			}
		}
		msg, err := r.c.prime(ctx, img)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "aimwan bench: DR cache primed: %s\n", msg)
		r.res.Notes = append(r.res.Notes, "the destination edge's cache was primed with the template (--prime): "+msg)
	}
	mode := phasePass
	if r.sc.noPassthrough() {
		mode = phaseOpt
	}
	if err := r.c.start(ctx, mode); err != nil {
		return err
	}
	fmt.Fprintf(out, "aimwan bench: chain up (%s); logs in %s\n", r.c.names(), r.c.logs)
	return nil
}

// phases runs pass-through (unless the scale has none) then optimize.
func (r *run) phases(ctx context.Context) error {
	imgs := r.ws.images
	last := imgs[len(imgs)-1:]
	out := r.cfg.Progress
	mode := createMode{thin: r.sc.Thin, oneByOne: r.sc.OneByOne}

	t0, t1 := time.Now(), time.Now()
	var p1 point
	if r.sc.noPassthrough() {
		last = imgs
		r.s.setPhase(phaseOpt, t1)
		p1 = r.s.take(ctx)
	} else {
		var err error
		if t1, p1, err = r.passthrough(ctx, imgs[:len(imgs)-1], mode); err != nil {
			return err
		}
	}
	phase2 := "phase 2"
	if r.sc.noPassthrough() {
		phase2 = "optimized phase (no pass-through)"
	}
	fmt.Fprintf(out, "%s: creating %s%s\n", phase2, strings.Join(labels(last), ", "), mode.how(len(last)))
	if err := create(ctx, r.c.a.nbd, last, mode, func(int, int64) {}); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: %s created; waiting until everything is destaged (limit %s)\n", phase2, strings.Join(labels(last), ", "), r.limit())
	drainErr := r.waitDrained(ctx, t1.Add(r.limit()))
	if drainErr != nil && !errors.Is(drainErr, ErrNotDrained) {
		return drainErr
	}
	r.res.Drained = drainErr == nil
	p2 := r.s.take(ctx)
	t2 := time.Now()
	hits, misses := r.cacheCounters(ctx)
	r.stopBg()
	r.c.recordPeakRSS(r.res.PeakRSS, "/"+phaseOpt)
	cpu := r.c.stop()
	for name, used := range cpu {
		switch name {
		case nameProxySrc, nameProxyDst:
			r.res.CPU[name+"/"+phaseOpt] = cpuOver(used, t2.Sub(t1))
		default:
			r.res.CPU[name] = cpuOver(used, t2.Sub(t0))
		}
	}
	opt := r.phaseResult(phaseOpt, t1, t2, p1, p2, p2.proxyWire)
	opt.Created = labels(last)
	r.res.Phases = append(r.res.Phases, opt)
	if hits+misses > 0 {
		r.res.CacheHitPct = 100 * hits / (hits + misses)
	}
	if !r.sc.noPassthrough() {
		r.res.PhaseMarks = append(r.res.PhaseMarks, reports.Phase{Name: phasePass, Start: t0.UTC(), End: t1.UTC()})
	}
	r.res.PhaseMarks = append(r.res.PhaseMarks, reports.Phase{Name: phaseOpt, Start: t1.UTC(), End: t2.UTC()})
	return drainErr
}

// passthrough runs phase 1: the first clones are created and replicated
// through pass-through proxies for the phase's length, then both proxies
// restart optimizing. It returns when and with which sample phase 2
// starts.
func (r *run) passthrough(ctx context.Context, first []*image, mode createMode) (time.Time, point, error) {
	out := r.cfg.Progress
	t0 := time.Now()
	r.s.setPhase(phasePass, t0)
	p0 := r.s.take(ctx)
	fmt.Fprintf(out, "phase 1, pass-through: creating %s from the template%s\n", strings.Join(labels(first), ", "), mode.how(len(first)))
	if err := create(ctx, r.c.a.nbd, first, mode, func(int, int64) {}); err != nil {
		return t0, p0, err
	}
	fmt.Fprintf(out, "phase 1: %s created in %s; replicating until %s\n", strings.Join(labels(first), ", "), since(t0), r.sc.Passthrough)
	if err := r.waitUntil(ctx, t0.Add(r.sc.Passthrough)); err != nil {
		return t0, p0, err
	}
	p1 := r.s.take(ctx)
	t1 := time.Now()
	r.s.setPhase(phaseOpt, t1)
	fmt.Fprintln(out, "phase 2, optimize: restarting both proxies with --mode optimize (src keeps every unacked file)")
	r.c.recordPeakRSS(r.res.PeakRSS, "/"+phasePass)
	cpuSrc, cpuDst, err := r.c.switchMode(ctx, phaseOpt)
	if err != nil {
		return t1, p1, err
	}
	r.res.CPU[nameProxySrc+"/"+phasePass] = cpuOver(cpuSrc, t1.Sub(t0))
	r.res.CPU[nameProxyDst+"/"+phasePass] = cpuOver(cpuDst, t1.Sub(t0))
	pass := r.phaseResult(phasePass, t0, t1, p0, p1, p1.proxyWire)
	pass.Created = labels(first)
	r.res.Phases = append(r.res.Phases, pass)
	return t1, p1, nil
}

// how describes a creation for progress lines.
func (m createMode) how(n int) string {
	s := " (thick, through NBD"
	if m.thin {
		s = " (thin: zero blocks as WRITE_ZEROES, through NBD"
	}
	if m.oneByOne && n > 1 {
		s += ", one after another"
	}
	return s + ")"
}

// limit is the optimized phase's time limit: the scale's (or --limit);
// with the user's images, at least the time the line needs to carry every
// byte uncompressed (10 MB/s on an unlimited line), since those images may
// be of any size.
func (r *run) limit() time.Duration {
	if r.cfg.Limit > 0 || len(r.cfg.Images) == 0 {
		return r.sc.OptimizeLimit
	}
	var total float64
	for _, im := range r.ws.images {
		total += float64(im.size)
	}
	rate := 10e6
	if !r.cfg.unlimited() {
		rate = r.cfg.Rate - r.cfg.Cross
	}
	return max(r.sc.OptimizeLimit, time.Duration(total/rate*float64(time.Second)).Round(time.Second))
}

// phaseResult sums a phase up from its first and last samples; wire is the
// source edge's wire counter for the phase (the proxy starts each phase
// from 0).
func (r *run) phaseResult(name string, from, to time.Time, a, b point, wire float64) PhaseResult {
	d := to.Sub(from)
	pr := PhaseResult{Name: name, DurationS: d.Seconds(), DestagedBytes: int64(b.dstLogical - a.dstLogical),
		WireBytes: int64(wire), LinkBytes: int64(b.linkForward - a.linkForward), LinkDrops: int64(b.linkDrops - a.linkDrops),
		TimeLatencyEndS: b.latency, SrcDataEndBytes: int64(b.srcData), OldestUnackedS: b.srcOldest}
	if s := d.Seconds(); s > 0 {
		pr.KBps = float64(pr.DestagedBytes) / s / 1e3
		pr.LinkKBps = float64(pr.LinkBytes) / s / 1e3
		pr.CrossKBps = (b.linkCross - a.linkCross) / s / 1e3
	}
	pts := r.s.series()
	for _, p := range pts {
		if p.ok && !p.t.Before(from) && !p.t.After(to) {
			pr.TimeLatencyMaxS = max(pr.TimeLatencyMaxS, p.latency)
		}
	}
	pts = append(pts, a, b)
	span := b.t.Sub(a.t)
	pr.PeakKBps = peakRate(pts, a.t, b.t, min(peakWindow, span)) / 1e3
	pr.Peak10sKBps = peakRate(pts, a.t, b.t, min(peakWindowShort, span)) / 1e3
	return pr
}

// cacheCounters reads the source edge's cache hit and miss counters.
func (r *run) cacheCounters(ctx context.Context) (hits, misses float64) {
	m, err := r.s.proxy.sample(ctx)
	if err != nil {
		return 0, 0
	}
	return m.sum(metrics.ProxyCacheHits), m.sum(metrics.ProxyCacheMisses)
}

// waitUntil waits for t, failing when a daemon dies.
func (r *run) waitUntil(ctx context.Context, t time.Time) error {
	for time.Now().Before(t) {
		if d := r.c.crashedDaemon(); d != nil {
			return fmt.Errorf("bench: %s exited (log %s): %w", d.Name, d.Log, procs.ErrExited)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(250*time.Millisecond, time.Until(t))):
		}
	}
	return nil
}

// waitDrained waits until every written byte is destaged, Src Data is 0
// and the destination buffer is empty, or until deadline (ErrNotDrained).
func (r *run) waitDrained(ctx context.Context, deadline time.Time) error {
	var total float64
	for _, im := range r.ws.images {
		total += float64(im.sent.data) // dst counts written data, not zeroed ranges
	}
	for {
		if d := r.c.crashedDaemon(); d != nil {
			return fmt.Errorf("bench: %s exited (log %s): %w", d.Name, d.Log, procs.ErrExited)
		}
		p := r.s.take(ctx)
		if p.ok && p.dstLogical >= total && p.srcData == 0 && p.srcWaiting == 0 && p.dstWaiting == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %s destaged of %s after the %s limit: %w", mb(p.dstLogical), mb(total), r.limit(), ErrNotDrained)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func labels(imgs []*image) []string {
	var out []string
	for _, im := range imgs {
		out = append(out, im.label)
	}
	return out
}

func since(t time.Time) time.Duration { return time.Since(t).Round(100 * time.Millisecond) }
