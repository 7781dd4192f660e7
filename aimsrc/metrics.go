package aimsrc

import (
	"github.com/aimwan/aimwan/transport/push"

	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aimwan/aimwan/internal/metrics"
)

// collector exports the volumes' figures at scrape time.
type collector struct {
	n *Node

	srcData, oldest, files, dirty, state, initPct    *prometheus.Desc
	writes, written, pushedFiles, pushedBytes, limit *prometheus.Desc
	coalesced, coalIn, coalOut                       *prometheus.Desc
	refusals, superseded                             *prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

func newCollector(n *Node) *collector {
	vol := []string{"volume"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &collector{
		n:           n,
		srcData:     d(metrics.SrcData, "Src Data: bytes of journal files waiting in the source buffer.", vol...),
		oldest:      d(metrics.SrcOldestUnsent, "Age of the oldest journaled write not yet acked by the far end.", vol...),
		files:       d(metrics.SrcFilesWaiting, "Sealed journal files not yet acked.", vol...),
		dirty:       d(metrics.SrcDirty, "Volume bytes marked in the dirty bitmap (pull-ahead/resync).", vol...),
		state:       d(metrics.SrcState, "1 for the volume's current state (normal, resync, pull-ahead).", "volume", "state"),
		initPct:     d(metrics.SrcInitPercent, "Progress of the running or last initialize, percent.", vol...),
		writes:      d(metrics.SrcWritesCaptured, "Writes, zeroes and trims captured.", vol...),
		written:     d(metrics.SrcBytesCaptured, "Data bytes of captured writes.", vol...),
		pushedFiles: d(metrics.SrcFilesShipped, "Journal files acked by the far end and deleted.", vol...),
		pushedBytes: d(metrics.SrcBytesShipped, "Bytes of journal files acked by the far end.", vol...),
		limit:       d(metrics.SrcBufferLimit, "Configured source buffer limit (0: none)."),
		coalesced:   d(metrics.SrcCoalescedBytes, "Payload bytes dropped by write coalescing (overwritten later in the window).", vol...),
		coalIn:      d(metrics.SrcCoalesceRecordsIn, "Records of coalesced journal files before coalescing.", vol...),
		coalOut:     d(metrics.SrcCoalesceRecordsOut, "Records of coalesced journal files after coalescing.", vol...),
		refusals: d(metrics.SrcPushRefusals, "Pushes the next hop refused with a verdict that needs an operator (conflict, bad-offer, unknown-volume).",
			"volume", "code"),
		superseded: d(metrics.SrcFilesSuperseded, "Journal files of an old stream the far end refused, dropped because an initialize supersedes them.", vol...),
	}
}

// Describe sends every descriptor.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.srcData, c.oldest, c.files, c.dirty, c.state, c.initPct,
		c.writes, c.written, c.pushedFiles, c.pushedBytes, c.limit, c.coalesced, c.coalIn, c.coalOut, c.refusals, c.superseded} {
		ch <- d
	}
}

// Collect sends the current values.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	g, ctr := prometheus.GaugeValue, prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(c.limit, g, float64(c.n.space.limit))
	for _, name := range c.n.order {
		st := c.n.vols[name].status()
		ch <- prometheus.MustNewConstMetric(c.srcData, g, float64(st.SrcDataBytes), name)
		ch <- prometheus.MustNewConstMetric(c.oldest, g, st.OldestUnsentSeconds, name)
		ch <- prometheus.MustNewConstMetric(c.files, g, float64(st.FilesWaiting), name)
		ch <- prometheus.MustNewConstMetric(c.dirty, g, float64(st.DirtyBytes), name)
		ch <- prometheus.MustNewConstMetric(c.initPct, g, st.Init.Percent, name)
		ch <- prometheus.MustNewConstMetric(c.writes, ctr, float64(st.Writes), name)
		ch <- prometheus.MustNewConstMetric(c.written, ctr, float64(st.BytesWritten), name)
		ch <- prometheus.MustNewConstMetric(c.pushedFiles, ctr, float64(st.FilesPushed), name)
		ch <- prometheus.MustNewConstMetric(c.pushedBytes, ctr, float64(st.BytesPushed), name)
		ch <- prometheus.MustNewConstMetric(c.coalesced, ctr, float64(st.CoalescedBytes), name)
		ch <- prometheus.MustNewConstMetric(c.coalIn, ctr, float64(st.CoalesceRecordsIn), name)
		ch <- prometheus.MustNewConstMetric(c.coalOut, ctr, float64(st.CoalesceRecordsOut), name)
		ch <- prometheus.MustNewConstMetric(c.superseded, ctr, float64(st.FilesSuperseded), name)
		for _, code := range []string{"conflict", "bad-offer", "unknown-volume"} {
			ch <- prometheus.MustNewConstMetric(c.refusals, ctr, float64(st.refusals[code]), name, code)
		}
		for _, s := range States {
			v := 0.0
			if s == st.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, g, v, name, s)
		}
	}
}

// registerMetrics registers the collector with the configured registerer,
// or with a registry of the node's own that the metrics listener serves.
func (n *Node) registerMetrics() error {
	reg := n.cfg.Registerer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, n.gatherer = r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		n.gatherer = g
	} else {
		n.gatherer = prometheus.NewRegistry() // nothing of ours to serve
	}
	for _, c := range []prometheus.Collector{newCollector(n), n.schedMetric} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register source node metrics: %w", err)
		}
	}
	if err := reg.Register(push.NewRefusalsCollector(n.refused)); err != nil {
		return fmt.Errorf("register source node metrics: %w", err)
	}
	return nil
}
