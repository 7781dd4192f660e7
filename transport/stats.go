package transport

import (
	"strconv"

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
