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
		CPU:  map[string]CPU{}, StartedAt: r.start.UTC(),
		ProxyFlags: r.c.windowArgs()}
	if len(cfg.Images) > 0 {
		res.Workload = "images"
	} else {
		res.Seed = cfg.Seed
	}
	return res
}

// setUp makes identities, primes the cache if asked and starts the chain in
// pass-through.
func (r *run) setUp(ctx context.Context) error {
	out := r.cfg.Progress
	var total int64
	for _, im := range r.ws.images {
		total += im.size
	}
	fmt.Fprintf(out, "aimwan bench: scale %s, %d clones (%s each, %s in all, %s), pass-through phase %s\n",
		r.sc.Name, len(r.ws.images), mb(float64(r.ws.images[0].size)), mb(float64(total)), r.res.Workload, r.sc.Passthrough)
	if r.cfg.NoLink {
		fmt.Fprintln(out, "aimwan bench: NO LINK SIMULATOR: proxies connected directly; rates are not a WAN's")
	} else {
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
	if err := r.c.start(ctx, phasePass); err != nil {
		return err
	}
	fmt.Fprintf(out, "aimwan bench: chain up (%s); logs in %s\n", r.c.names(), r.c.logs)
	return nil
}

// phases runs pass-through then optimize.
func (r *run) phases(ctx context.Context) error {
	imgs := r.ws.images
	first, last := imgs[:len(imgs)-1], imgs[len(imgs)-1:]
	out := r.cfg.Progress

	t0 := time.Now()
	r.s.setPhase(phasePass, t0)
	p0 := r.s.take(ctx)
	fmt.Fprintf(out, "phase 1, pass-through: creating %s from the template (thick, through NBD)\n", strings.Join(labels(first), ", "))
	if err := create(ctx, r.c.a.nbd, first, func(int, int64) {}); err != nil {
		return err
	}
	fmt.Fprintf(out, "phase 1: %s created in %s; replicating until %s\n", strings.Join(labels(first), ", "), since(t0), r.sc.Passthrough)
	if err := r.waitUntil(ctx, t0.Add(r.sc.Passthrough)); err != nil {
		return err
	}
	p1 := r.s.take(ctx)
	t1 := time.Now()
	r.s.setPhase(phaseOpt, t1)
	fmt.Fprintln(out, "phase 2, optimize: restarting both proxies with --mode optimize (src keeps every unacked file)")
	cpuSrc, cpuDst, err := r.c.switchMode(ctx, phaseOpt)
	if err != nil {
		return err
	}
	r.res.CPU[nameProxySrc+"/"+phasePass] = cpuOver(cpuSrc, t1.Sub(t0))
	r.res.CPU[nameProxyDst+"/"+phasePass] = cpuOver(cpuDst, t1.Sub(t0))
	pass := r.phaseResult(phasePass, t0, t1, p0, p1, p1.proxyWire)
	pass.Created = labels(first)
	r.res.Phases = append(r.res.Phases, pass)

	fmt.Fprintf(out, "phase 2: creating %s\n", strings.Join(labels(last), ", "))
	if err := create(ctx, r.c.a.nbd, last, func(int, int64) {}); err != nil {
		return err
	}
	fmt.Fprintf(out, "phase 2: %s created; waiting until everything is destaged (limit %s)\n", strings.Join(labels(last), ", "), r.sc.OptimizeLimit)
	drainErr := r.waitDrained(ctx, t1.Add(r.sc.OptimizeLimit))
	if drainErr != nil && !errors.Is(drainErr, ErrNotDrained) {
		return drainErr
	}
	r.res.Drained = drainErr == nil
	p2 := r.s.take(ctx)
	t2 := time.Now()
	hits, misses := r.cacheCounters(ctx)
	r.stopBg()
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
	r.res.PhaseMarks = []reports.Phase{{Name: phasePass, Start: t0.UTC(), End: t1.UTC()}, {Name: phaseOpt, Start: t1.UTC(), End: t2.UTC()}}
	return drainErr
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
		total += float64(im.size)
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
			return fmt.Errorf("bench: %s destaged of %s after the %s limit: %w", mb(p.dstLogical), mb(total), r.sc.OptimizeLimit, ErrNotDrained)
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
