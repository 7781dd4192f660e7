package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/aimwan/aimwan/internal/version"
)

// runtimeRegistry holds what every daemon's /metrics adds to the daemon's own
// registry: the Go runtime (go_*), the process (process_*: CPU, memory, open
// files) and aimwan_build_info. One per process: they describe the process,
// not a daemon. They are served, not recorded (a recording keeps the
// daemon's own figures).
var runtimeRegistry = sync.OnceValue(func() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newBuildInfoCollector(version.Get()),
	)
	return r
})

// RuntimeGatherer returns the process-wide gatherer of the Go, process and
// build-info collectors that ServeMetricsListener serves beside a daemon's
// registry.
func RuntimeGatherer() prometheus.Gatherer { return runtimeRegistry() }

// newBuildInfoCollector exports in as aimwan_build_info 1.
func newBuildInfoCollector(in version.Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        BuildInfo,
		Help:        "Build of aimwan running: version, VCS revision and Go version as labels; always 1.",
		ConstLabels: prometheus.Labels{"version": in.Version, "revision": in.Revision, "goversion": in.GoVersion},
	})
	g.Set(1)
	return g
}
