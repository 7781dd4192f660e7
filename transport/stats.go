package transport

import (
	"strconv"

	"github.com/aimwan/aimwan/internal/metrics"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"
)

// StatsCollector exports quic-go's per-connection statistics of one peer,
// labelled {peer, conn}: RTTs and the congestion window as gauges, the
// cumulative packet and byte counts as counters (_total; they restart with
// the connection).
type StatsCollector struct {
	peer  string
	conns func() []*quic.Conn

	rtt, minRTT, cwnd, lost, sent, recv *prometheus.Desc
}

var _ prometheus.Collector = (*StatsCollector)(nil)

// NewStatsCollector returns a collector reading conns() at each scrape.
func NewStatsCollector(peer string, conns func() []*quic.Conn) *StatsCollector {
	labels := []string{"peer", "conn"}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("aimwan_proxy_peer_"+name, help, labels, nil)
	}
	return &StatsCollector{
		peer:   peer,
		conns:  conns,
		rtt:    d("rtt_seconds", "Smoothed RTT of a WAN connection."),
		minRTT: d("min_rtt_seconds", "Minimum RTT observed on a WAN connection."),
		cwnd:   d("cwnd_bytes", "Congestion window of a WAN connection."),
		lost:   d("lost_packets_total", "Packets declared lost on a WAN connection (since it opened)."),
		sent:   d("quic_sent_bytes_total", "Bytes sent on a WAN connection, QUIC overhead and retransmissions included."),
		recv:   d("quic_received_bytes_total", "Bytes received on a WAN connection."),
	}
}

// Describe implements prometheus.Collector.
func (s *StatsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.rtt, s.minRTT, s.cwnd, s.lost, s.sent, s.recv} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (s *StatsCollector) Collect(ch chan<- prometheus.Metric) {
	for i, c := range s.conns() {
		st := c.ConnectionStats()
		l := []string{s.peer, strconv.Itoa(i)}
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
		}
		g(s.rtt, st.SmoothedRTT.Seconds())
		g(s.minRTT, st.MinRTT.Seconds())
		g(s.cwnd, float64(st.CongestionWindow))
		c := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
		}
		c(s.lost, float64(st.PacketsLost))
		c(s.sent, float64(st.BytesSent))
		c(s.recv, float64(st.BytesReceived))
	}
}

// PoolCollector exports a Pool's rate-controller estimates (Estimates) as
// Prometheus metrics labelled {peer} (names in internal/metrics,
// ProxyWAN...).
type PoolCollector struct {
	peer string
	pool *Pool

	bottleneck, delivery, pacing, baseRTT, rtt, queue, inflight, conns, wanted, lanes, state *prometheus.Desc
	backoffs, probes, bwProbes, retries                                                      *prometheus.Desc
}

var _ prometheus.Collector = (*PoolCollector)(nil)

// NewPoolCollector returns a collector reading p.Estimates() at each scrape.
func NewPoolCollector(peer string, p *Pool) *PoolCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append([]string{"peer"}, labels...), nil)
	}
	return &PoolCollector{peer: peer, pool: p,
		bottleneck: d(metrics.ProxyWANBottleneck, "Measured bottleneck rate of the WAN path: the largest delivery rate of the last ten sample windows."),
		delivery:   d(metrics.ProxyWANDelivery, "Latest delivery-rate sample: bytes the peer received per second (its clock), in stream bytes."),
		pacing:     d(metrics.ProxyWANPacing, "Pace of the rate controller, before the schedule's cap."),
		baseRTT:    d(metrics.ProxyWANBaseRTT, "Smallest QUIC round trip of the last 36 s (refreshed by base-RTT probes): the path without queue."),
		rtt:        d(metrics.ProxyWANRTT, "Latest QUIC round trip of the connections that are sending."),
		queue:      d(metrics.ProxyWANQueueDelay, "Smallest recent round trip minus the base RTT: the bottleneck's queue as the sender sees it."),
		inflight:   d(metrics.ProxyWANInflight, "Part bytes sent and not yet acknowledged."),
		conns:      d(metrics.ProxyWANConns, "Live QUIC connections to the peer."),
		wanted:     d(metrics.ProxyWANConnsWanted, "QUIC connections the pool keeps up (adaptive)."),
		lanes:      d(metrics.ProxyWANLanes, "Connections allowed to write parts at once (more while congestion windows hold the pace back)."),
		state:      d(metrics.ProxyWANState, "Rate controller state: 1 for the current one (startup, steady).", "state"),
		backoffs:   d(metrics.ProxyWANBackoffs, "Times a standing queue (RTT inflation) made the sender back off below its estimate."),
		probes:     d(metrics.ProxyWANProbes, "Base-RTT probes (the pace halved until the queue drained)."),
		bwProbes:   d(metrics.ProxyWANBandwidthProbes, "Bandwidth probes: windows the pace was raised above the estimate (1.25x, then 2x) because the delivery rate followed the pace and no queue stood."),
		retries:    d(metrics.ProxyWANRetries, "Parts sent again after their stream failed."),
	}
}

// Describe implements prometheus.Collector.
func (s *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.bottleneck, s.delivery, s.pacing, s.baseRTT, s.rtt, s.queue, s.inflight,
		s.conns, s.wanted, s.lanes, s.state, s.backoffs, s.probes, s.bwProbes, s.retries} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (s *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	e := s.pool.Estimates()
	g := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, s.peer)
	}
	c := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, s.peer)
	}
	g(s.bottleneck, e.Bottleneck)
	g(s.delivery, e.Delivery)
	g(s.pacing, e.Pacing)
	g(s.baseRTT, e.BaseRTT.Seconds())
	g(s.rtt, e.RTT.Seconds())
	g(s.queue, e.QueueDelay.Seconds())
	g(s.inflight, float64(e.Inflight))
	g(s.conns, float64(e.Conns))
	g(s.wanted, float64(e.ConnsWanted))
	g(s.lanes, float64(e.Lanes))
	for _, st := range []string{stateStartup.String(), stateSteady.String()} {
		v := 0.0
		if st == e.State {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(s.state, prometheus.GaugeValue, v, s.peer, st)
	}
	c(s.backoffs, float64(e.Backoffs))
	c(s.probes, float64(e.Probes))
	c(s.bwProbes, float64(e.BandwidthProbes))
	c(s.retries, float64(e.Retries))
}
