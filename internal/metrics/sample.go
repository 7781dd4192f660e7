package metrics

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Sample is one line of a recording: every counter and gauge of a daemon at
// one instant, keyed by series key (see FormatKey).
type Sample struct {
	Time   time.Time
	Values map[string]float64
}

// sampleLine is the JSON form of a Sample:
//
//	{"time":"2026-11-22T06:00:01.000000000Z","metrics":{"aimwan_src_data_bytes{volume=\"vm1\"}":1048576}}
//
// Values that JSON cannot hold as numbers (+Inf, -Inf, NaN) are written as the
// strings "+Inf", "-Inf" and "NaN", as Prometheus writes them.
type sampleLine struct {
	Time    time.Time             `json:"time"`
	Metrics map[string]jsonNumber `json:"metrics"`
}

// jsonNumber is a float64 that survives JSON when it is not finite.
type jsonNumber float64

// MarshalJSON writes a number, or a string for ±Inf and NaN.
func (n jsonNumber) MarshalJSON() ([]byte, error) {
	f := float64(n)
	switch {
	case math.IsNaN(f):
		return []byte(`"NaN"`), nil
	case math.IsInf(f, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(f, -1):
		return []byte(`"-Inf"`), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

// UnmarshalJSON reads a number, or "+Inf", "-Inf", "NaN".
func (n *jsonNumber) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		switch s {
		case "NaN":
			*n = jsonNumber(math.NaN())
		case "+Inf", "Inf":
			*n = jsonNumber(math.Inf(1))
		case "-Inf":
			*n = jsonNumber(math.Inf(-1))
		default:
			return fmt.Errorf("value %q is not a number", s)
		}
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("value %s is not a number", b)
	}
	*n = jsonNumber(f)
	return nil
}

// MarshalJSON writes the sample as one recording line (without newline).
func (s Sample) MarshalJSON() ([]byte, error) {
	l := sampleLine{Time: s.Time.UTC(), Metrics: make(map[string]jsonNumber, len(s.Values))}
	for k, v := range s.Values {
		l.Metrics[k] = jsonNumber(v)
	}
	return json.Marshal(l) // map keys are sorted: lines are deterministic
}

// UnmarshalJSON reads one recording line.
func (s *Sample) UnmarshalJSON(b []byte) error {
	var l sampleLine
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	if l.Time.IsZero() {
		return errors.New("sample without time")
	}
	s.Time = l.Time
	s.Values = make(map[string]float64, len(l.Metrics))
	for k, v := range l.Metrics {
		if _, _, err := ParseKey(k); err != nil {
			return err
		}
		s.Values[k] = float64(v)
	}
	return nil
}

// Flatten turns gathered metric families into the flat key → value map of a
// sample. Counters, gauges and untyped metrics give one key each; histograms
// and summaries give name_sum and name_count (buckets and quantiles are left
// out: the reports chart rates and levels, not distributions).
func Flatten(mfs []*dto.MetricFamily) map[string]float64 {
	out := make(map[string]float64)
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			labels := make([]Label, 0, len(m.GetLabel()))
			for _, lp := range m.GetLabel() {
				labels = append(labels, Label{Name: lp.GetName(), Value: lp.GetValue()})
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[FormatKey(name, labels)] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[FormatKey(name, labels)] = m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				out[FormatKey(name, labels)] = m.GetUntyped().GetValue()
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				h := m.GetHistogram()
				out[FormatKey(name+"_sum", labels)] = h.GetSampleSum()
				out[FormatKey(name+"_count", labels)] = float64(h.GetSampleCount())
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				out[FormatKey(name+"_sum", labels)] = s.GetSampleSum()
				out[FormatKey(name+"_count", labels)] = float64(s.GetSampleCount())
			}
		}
	}
	return out
}
