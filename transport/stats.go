package transport

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"
)

// StatsCollector exports quic-go's per-connection statistics of one peer as
// Prometheus gauges labelled {peer, conn}.
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
		lost:   d("lost_packets", "Packets declared lost on a WAN connection (since it opened)."),
		sent:   d("quic_sent_bytes", "Bytes sent on a WAN connection, QUIC overhead and retransmissions included."),
		recv:   d("quic_received_bytes", "Bytes received on a WAN connection."),
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
		g(s.lost, float64(st.PacketsLost))
		g(s.sent, float64(st.BytesSent))
		g(s.recv, float64(st.BytesReceived))
	}
}

// PoolCollector exports a Pool's rate-controller estimates (Estimates) as
// Prometheus metrics labelled {peer}.
type PoolCollector struct {
	peer string
	pool *Pool

	bottleneck, delivery, pacing, baseRTT, rtt, queue, inflight, conns, wanted, state *prometheus.Desc
	backoffs, retries                                                                 *prometheus.Desc
}

var _ prometheus.Collector = (*PoolCollector)(nil)

// NewPoolCollector returns a collector reading p.Estimates() at each scrape.
func NewPoolCollector(peer string, p *Pool) *PoolCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("aimwan_proxy_wan_"+name, help, append([]string{"peer"}, labels...), nil)
	}
	return &PoolCollector{peer: peer, pool: p,
		bottleneck: d("bottleneck_bytes_per_second", "Estimated bottleneck rate of the WAN path: the largest delivery rate of the last 10 rounds."),
		delivery:   d("delivery_bytes_per_second", "Latest delivery-rate sample (bytes acknowledged by the peer per second)."),
		pacing:     d("pacing_bytes_per_second", "Pace of the rate controller, before the schedule's cap."),
		baseRTT:    d("base_rtt_seconds", "Smallest round trip of a part over the last 10 s (the path without queue)."),
		rtt:        d("rtt_seconds", "Latest round trip of a part (last byte sent to acknowledgement), queueing included."),
		queue:      d("queue_delay_seconds", "Smallest part round trip of the last sample window minus the base RTT: the bottleneck's queue as the sender sees it."),
		inflight:   d("inflight_bytes", "Part bytes sent and not yet acknowledged."),
		conns:      d("connections", "Live QUIC connections to the peer."),
		wanted:     d("connections_wanted", "QUIC connections the pool keeps up (adaptive)."),
		state:      d("state", "Rate controller state: 1 for the current one (startup, steady).", "state"),
		backoffs:   d("backoffs_total", "Times the queue delay rose above twice its target (RTT inflation), so the sender paced below the delivery rate."),
		retries:    d("part_retries_total", "Parts sent again after their stream failed."),
	}
}

// Describe implements prometheus.Collector.
func (s *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.bottleneck, s.delivery, s.pacing, s.baseRTT, s.rtt, s.queue, s.inflight,
		s.conns, s.wanted, s.state, s.backoffs, s.retries} {
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
	for _, st := range []string{"startup", "steady"} {
		v := 0.0
		if st == e.State {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(s.state, prometheus.GaugeValue, v, s.peer, st)
	}
	c(s.backoffs, float64(e.Backoffs))
	c(s.retries, float64(e.Retries))
}
