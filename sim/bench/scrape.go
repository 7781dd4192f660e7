package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/aimwan/aimwan/internal/metrics"
)

// scraper reads a daemon's Prometheus /metrics.
type scraper struct {
	addr   string
	client *http.Client
}

func newScraper(addr string) *scraper {
	return &scraper{addr: addr, client: &http.Client{Timeout: 5 * time.Second}}
}

// families fetches and parses the daemon's metrics.
func (s *scraper) families(ctx context.Context) ([]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", s.addr, err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", s.addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: HTTP %s", s.addr, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	m, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", s.addr, err)
	}
	out := make([]*dto.MetricFamily, 0, len(m))
	for _, mf := range m {
		out = append(out, mf)
	}
	return out, nil
}

// sample fetches the metrics as the flat key → value map of a recording.
func (s *scraper) sample(ctx context.Context) (scrapeValues, error) {
	mfs, err := s.families(ctx)
	if err != nil {
		return nil, err
	}
	return metrics.Flatten(mfs), nil
}

// Gather makes a scraper a prometheus.Gatherer, so a metrics.Recorder can
// record a daemon that does not record itself.
func (s *scraper) Gather() ([]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.families(ctx)
}

// scrapeValues is one scrape: series key ("name" or `name{label="v"}`) → value.
type scrapeValues map[string]float64

// sum adds every series of the metric name, whatever its labels.
func (m scrapeValues) sum(name string) float64 {
	var t float64
	for k, v := range m {
		if k == name || (strings.HasPrefix(k, name+"{")) {
			t += v
		}
	}
	return t
}

// max is the largest value among the series of name (0 when none).
func (m scrapeValues) max(name string) float64 {
	var best float64
	for k, v := range m {
		if (k == name || strings.HasPrefix(k, name+"{")) && v > best {
			best = v
		}
	}
	return best
}

// byLabel returns the series of name keyed by the value of label.
func (m scrapeValues) byLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if !strings.HasPrefix(k, name+"{") {
			continue
		}
		n, labels, err := metrics.ParseKey(k)
		if err != nil || n != name {
			continue
		}
		if lv, ok := metrics.LabelValue(labels, label); ok {
			out[lv] += v
		}
	}
	return out
}
