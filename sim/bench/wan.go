package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/internal/testkit/procs"
)

// WANConfig is a WAN goodput run (`aimwan bench wan`): the whole chain in
// pass-through over the link simulator, a fixed amount of incompressible
// data written through src's NBD export, timed until dst destaged it all.
// Zero fields mean their defaults.
type WANConfig struct {
	// Out is the run folder (work/, logs/, wan.json). Required.
	Out string
	// Bin is the aimwan binary the daemons are started from. Required.
	Bin string
	// ProxyBin, when set, is the binary the two proxies run from: another
	// build's proxies over this build's src, dst and link measure that
	// build (the before/after table).
	ProxyBin string
	// Size is the bytes written, spread over Volumes (default 256 MiB).
	Size int64
	// Volumes is the number of volumes written side by side (default 1).
	Volumes int
	// Rate, RTT, Loss and Cross describe the line (defaults 100 Mbit/s,
	// 100 ms, none, none).
	Rate  float64
	RTT   time.Duration
	Loss  float64
	Cross float64
	// ProxyArgs are extra flags for both proxies (the bench gives them
	// --link-rate and --rtt, and nothing else, unless NoHints).
	ProxyArgs []string
	// NoHints gives the proxies neither --link-rate nor --rtt.
	NoHints bool
	// NoLink connects the proxies directly, without the link simulator:
	// what the chain itself carries on this machine (Rate and RTT are then
	// only the hints and the goodput's yardstick).
	NoLink bool
	// Limit ends a run that has not destaged everything by then (default
	// 10 minutes); the result says it was cut short.
	Limit time.Duration
	// Seed of the data (default 1).
	Seed uint64
	// Progress receives a line per few seconds (default os.Stdout).
	Progress io.Writer
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// WANResultFile is the result of `aimwan bench wan` in its run folder.
const WANResultFile = "wan.json"

// WANResult is wan.json.
type WANResult struct {
	RateBps  float64  `json:"rate_bytes_per_s"`
	RTTMs    float64  `json:"rtt_ms"`
	Loss     float64  `json:"loss"`
	CrossBps float64  `json:"cross_bytes_per_s"`
	Bytes    int64    `json:"bytes"` // written through NBD
	Volumes  int      `json:"volumes"`
	Flags    []string `json:"proxy_flags"`
	// Complete is false when the run hit its limit.
	Complete bool    `json:"complete"`
	Destaged int64   `json:"destaged_bytes"`
	ElapsedS float64 `json:"elapsed_s"` // first write to last byte destaged (or the limit)
	// Goodput is bytes destaged per second over the whole run, divided by
	// the line rate; SteadyGoodput the same between 10% and 90% of the
	// bytes destaged (start-up and the last file's round trip left out).
	GoodputBps    float64 `json:"goodput_bytes_per_s"`
	Goodput       float64 `json:"goodput"`
	SteadyGoodput float64 `json:"steady_goodput"`
	// LinkUp is the payload bytes the link carried toward dst; Drops the
	// packets it dropped, by reason.
	LinkUp int64            `json:"link_up_bytes"`
	Drops  map[string]int64 `json:"link_drops"`
	// CrossKept is the cross traffic carried / offered toward dst (1 when
	// there is none).
	CrossKept float64 `json:"cross_kept"`
	// Estimates are the source edge's own figures at the end (bottleneck
	// rate, RTT, connections), when the proxy exports them.
	Estimates map[string]float64 `json:"source_edge_estimates,omitempty"`
	CPU       map[string]CPU     `json:"cpu"`
	StartedAt time.Time          `json:"started_at"`
}

func (c WANConfig) withDefaults() WANConfig {
	if c.Size == 0 {
		c.Size = 256 << 20
	}
	if c.Volumes == 0 {
		c.Volumes = 1
	}
	if c.Rate == 0 {
		c.Rate = 12.5e6
	}
	if c.RTT == 0 {
		c.RTT = 100 * time.Millisecond
	}
	if c.Limit == 0 {
		c.Limit = 10 * time.Minute
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Progress == nil {
		c.Progress = os.Stdout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c WANConfig) validate() error {
	switch {
	case c.Out == "" || c.Bin == "":
		return fmt.Errorf("%w: wan: an output folder and an aimwan binary are required", ErrConfig)
	case c.Size < 1<<20 || c.Size > 64<<30:
		return fmt.Errorf("%w: wan: size %d: want 1 MiB .. 64 GiB", ErrConfig, c.Size)
	case c.Volumes < 1 || c.Volumes > 16:
		return fmt.Errorf("%w: wan: %d volumes: want 1..16", ErrConfig, c.Volumes)
	case !(c.Rate > 0) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("%w: wan: line rate %v: want a finite positive rate", ErrConfig, c.Rate)
	case c.NoLink && (c.Cross > 0 || c.Loss > 0):
		return fmt.Errorf("%w: wan: cross traffic and loss need the link simulator", ErrConfig)
	case c.Cross < 0 || c.Cross >= c.Rate:
		return fmt.Errorf("%w: wan: cross traffic %.0f B/s: want 0 up to below the line rate", ErrConfig, c.Cross)
	case !(c.Loss >= 0 && c.Loss < 1):
		return fmt.Errorf("%w: wan: loss %v: want 0 <= loss < 1", ErrConfig, c.Loss)
	case c.RTT <= 0 || c.RTT > 10*time.Second:
		return fmt.Errorf("%w: wan: RTT %v: want 0..10s", ErrConfig, c.RTT)
	}
	return nil
}

// RunWAN runs one WAN goodput measurement and writes wan.json into
// cfg.Out. A run cut short by its limit returns its result and no error.
func RunWAN(ctx context.Context, cfg WANConfig) (*WANResult, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := cleanOut(cfg.Out); err != nil {
		return nil, err
	}
	_ = os.Remove(filepath.Join(cfg.Out, WANResultFile))
	per := (cfg.Size / int64(cfg.Volumes)) &^ (writeChunk - 1)
	per = max(per, writeChunk)
	var imgs []*image
	for i := range cfg.Volumes {
		imgs = append(imgs, &image{volume: fmt.Sprintf("vol%d", i+1), label: "random", size: per,
			r: randomData{seed: cfg.Seed + uint64(i)}})
	}
	ws := &workloadSet{images: imgs}
	bcfg := Config{Out: cfg.Out, Bin: cfg.Bin, Rate: cfg.Rate, RTT: cfg.RTT, Cross: cfg.Cross, Loss: cfg.Loss,
		ProxyArgs: cfg.ProxyArgs, ProxyBin: cfg.ProxyBin, NoLink: cfg.NoLink, Logger: cfg.Logger}
	c, err := newChain(bcfg, ws.volumes(filepath.Join(cfg.Out, "work")))
	if err != nil {
		return nil, err
	}
	defer func() { c.stop(); _ = os.RemoveAll(c.work) }()
	if cfg.NoHints {
		c.noHints = true
	}
	if err := c.keygen(ctx); err != nil {
		return nil, err
	}
	if err := c.start(ctx, phasePass); err != nil {
		return nil, err
	}
	res := &WANResult{RateBps: cfg.Rate, RTTMs: float64(cfg.RTT) / 1e6, Loss: cfg.Loss, CrossBps: cfg.Cross,
		Bytes: per * int64(cfg.Volumes), Volumes: cfg.Volumes, Flags: c.windowArgs(), CPU: map[string]CPU{},
		StartedAt: time.Now().UTC()}
	fmt.Fprintf(cfg.Progress, "aimwan bench wan: %s of random data in %d volume(s) over %.0f KB/s, RTT %s, loss %g%%, cross %.0f KB/s; proxies: %s\n",
		mb(float64(res.Bytes)), cfg.Volumes, cfg.Rate/1e3, cfg.RTT, 100*cfg.Loss, cfg.Cross/1e3, strings.Join(res.Flags, " "))
	w := &wanRun{cfg: cfg, c: c, res: res, dst: newScraper(c.a.dstMetrics), link: newScraper(c.a.linkMetrics),
		proxy: newScraper(c.a.srcProxyMetrics)}
	if err := w.measure(ctx, imgs); err != nil {
		return nil, err
	}
	if err := writeJSON(cfg.Out, WANResultFile, res); err != nil {
		return res, err
	}
	res.Print(cfg.Progress)
	return res, nil
}

// wanRun is the state of one WAN measurement.
type wanRun struct {
	cfg               WANConfig
	c                 *chain
	res               *WANResult
	dst, link, proxy  *scraper
	samples           []wanSample
	linkStart, linkAt scrapeValues
}

type wanSample struct {
	t        time.Time
	destaged float64
}

// measure writes the volumes and samples dst until everything is destaged
// or the limit passes.
func (w *wanRun) measure(ctx context.Context, imgs []*image) error {
	base, err := w.dst.sample(ctx)
	if err != nil {
		return fmt.Errorf("bench wan: dst metrics: %w", err)
	}
	if !w.cfg.NoLink {
		if w.linkStart, err = w.link.sample(ctx); err != nil {
			return fmt.Errorf("bench wan: link metrics: %w", err)
		}
	}
	cpu0 := w.cpu()
	t0 := time.Now()
	writeErr := make(chan error, 1)
	go func() { writeErr <- create(ctx, w.c.a.nbd, imgs, createMode{}, func(int, int64) {}) }()
	total := float64(w.res.Bytes)
	deadline := t0.Add(w.cfg.Limit)
	lastPrint := t0
	for {
		select {
		case err := <-writeErr:
			if err != nil {
				return fmt.Errorf("bench wan: write: %w", err)
			}
			writeErr = nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if d := w.c.crashedDaemon(); d != nil {
			return fmt.Errorf("bench wan: %s exited (log %s): %w", d.Name, d.Log, procs.ErrExited)
		}
		m, err := w.dst.sample(ctx)
		if err != nil {
			continue
		}
		now := time.Now()
		s := wanSample{t: now, destaged: m.sum(metrics.DstLogical) - base.sum(metrics.DstLogical)}
		w.samples = append(w.samples, s)
		if now.Sub(lastPrint) >= 5*time.Second {
			lastPrint = now
			fmt.Fprintf(w.cfg.Progress, "[wan %4.0fs] destaged %s of %s (%.0f%% of the line so far)\n",
				now.Sub(t0).Seconds(), mb(s.destaged), mb(total), 100*s.destaged/now.Sub(t0).Seconds()/w.cfg.Rate)
		}
		if s.destaged >= total || now.After(deadline) {
			w.res.Complete = s.destaged >= total
			break
		}
	}
	end := w.samples[len(w.samples)-1]
	if !w.cfg.NoLink {
		w.linkAt, _ = w.link.sample(ctx)
	}
	if pm, err := w.proxy.sample(ctx); err == nil {
		w.res.Estimates = estimates(pm)
	}
	for name, used := range w.cpu() {
		w.res.CPU[name] = cpuOver(used-cpu0[name], end.t.Sub(t0))
	}
	w.summarize(t0, end)
	return nil
}

// cpu reads the CPU time of every daemon so far.
func (w *wanRun) cpu() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, d := range w.c.procs.Procs() {
		if used, err := d.CPU(); err == nil {
			out[d.Name] = used
		}
	}
	return out
}

// summarize fills the result from the samples and the link's counters.
func (w *wanRun) summarize(t0 time.Time, end wanSample) {
	r := w.res
	r.Destaged = int64(end.destaged)
	r.ElapsedS = end.t.Sub(t0).Seconds()
	if r.ElapsedS > 0 {
		r.GoodputBps = end.destaged / r.ElapsedS
		r.Goodput = r.GoodputBps / w.cfg.Rate
	}
	r.SteadyGoodput = steadyRate(w.samples, end.destaged) / w.cfg.Rate
	diff := func(name, label, value string) float64 {
		return w.linkAt.byLabel(name, label)[value] - w.linkStart.byLabel(name, label)[value]
	}
	r.LinkUp = int64(diff(metrics.LinkBytes, "direction", metrics.DirectionUp))
	r.Drops = map[string]int64{}
	for reason := range w.linkAt.byLabel(metrics.LinkDrops, "reason") {
		r.Drops[reason] = int64(diff(metrics.LinkDrops, "reason", reason))
	}
	r.CrossKept = 1
	carried := diff(metrics.LinkCrossBytes, "direction", metrics.DirectionUp)
	dropped := diff(metrics.LinkCrossDropped, "direction", metrics.DirectionUp)
	if carried+dropped > 0 {
		r.CrossKept = carried / (carried + dropped)
	}
}

// steadyRate is the destage rate between the samples where 10% and 90% of
// the final bytes were reached (0 when too few samples).
func steadyRate(s []wanSample, final float64) float64 {
	lo := slices.IndexFunc(s, func(p wanSample) bool { return p.destaged >= 0.1*final })
	hi := slices.IndexFunc(s, func(p wanSample) bool { return p.destaged >= 0.9*final })
	if lo < 0 || hi <= lo {
		return 0
	}
	d := s[hi].t.Sub(s[lo].t).Seconds()
	if d <= 0 {
		return 0
	}
	return (s[hi].destaged - s[lo].destaged) / d
}

// estimates picks the source edge's WAN estimates from a scrape (none
// from a proxy that does not export them).
func estimates(m scrapeValues) map[string]float64 {
	out := map[string]float64{}
	for _, name := range []string{metrics.ProxyWANBottleneck, metrics.ProxyWANBaseRTT, metrics.ProxyWANQueueDelay,
		metrics.ProxyWANPacing, metrics.ProxyWANConns} {
		for k, v := range m {
			if k == name || strings.HasPrefix(k, name+"{") {
				out[strings.TrimPrefix(name, "aimwan_proxy_wan_")] = v
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Print writes the result as a few lines.
func (r *WANResult) Print(w io.Writer) {
	state := "complete"
	if !r.Complete {
		state = "CUT SHORT at the limit"
	}
	fmt.Fprintf(w, "goodput %.1f%% of the line (%.0f KB/s; steady %.1f%%), %s destaged in %.1fs (%s); cross traffic kept %.1f%%\n",
		100*r.Goodput, r.GoodputBps/1e3, 100*r.SteadyGoodput, mb(float64(r.Destaged)), r.ElapsedS, state, 100*r.CrossKept)
	var drops []string
	for k, v := range r.Drops {
		if v > 0 {
			drops = append(drops, fmt.Sprintf("%s %d", k, v))
		}
	}
	slices.Sort(drops)
	fmt.Fprintf(w, "link: %s up; drops: %s; proxy CPU %.0f%% / %.0f%% of a core (source / destination edge)\n",
		mb(float64(r.LinkUp)), strings.Join(drops, ", "), r.CPU[nameProxySrc].Percent, r.CPU[nameProxyDst].Percent)
	if len(r.Estimates) > 0 {
		var es []string
		for k, v := range r.Estimates {
			es = append(es, fmt.Sprintf("%s=%.4g", k, v))
		}
		slices.Sort(es)
		fmt.Fprintf(w, "source edge estimates: %s\n", strings.Join(es, " "))
	}
}

// randomData is incompressible bytes that depend only on the seed and the
// offset (ChaCha8 per 64 KiB block), so a run writes the same data every
// time without holding it.
type randomData struct{ seed uint64 }

const randomBlock = 64 << 10

func (r randomData) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("random data: negative offset")
	}
	n := 0
	var block [randomBlock]byte
	for n < len(p) {
		at := off + int64(n)
		b := at / randomBlock
		var key [32]byte
		binary.LittleEndian.PutUint64(key[:], r.seed)
		binary.LittleEndian.PutUint64(key[8:], uint64(b))
		rng := rand.NewChaCha8(key)
		_, _ = rng.Read(block[:])
		n += copy(p[n:], block[at%randomBlock:])
	}
	return n, nil
}
