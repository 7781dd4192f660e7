package aimdst

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aimwan/aimwan/internal/metrics"
)

// dstMetrics are the metrics of a destination node. Gauges are computed from Status at scrape
// time; counters are counted as things happen.
type dstMetrics struct {
	logicalBytes  *prometheus.CounterVec
	filesReceived *prometheus.CounterVec
	filesDestaged *prometheus.CounterVec
	duplicates    *prometheus.CounterVec
	refusedFull   *prometheus.CounterVec
	snapshots     *prometheus.CounterVec
	hookFailures  *prometheus.CounterVec
	refused       *prometheus.CounterVec // {volume, reason}
	rebinds       *prometheus.CounterVec
	partsExpired  *prometheus.CounterVec
	groupErrors   *prometheus.CounterVec // {group, reason}
	sumBytes      *prometheus.CounterVec
}

func newMetrics() *dstMetrics {
	cv := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"volume"})
	}
	return &dstMetrics{
		logicalBytes:  cv(metrics.DstLogical, "Bytes of writes destaged to the destination volume."),
		filesReceived: cv(metrics.DstFilesReceived, "Journal files stored durably in the destination buffer."),
		filesDestaged: cv(metrics.DstFilesDestaged, "Journal files fully destaged."),
		duplicates:    cv(metrics.DstDuplicateFiles, "Offered files already held or destaged (acked, not applied again)."),
		refusedFull:   cv(metrics.DstBufferFullRefusals, "Offered files refused because the destination buffer was full."),
		snapshots:     cv(metrics.DstSnapshots, "Snapshots taken at snapshot markers."),
		hookFailures:  cv(metrics.DstHookFailures, "Custom-marker hooks that failed or timed out."),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metrics.DstRefusedFiles,
			Help: "Journal files refused or quarantined: another stream, other contents under a known number, records that do not follow."},
			[]string{"volume", "reason"}),
		rebinds:      cv(metrics.DstRebinds, "Times an initialize's new journal stream replaced the stream the volume replicated."),
		sumBytes:     cv(metrics.DstChecksumBytes, "Volume bytes read and hashed to answer checksum requests (delta initialize)."),
		partsExpired: cv(metrics.DstPartsExpired, "Partial files removed because nobody resumed them."),
		groupErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metrics.DstGroupErrors,
			Help: "Group markers that could not be taken on every member (member-missing, no-members, reused-id)."},
			[]string{"group", "reason"}),
	}
}

// initVolume makes every counter of a volume exist (at 0) from the start, so
// rates work from the first scrape.
func (m *dstMetrics) initVolume(name string) {
	for _, c := range []*prometheus.CounterVec{m.logicalBytes, m.filesReceived, m.filesDestaged, m.duplicates, m.refusedFull, m.snapshots,
		m.hookFailures, m.rebinds, m.partsExpired, m.sumBytes} {
		c.WithLabelValues(name)
	}
	for _, r := range []string{reasonStream, reasonMismatch, reasonOld, reasonSequence, reasonSuperseded} {
		m.refused.WithLabelValues(name, r)
	}
}

func (m *dstMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.logicalBytes, m.filesReceived, m.filesDestaged, m.duplicates, m.refusedFull, m.snapshots, m.hookFailures,
		m.refused, m.rebinds, m.partsExpired, m.groupErrors, m.sumBytes}
}

var (
	descLatency = prometheus.NewDesc(metrics.TimeLatency,
		"Time Latency: now minus the source time up to which the destination volume is complete (the watermark of the newest destaged record).", []string{"volume"}, nil)
	descComplete = prometheus.NewDesc(metrics.DstCompleteUntil,
		"Source time (Unix seconds) up to which the destination volume is complete; 0 before the first file.", []string{"volume"}, nil)
	descLastMarker = prometheus.NewDesc(metrics.DstLastMarker,
		"Source time (Unix seconds) of the last marker passed; 0: none.", []string{"volume"}, nil)
	descLastSnapshot = prometheus.NewDesc(metrics.DstLastSnapshot,
		"Source time (Unix seconds) of the last snapshot marker taken; 0: none.", []string{"volume"}, nil)
	descGroupLatency = prometheus.NewDesc(metrics.GroupTimeLatency,
		"Time Latency of a consistency group: now minus the oldest of its members' complete-until times.", []string{"group"}, nil)
	descGroupPoint = prometheus.NewDesc(metrics.DstGroupConsistentPoint,
		"Source time (Unix seconds) of the group's last point taken on every member; 0: none.", []string{"group"}, nil)
	descGroupSnapshot = prometheus.NewDesc(metrics.DstGroupLastSnapshot,
		"Source time (Unix seconds) of the group's last group snapshot; 0: none.", []string{"group"}, nil)
	descBuffer = prometheus.NewDesc(metrics.DstBuffer,
		"Bytes held in the destination buffer (received, not yet destaged, partial files included).", []string{"volume"}, nil)
	descSeq = prometheus.NewDesc(metrics.DstDestagedSeq,
		"Sequence number of the last record destaged durably.", []string{"volume"}, nil)
	descWaiting = prometheus.NewDesc(metrics.DstFilesWaiting,
		"Journal files held in the destination buffer waiting for destage.", []string{"volume"}, nil)
	descOffline = prometheus.NewDesc(metrics.DstVolumeOffline,
		"1 while the destination volume is offline (missing, read-only, full).", []string{"volume"}, nil)
	descLimit = prometheus.NewDesc(metrics.DstBufferLimit,
		"Configured size limit of the destination buffer.", nil, nil)
	descQuarantined = prometheus.NewDesc(metrics.DstQuarantined,
		"Journal files kept in the volume's quarantine folder (not applied) for the operator.", []string{"volume"}, nil)
)

// statusCollector exports the gauges of Status.
type statusCollector struct{ n *Node }

var _ prometheus.Collector = statusCollector{}

func (c statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLatency, descBuffer, descSeq, descWaiting, descOffline, descLimit, descQuarantined,
		descComplete, descLastMarker, descLastSnapshot, descGroupLatency, descGroupPoint, descGroupSnapshot, descPromoted} {
		ch <- d
	}
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.Status()
	ch <- prometheus.MustNewConstMetric(descLimit, prometheus.GaugeValue, float64(st.BufferLimit))
	for _, v := range st.Volumes {
		ch <- prometheus.MustNewConstMetric(descLatency, prometheus.GaugeValue, v.TimeLatency, v.Volume)
		ch <- prometheus.MustNewConstMetric(descBuffer, prometheus.GaugeValue, float64(v.BufferBytes), v.Volume)
		ch <- prometheus.MustNewConstMetric(descSeq, prometheus.GaugeValue, float64(v.DestagedSeq), v.Volume)
		ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(v.FilesWaiting), v.Volume)
		off := 0.0
		if v.Offline {
			off = 1
		}
		ch <- prometheus.MustNewConstMetric(descOffline, prometheus.GaugeValue, off, v.Volume)
		ch <- prometheus.MustNewConstMetric(descQuarantined, prometheus.GaugeValue, float64(len(v.Quarantined)), v.Volume)
		ch <- prometheus.MustNewConstMetric(descComplete, prometheus.GaugeValue, unixSeconds(v.CompleteUntil), v.Volume)
		ch <- prometheus.MustNewConstMetric(descLastMarker, prometheus.GaugeValue, unixSeconds(v.LastMarkerTime), v.Volume)
		ch <- prometheus.MustNewConstMetric(descLastSnapshot, prometheus.GaugeValue, unixSeconds(v.LastSnapshotTime), v.Volume)
		ch <- prometheus.MustNewConstMetric(descPromoted, prometheus.GaugeValue, promotedGauge(v), v.Volume)
	}
	for _, g := range st.Groups {
		ch <- prometheus.MustNewConstMetric(descGroupLatency, prometheus.GaugeValue, g.TimeLatency, g.Group)
		ch <- prometheus.MustNewConstMetric(descGroupPoint, prometheus.GaugeValue, unixSeconds(g.ConsistentPointTime), g.Group)
		ch <- prometheus.MustNewConstMetric(descGroupSnapshot, prometheus.GaugeValue, unixSeconds(g.LastSnapshotTime), g.Group)
	}
}

// unixSeconds is t in Unix seconds, 0 for the zero time.
func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
