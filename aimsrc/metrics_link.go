package aimsrc

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/transport/push"
)

// linkCollector exports the pauses and the link to the next hop at scrape
// time.
type linkCollector struct {
	n                    *Node
	paused, linkUp, down *prometheus.Desc
}

var _ prometheus.Collector = (*linkCollector)(nil)

func newLinkCollector(n *Node) *linkCollector {
	return &linkCollector{n: n,
		paused: prometheus.NewDesc(metrics.SrcPaused, "1 while pushing the volume is paused (aimwan src pause), by itself or with the whole destination.", []string{"volume"}, nil),
		linkUp: prometheus.NewDesc(metrics.SrcLinkUp, "1 while the connection to the next hop (--push) is up and its pushes are not failing.", nil, nil),
		down:   prometheus.NewDesc(metrics.SrcLinkDownSeconds, "How long the link to the next hop has been down (0 while up).", nil, nil),
	}
}

// Describe sends every descriptor.
func (c *linkCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.paused
	ch <- c.linkUp
	ch <- c.down
}

// Collect sends the current values.
func (c *linkCollector) Collect(ch chan<- prometheus.Metric) {
	g := prometheus.GaugeValue
	for _, name := range c.n.order {
		v := 0.0
		if by, _ := c.n.pauses.of(name); by != "" {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.paused, g, v, name)
	}
	l := c.n.nextHop.Link()
	up, down := 0.0, 0.0
	switch l.State {
	case push.LinkUp:
		up = 1
	case push.LinkDown:
		down = max(0, time.Since(l.Since).Seconds()) // the link keeps real time
	}
	ch <- prometheus.MustNewConstMetric(c.linkUp, g, up)
	ch <- prometheus.MustNewConstMetric(c.down, g, down)
}
