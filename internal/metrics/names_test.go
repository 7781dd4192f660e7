package metrics

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
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
	doc := readMetricsDoc(t)
	for _, s := range KnownMetrics {
		if !strings.Contains(doc, "`"+s.Name+"`") {
			t.Errorf("docs/metrics.md does not document %s", s.Name)
		}
	}
}

func readMetricsDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestEveryNameDocumented: each metric name constant of names.go is in
// docs/metrics.md, and is a well-formed aimwan metric name.
func TestEveryNameDocumented(t *testing.T) {
	doc := readMetricsDoc(t)
	f, err := parser.ParseFile(token.NewFileSet(), "names.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				v, _ := strconv.Unquote(lit.Value)
				if !strings.HasPrefix(v, "aimwan_") {
					continue // label values, metric types
				}
				n++
				if _, _, err := ParseKey(v); err != nil {
					t.Errorf("%s = %q: %v", name.Name, v, err)
				}
				if !strings.Contains(doc, "`"+v+"`") {
					t.Errorf("docs/metrics.md does not document %s (%s)", v, name.Name)
				}
			}
		}
	}
	if n < 40 {
		t.Errorf("found %d metric names in names.go; the parse missed some", n)
	}
}
