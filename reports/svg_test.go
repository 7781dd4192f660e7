package reports

import (
	"bytes"
	"math"
	"regexp"
	"strconv"
	"testing"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// TestRenderExtremes: charts of odd data still render, quickly, as SVG.
func TestRenderExtremes(t *testing.T) {
	tests := []struct {
		name string
		x, y []float64
	}{
		{"huge", []float64{0, 1}, []float64{1e308, -1e308}},
		{"huge positive", []float64{0, 1}, []float64{1e308, 1.7e308}},
		{"tiny", []float64{0, 1}, []float64{1e-300, 2e-300}},
		{"flat", []float64{0, 1, 2}, []float64{5, 5, 5}},
		{"single point", []float64{3}, []float64{1}},
		{"all gaps", []float64{0, 1}, []float64{math.NaN(), math.Inf(1)}},
		{"huge x", []float64{0, 1e300}, []float64{1, 2}},
		{"negative x", []float64{-5, -1}, []float64{1, 2}},
	}
	tests = append(tests, struct {
		name string
		x, y []float64
	}{"zeros", []float64{0, 1, 2}, []float64{0, 0, -1}})
	for _, tt := range tests {
		for _, mode := range []struct{ time, log bool }{{false, false}, {true, false}, {true, true}} {
			t.Run(tt.name, func(t *testing.T) {
				c := &Chart{ID: "c", Title: "t", Time: mode.time, LogY: mode.log, YMin0: true, Series: []Series{{Name: "s", X: tt.x, Y: tt.y}},
					Marks: []Mark{{X: 0.5, Label: "m"}}}
				start := time.Now()
				svg, err := renderSVG(c)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(svg, []byte("<svg")) || !bytes.HasSuffix(bytes.TrimSpace(svg), []byte("</svg>")) {
					t.Fatalf("not an svg: %.100s", svg)
				}
				if d := time.Since(start); d > 10*time.Second {
					t.Fatalf("took %v", d)
				}
			})
		}
	}
}

var reSVGText = regexp.MustCompile(`(?s)<text x="([-0-9.e]+)"[^>]*font-size:([0-9.]+)px[^>]*>([^<]*)</text>`)

// TestChartTextInside: no text of any chart of the bench report runs off the
// SVG (the last tick label, a phase mark at the end of the run, the legend):
// the right edge used to clip them.
func TestChartTextInside(t *testing.T) {
	page := buildFixture(t, "bench")
	width := float64(chartWidth.Points())
	for _, c := range page.Charts {
		svg, err := renderSVG(&c)
		if err != nil {
			t.Fatal(err)
		}
		texts := reSVGText.FindAllStringSubmatch(string(svg), -1)
		if len(texts) < 5 {
			t.Fatalf("chart %s: %d texts found; the pattern no longer matches vgsvg's output", c.ID, len(texts))
		}
		for _, m := range texts {
			x, _ := strconv.ParseFloat(m[1], 64)
			size, _ := strconv.ParseFloat(m[2], 64)
			sty := draw.TextStyle{Font: font.From(sansFont, vg.Length(size)), Handler: plot.DefaultTextHandler}
			if w := float64(sty.Width(m[3]).Points()); x < 0 || x+w > width {
				t.Errorf("chart %s: text %q spans x %.1f..%.1f, outside 0..%.0f", c.ID, m[3], x, x+w, width)
			}
		}
	}
}
