package push

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/transport/identity"
)

// refusalsCollector exports a node's refused push peers.
type refusalsCollector struct {
	r    *identity.Refusals
	desc *prometheus.Desc
}

// NewRefusalsCollector exports r as aimwan_push_refused_peers_total
// {fingerprint}: peers refused during the TLS handshake of a push leg. Its
// label set is bounded (identity.MaxTracked fingerprints, "none", "other").
func NewRefusalsCollector(r *identity.Refusals) prometheus.Collector {
	return refusalsCollector{r: r, desc: prometheus.NewDesc(metrics.PushRefusedPeers,
		"Peers refused during the TLS handshake of a push leg, by certificate fingerprint (none: no certificate; other: past the fingerprints named).",
		[]string{"fingerprint"}, nil)}
}

func (c refusalsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c refusalsCollector) Collect(ch chan<- prometheus.Metric) {
	for fp, n := range c.r.Counts() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), fp)
	}
}
