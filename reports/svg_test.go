package reports

import (
	"bytes"
	"math"
	"testing"
	"time"
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
	for _, tt := range tests {
		for _, timeAxis := range []bool{false, true} {
			t.Run(tt.name, func(t *testing.T) {
				c := &Chart{ID: "c", Title: "t", Time: timeAxis, YMin0: true, Series: []Series{{Name: "s", X: tt.x, Y: tt.y}},
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
