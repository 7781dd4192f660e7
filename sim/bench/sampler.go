package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/aimwan/aimwan/internal/metrics"
)

// samplingPeriod is how often the bench samples the daemons' metrics (named
// by internal/metrics).
const samplingPeriod = time.Second

// point is one sample of the figures the bench follows.
type point struct {
	t           time.Time
	ok          bool    // dst and src answered
	dstLogical  float64 // bytes destaged, all volumes (dst is never restarted)
	dstWaiting  float64 // files in the destination buffer
	latency     float64 // largest Time Latency
	srcData     float64 // Src Data, all volumes
	srcWaiting  float64 // files waiting at the source
	srcOldest   float64 // age of the oldest write not yet acked, largest over volumes
	proxyWire   float64 // source edge's wire bytes (restarts from 0 with the proxy)
	proxyLogic  float64 // source edge's logical bytes
	linkForward float64 // bytes the link delivered toward the destination
	linkCross   float64 // cross-traffic bytes the link queued toward the destination
	linkDrops   float64
}

// sampler scrapes the daemons once a second and keeps the series.
type sampler struct {
	dst, src, proxy, link *scraper

	mu     sync.Mutex
	points []point
	phase  string
	since  time.Time
}

func newSampler(c *chain) *sampler {
	s := &sampler{dst: newScraper(c.a.dstMetrics), src: newScraper(c.a.srcMetrics), proxy: newScraper(c.a.srcProxyMetrics)}
	if !c.cfg.NoLink {
		s.link = newScraper(c.a.linkMetrics)
	}
	return s
}

// take scrapes once.
func (s *sampler) take(ctx context.Context) point {
	p := point{t: time.Now()}
	dm, errD := s.dst.sample(ctx)
	sm, errS := s.src.sample(ctx)
	p.ok = errD == nil && errS == nil
	p.dstLogical, p.dstWaiting, p.latency = dm.sum(metrics.DstLogical), dm.sum(metrics.DstFilesWaiting), dm.max(metrics.TimeLatency)
	p.srcData, p.srcWaiting, p.srcOldest = sm.sum(metrics.SrcData), sm.sum(metrics.SrcFilesWaiting), sm.max(metrics.SrcOldestUnsent)
	if pm, err := s.proxy.sample(ctx); err == nil {
		p.proxyWire, p.proxyLogic = pm.sum(metrics.ProxyWire), pm.sum(metrics.ProxyLogical)
	}
	if s.link != nil {
		if lm, err := s.link.sample(ctx); err == nil {
			p.linkForward = forward(lm.byLabel(metrics.LinkBytes, "direction"))
			p.linkCross = forward(lm.byLabel(metrics.LinkCrossBytes, "direction"))
			p.linkDrops = lm.sum(metrics.LinkDrops)
		}
	}
	return p
}

// forward picks the destination-bound direction of the link's counter.
func forward(byDir map[string]float64) float64 {
	for _, d := range []string{"forward", metrics.DirectionUp} {
		if v, ok := byDir[d]; ok {
			return v
		}
	}
	return 0
}

// setPhase names the phase shown in progress lines.
func (s *sampler) setPhase(name string, start time.Time) {
	s.mu.Lock()
	s.phase, s.since = name, start
	s.mu.Unlock()
}

// last returns the newest successful sample.
func (s *sampler) last() (point, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.points) - 1; i >= 0; i-- {
		if s.points[i].ok {
			return s.points[i], true
		}
	}
	return point{}, false
}

// series returns a copy of the samples.
func (s *sampler) series() []point {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]point(nil), s.points...)
}

// serve samples every second and prints a progress line every `every`
// until ctx ends.
func (s *sampler) serve(ctx context.Context, out io.Writer, every time.Duration) {
	tick := time.NewTicker(samplingPeriod)
	defer tick.Stop()
	var lastPrint point
	for {
		p := s.take(ctx)
		s.mu.Lock()
		s.points = append(s.points, p)
		phase, since := s.phase, s.since
		s.mu.Unlock()
		if p.ok && p.t.Sub(lastPrint.t) >= every-samplingPeriod/2 {
			if !lastPrint.t.IsZero() {
				fmt.Fprintln(out, progressLine(phase, since, lastPrint, p))
			}
			lastPrint = p
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// progressLine: phase, elapsed, destaged (and its rate), Src Data, wire
// rate, Time Latency.
func progressLine(phase string, since time.Time, a, b point) string {
	dt := b.t.Sub(a.t).Seconds()
	wire := b.linkForward - a.linkForward
	if b.linkForward == 0 {
		wire = b.proxyWire - a.proxyWire
	}
	if wire < 0 { // the proxy restarted
		wire = b.proxyWire
	}
	return fmt.Sprintf("[%-11s %4.0fs] destaged %s (%s)  Src Data %s  wire %s  Time Latency %4.0fs  oldest unacked %4.0fs",
		phase, b.t.Sub(since).Seconds(), mb(b.dstLogical), kbps((b.dstLogical-a.dstLogical)/dt),
		mb(b.srcData), kbps(wire/dt), b.latency, b.srcOldest)
}

// peakRate is the best rate of dstLogical over a window of at least w
// among the samples in [from, to].
func peakRate(pts []point, from, to time.Time, w time.Duration) float64 {
	var in []point
	for _, p := range pts {
		if p.ok && !p.t.Before(from) && !p.t.After(to) {
			in = append(in, p)
		}
	}
	slices.SortStableFunc(in, func(a, b point) int { return a.t.Compare(b.t) })
	best := 0.0
	j := 0
	for i := range in {
		for j+1 < i && in[i].t.Sub(in[j+1].t) >= w {
			j++
		}
		if d := in[i].t.Sub(in[j].t); d >= w {
			best = max(best, (in[i].dstLogical-in[j].dstLogical)/d.Seconds())
		}
	}
	return best
}

// mb formats bytes in MB (10^6), as the rates are in KB/s (10^3).
func mb(b float64) string { return fmt.Sprintf("%7.1f MB", b/1e6) }

// kbps formats a rate in bytes per second as KB/s.
func kbps(bps float64) string { return fmt.Sprintf("%6.0f KB/s", bps/1e3) }
