package reports

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// collectorFor builds a collector shaped like spec, with one series.
func collectorFor(s MetricSpec) prometheus.Collector {
	values := make([]string, len(s.Labels))
	for i := range values {
		values[i] = "x"
	}
	switch s.Type {
	case Counter:
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: s.Name, Help: s.Help}, s.Labels)
		v.WithLabelValues(values...).Add(1)
		return v
	default:
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: s.Name, Help: s.Help}, s.Labels)
		v.WithLabelValues(values...).Set(1)
		return v
	}
}

func TestKnownMetricsLint(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range KnownMetrics {
		t.Run(s.Name, func(t *testing.T) {
			if seen[s.Name] {
				t.Fatal("listed twice")
			}
			seen[s.Name] = true
			if !strings.HasPrefix(s.Name, "aimwan_") {
				t.Error("name lacks the aimwan_ prefix")
			}
			if (s.Type == Counter) != strings.HasSuffix(s.Name, "_total") {
				t.Error("counters, and only counters, end in _total")
			}
			problems, err := testutil.CollectAndLint(collectorFor(s))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("lint: %s", p.Text)
			}
		})
	}
}

// TestMetricsDoc: docs/metrics.md documents every known metric.
func TestMetricsDoc(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range KnownMetrics {
		if !strings.Contains(string(b), "`"+s.Name+"`") {
			t.Errorf("docs/metrics.md does not document %s", s.Name)
		}
	}
}
