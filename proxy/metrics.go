package proxy

import (
	"io"
	"math"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aimwan/aimwan/internal/metrics"
)

// proxyMetrics are the counters both roles export, under the names of
// internal/metrics (scripts rely on them: DESIGN.md).
type proxyMetrics struct {
	logical   prometheus.Counter // file bytes carried (in at the source edge, out at the destination edge)
	wire      prometheus.Counter // bytes this proxy put on the WAN, framing included
	hits      prometheus.Counter // chunks sent as references (source edge)
	misses    prometheus.Counter // chunks sent as literals (source edge)
	refMisses prometheus.Counter // references the destination could not resolve
	resent    prometheus.Counter // bytes sent again to answer misses (source edge)
	missWaits prometheus.Counter // files that waited for their turn to be decoded (destination edge)
	files     *prometheus.CounterVec
	inFlight  prometheus.Gauge
	queued    prometheus.Gauge       // encoded bytes not yet on the WAN (source edge)
	level     prometheus.Gauge       // literal compression level of the last file (source edge)
	byLevel   *prometheus.CounterVec // files encoded, by level (source edge)
	cap       prometheus.Gauge       // schedule cap in bytes/s; -1 = unlimited, 0 = paused
}

func newMetrics(reg prometheus.Registerer) (*proxyMetrics, error) {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	m := &proxyMetrics{
		logical:   c(metrics.ProxyLogical, "Journal file bytes carried by the proxy (before dedupe and compression)."),
		wire:      c(metrics.ProxyWire, "Bytes the proxy put on the WAN after dedupe and compression, framing included."),
		hits:      c(metrics.ProxyCacheHits, "Chunks sent as references to the peer's cache."),
		misses:    c(metrics.ProxyCacheMisses, "Chunks sent as literals (not in the peer's cache)."),
		refMisses: c(metrics.ProxyRefMisses, "References the destination could not resolve and asked back."),
		resent:    c(metrics.ProxyResent, "Bytes sent again to answer the destination's misses."),
		missWaits: c(metrics.ProxyMissWaits, "Files that waited for files accepted before them to be decoded first (decode in encode order)."),
		files: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metrics.ProxyFiles,
			Help: "Files handled, by result (ok or the push code of the failure)."}, []string{"result"}),
		inFlight: g(metrics.ProxyFilesInFlight, "Files accepted and not yet acknowledged."),
		queued:   g(metrics.ProxyWANQueue, "Encoded bytes waiting to go on the WAN."),
		level:    g(metrics.ProxyCompressionLevel, "Literal compression level in use (1 fastest .. 4 best, 5 max)."),
		byLevel: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metrics.ProxyEncodedFiles,
			Help: "Files encoded by the source edge, by literal compression level (fastest, default, better, best, max)."}, []string{"level"}),
		cap: g(metrics.ProxyScheduleCap, "WAN rate cap of the schedule in force; -1 = unlimited, 0 = paused."),
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	for _, col := range []prometheus.Collector{m.logical, m.wire, m.hits, m.misses, m.refMisses, m.resent, m.missWaits,
		m.files, m.inFlight, m.queued, m.level, m.byLevel, m.cap} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	m.cap.Set(-1)
	return m, nil
}

// setCap records a schedule cap (+Inf is exported as -1).
func (m *proxyMetrics) setCap(r float64) {
	if math.IsInf(r, 1) {
		r = -1
	}
	m.cap.Set(r)
}

// countPiece is the most countingWriter passes on per Write of the writer
// below it, so the counter follows the bytes as they flow on a slow link
// instead of jumping once a whole file is written.
const countPiece = 32 << 10

// countingWriter counts the bytes it passes on.
type countingWriter struct {
	w io.Writer
	c prometheus.Counter
}

func (c countingWriter) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		n, err := c.w.Write(p[:min(len(p), countPiece)])
		c.c.Add(float64(n))
		total += n
		if err != nil {
			return total, err
		}
		p = p[n:]
	}
	return total, nil
}
