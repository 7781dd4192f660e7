package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/aimwan/aimwan/internal/metrics"
)

// series is one sample of a scrape: its labels and value.
type series struct {
	labels map[string]string
	value  float64
}

// scrape is one read of a daemon's /metrics: metric name -> its series.
type scrape struct {
	at  time.Time
	fam map[string][]series
}

// maxScrape bounds the /metrics text read from a daemon.
const maxScrape = 16 << 20

// fetchScrape reads and parses http://addr/metrics.
func fetchScrape(ctx context.Context, hc *http.Client, addr string) (*scrape, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("metrics %s: %w", addr, err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics %s: HTTP %s", addr, resp.Status)
	}
	s, err := parseScrape(io.LimitReader(resp.Body, maxScrape), time.Now())
	if err != nil {
		return nil, fmt.Errorf("metrics %s: %w", addr, err)
	}
	return s, nil
}

// parseScrape parses the Prometheus text format (expfmt) into a scrape.
// Counters, gauges and untyped samples are kept; summaries and histograms
// are not read by status.
func parseScrape(r io.Reader, at time.Time) (*scrape, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	s := &scrape{at: at, fam: map[string][]series{}}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var v float64
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				v = m.GetUntyped().GetValue()
			default:
				continue
			}
			ls := map[string]string{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			s.fam[name] = append(s.fam[name], series{labels: ls, value: v})
		}
	}
	return s, nil
}

// match reports whether a series has every label of want.
func (sr series) match(want map[string]string) bool {
	for k, v := range want {
		if sr.labels[k] != v {
			return false
		}
	}
	return true
}

// sum adds the series of name that match want; ok is false when there is
// none.
func (s *scrape) sum(name string, want map[string]string) (total float64, ok bool) {
	if s == nil {
		return 0, false
	}
	for _, sr := range s.fam[name] {
		if sr.match(want) && !math.IsNaN(sr.value) {
			total += sr.value
			ok = true
		}
	}
	return total, ok
}

// min is the smallest value among the series of name that match want.
func (s *scrape) min(name string, want map[string]string) (best float64, ok bool) {
	if s == nil {
		return 0, false
	}
	for _, sr := range s.fam[name] {
		if sr.match(want) && !math.IsNaN(sr.value) && (!ok || sr.value < best) {
			best, ok = sr.value, true
		}
	}
	return best, ok
}

// rate is the per-second increase of the summed series of name from prev to
// s; a counter that went back (a restart, a new connection) counts from 0.
func (s *scrape) rate(prev *scrape, name string, want map[string]string) (float64, bool) {
	if s == nil || prev == nil {
		return 0, false
	}
	dt := s.at.Sub(prev.at).Seconds()
	now, ok1 := s.sum(name, want)
	was, ok2 := prev.sum(name, want)
	if !ok1 || !ok2 || dt <= 0 {
		return 0, false
	}
	d := now - was
	if d < 0 {
		d = now
	}
	return d / dt, true
}

// roleLabel selects a proxy edge's series.
func roleLabel(role string) map[string]string { return map[string]string{metrics.LabelRole: role} }
