package reports

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// Format is an output format of a page.
type Format string

// The formats WritePage knows.
const (
	FormatHTML     Format = "html" // one self-contained HTML file with inline SVG charts
	FormatMarkdown Format = "md"   // tables and per-series summaries with sparklines, for terminals
	FormatJSON     Format = "json" // the page's data, for scripts
)

// ErrUnknownFormat is returned for a format other than html, md or json.
var ErrUnknownFormat = errors.New("unknown report format")

// ParseFormat reads "html", "md" (or "markdown") or "json".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "html":
		return FormatHTML, nil
	case "md", "markdown":
		return FormatMarkdown, nil
	case "json":
		return FormatJSON, nil
	}
	return "", fmt.Errorf("%w %q (want html, md or json)", ErrUnknownFormat, s)
}

// Page is what a report shows: tables first, then charts. Both `aimwan
// report` and `aimwan sim size` build one and hand it to WritePage.
type Page struct {
	Title    string   `json:"title"`
	Subtitle string   `json:"subtitle,omitempty"` // one line under the title
	Notes    []string `json:"notes,omitempty"`    // short paragraphs under the subtitle
	Tables   []Table  `json:"tables,omitempty"`
	Charts   []Chart  `json:"charts,omitempty"`
}

// Table is a titled grid of preformatted cells.
type Table struct {
	Title   string     `json:"title"`
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
}

// Chart is one line chart.
type Chart struct {
	// ID is a short stable identifier (HTML anchor, JSON key): [a-z0-9-].
	ID    string `json:"id"`
	Title string `json:"title"`
	// Time: X values are seconds since the start of the run; the renderer picks
	// seconds, minutes or hours for the axis. Otherwise X is drawn as is.
	Time   bool   `json:"time"`
	XLabel string `json:"x_label,omitempty"` // used when Time is false
	YLabel string `json:"y_label"`           // the quantity and its unit, e.g. "KB/s"
	// YMin0 anchors the Y axis at zero (rates, sizes, percentages).
	YMin0 bool `json:"y_min_zero,omitempty"`
	// LogY draws the Y axis on a logarithmic scale, so a series many times
	// another stays readable beside it; values <= 0 are gaps.
	LogY   bool     `json:"log_y,omitempty"`
	Series []Series `json:"series"`
	Marks  []Mark   `json:"marks,omitempty"` // vertical lines, e.g. phase boundaries
	Note   string   `json:"note,omitempty"`  // shown under the chart
}

// Series is one named line. X and Y have the same length; a NaN in Y is a gap
// (no data), and so is ±Inf (it cannot be drawn; JSON writes null).
type Series struct {
	Name string    `json:"name"`
	X    []float64 `json:"x"`
	Y    []float64 `json:"y"`
	// Dashed draws the line dashed (limits, references).
	Dashed bool `json:"dashed,omitempty"`
}

// Mark is a labelled vertical line at X.
type Mark struct {
	X     float64 `json:"x"`
	Label string  `json:"label"`
}

// MarshalJSON writes non-finite Y values as null.
func (s Series) MarshalJSON() ([]byte, error) {
	type plain struct {
		Name   string     `json:"name"`
		X      []float64  `json:"x"`
		Y      []*float64 `json:"y"`
		Dashed bool       `json:"dashed,omitempty"`
	}
	p := plain{Name: s.Name, X: s.X, Y: make([]*float64, len(s.Y)), Dashed: s.Dashed}
	if p.X == nil {
		p.X = []float64{}
	}
	for i := range s.Y {
		if v := s.Y[i]; !math.IsNaN(v) && !math.IsInf(v, 0) {
			p.Y[i] = &v
		}
	}
	return json.Marshal(p)
}

// validate checks what the renderers rely on.
func (p *Page) validate() error {
	for i, c := range p.Charts {
		for _, s := range c.Series {
			if len(s.X) != len(s.Y) {
				return fmt.Errorf("chart %d (%s) series %q: %d x values, %d y values", i, c.Title, s.Name, len(s.X), len(s.Y))
			}
			for _, x := range s.X {
				if math.IsNaN(x) || math.IsInf(x, 0) {
					return fmt.Errorf("chart %d (%s) series %q: x value %v", i, c.Title, s.Name, x)
				}
			}
		}
	}
	for i, t := range p.Tables {
		for j, r := range t.Rows {
			if len(r) != len(t.Columns) {
				return fmt.Errorf("table %d (%s) row %d: %d cells for %d columns", i, t.Title, j, len(r), len(t.Columns))
			}
		}
	}
	return nil
}

// WritePage renders p to w in format f.
func WritePage(w io.Writer, p *Page, f Format) error {
	if err := p.validate(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	var err error
	switch f {
	case FormatHTML:
		err = writeHTML(w, p)
	case FormatMarkdown:
		err = writeMarkdown(w, p)
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", " ")
		err = enc.Encode(p)
	default:
		return fmt.Errorf("write report: %w %q", ErrUnknownFormat, f)
	}
	if err != nil {
		return fmt.Errorf("write %s report: %w", f, err)
	}
	return nil
}
