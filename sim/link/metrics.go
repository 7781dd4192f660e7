package link

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aimwan/aimwan/internal/metrics"
)

// linkMetrics are the link's Prometheus collectors.
type linkMetrics struct {
	bytes   *prometheus.CounterVec // payload bytes delivered, by direction
	packets *prometheus.CounterVec // packets delivered, by direction
	cross   *prometheus.CounterVec // cross-traffic bytes carried, by direction
	crossDr *prometheus.CounterVec // cross-traffic bytes dropped (queue full), by direction
	drops   *prometheus.CounterVec // packets dropped, by reason
}

// newMetrics makes the collectors (registered by register).
func newMetrics() *linkMetrics {
	m := &linkMetrics{
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metrics.LinkBytes, Help: "Payload bytes carried by the simulated link, by direction (up: toward --to).",
		}, []string{"direction"}),
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metrics.LinkPackets, Help: "Packets (UDP datagrams, TCP segments) carried, by direction.",
		}, []string{"direction"}),
		cross: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metrics.LinkCrossBytes, Help: "Cross-traffic bytes that took their turn on the line, by direction.",
		}, []string{"direction"}),
		crossDr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metrics.LinkCrossDropped, Help: "Cross-traffic bytes dropped because the queue was full, by direction.",
		}, []string{"direction"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metrics.LinkDrops, Help: "Packets dropped by the simulated link, by reason (queue, loss, outage, cross).",
		}, []string{"reason"}),
	}
	for _, d := range []string{metrics.DirectionUp, metrics.DirectionDown} { // series exist from the start, at 0
		m.bytes.WithLabelValues(d)
		m.packets.WithLabelValues(d)
		m.cross.WithLabelValues(d)
		m.crossDr.WithLabelValues(d)
	}
	for _, r := range []string{DropQueue, DropLoss, DropOutage, DropCross} {
		m.drops.WithLabelValues(r)
	}
	return m
}

// register registers the collectors and the queue depth of the pipes with
// reg (nothing when reg is nil).
func (m *linkMetrics) register(reg prometheus.Registerer, pipes ...*Pipe) error {
	if reg == nil {
		return nil
	}
	cs := []prometheus.Collector{m.bytes, m.packets, m.cross, m.crossDr, m.drops}
	for _, p := range pipes {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: metrics.LinkQueue, Help: "Bytes waiting at the simulated link's bottleneck.",
			ConstLabels: prometheus.Labels{"direction": p.dir},
		}, p.QueueBytes))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register link metrics: %w", err)
		}
	}
	return nil
}
