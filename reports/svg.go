package reports

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Chart size in the page (points; the page scales it to the column width),
// and the margins kept free at the right and the top edge.
const (
	chartWidth  = 9 * vg.Inch
	chartHeight = 3.6 * vg.Inch
	rightMargin = 7 * vg.Millimeter
	topMargin   = 2 * vg.Millimeter
)

// palette: distinguishable colours (Okabe–Ito) for series in order.
var palette = []color.RGBA{
	{0x00, 0x72, 0xb2, 0xff}, // blue
	{0xd5, 0x5e, 0x00, 0xff}, // vermillion
	{0x00, 0x9e, 0x73, 0xff}, // bluish green
	{0xcc, 0x79, 0xa7, 0xff}, // reddish purple
	{0xe6, 0x9f, 0x00, 0xff}, // orange
	{0x56, 0xb4, 0xe9, 0xff}, // sky blue
	{0x00, 0x00, 0x00, 0xff}, // black
	{0xf0, 0xe4, 0x42, 0xff}, // yellow
}

var markColor = color.RGBA{0x55, 0x55, 0x55, 0xff}

// sansFont is the face used for all chart text.
var sansFont = font.Font{Typeface: "Liberation", Variant: "Sans"}

// timeAxis picks the unit for a time axis spanning maxSec seconds.
func timeAxis(maxSec float64) (div float64, label string) {
	switch {
	case maxSec > 3*3600:
		return 3600, "time since start (h)"
	case maxSec > 10*60:
		return 60, "time since start (min)"
	}
	return 1, "time since start (s)"
}

// renderSVG draws c as an SVG document (without the XML prolog, ready to be
// inlined in HTML).
func renderSVG(c *Chart) ([]byte, error) {
	p := plot.New()
	styleFonts(p)
	// The title is the page's heading above the chart, not part of the SVG.
	p.Y.Label.Text = c.YLabel
	p.X.Label.Text = c.XLabel
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(6)
	p.Legend.Padding = vg.Points(3)
	p.X.Tick.Marker = plot.TickerFunc(niceTicks)
	p.Y.Tick.Marker = plot.TickerFunc(niceTicks)
	if c.LogY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.TickerFunc(logTicks)
	}

	div := 1.0
	if c.Time {
		div, p.X.Label.Text = timeAxis(chartXMax(c))
	}
	ymin, ymax, any := math.Inf(1), math.Inf(-1), false
	for i, s := range c.Series {
		lines, err := seriesLines(s, div, palette[i%len(palette)], c.LogY)
		if err != nil {
			return nil, fmt.Errorf("chart %s series %q: %w", c.ID, s.Name, err)
		}
		for _, l := range lines {
			p.Add(l)
			for _, xy := range l.XYs {
				ymin, ymax, any = math.Min(ymin, xy.Y), math.Max(ymax, xy.Y), true
			}
		}
		if len(lines) > 0 {
			p.Legend.Add(s.Name, lines[0])
		}
	}
	setRanges(p, c, div, ymin, ymax, any)
	if len(c.Marks) > 0 {
		p.Add(markPlotter{marks: c.Marks, div: div})
	}
	canvas := vgsvg.New(chartWidth, chartHeight)
	// A margin on the right: gonum draws the X axis to the canvas edge, so
	// the last tick label and a mark's label would be cut off.
	p.Draw(draw.Crop(draw.New(canvas), 0, -rightMargin, 0, -topMargin))
	var buf bytes.Buffer
	if _, err := canvas.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("chart %s: %w", c.ID, err)
	}
	out := buf.Bytes()
	if i := bytes.Index(out, []byte("<svg")); i > 0 {
		out = out[i:] // drop the XML prolog and generator comment
	}
	return out, nil
}

func styleFonts(p *plot.Plot) {
	p.Title.TextStyle.Font = font.From(sansFont, 13)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = font.From(sansFont, 11)
		a.Tick.Label.Font = font.From(sansFont, 9)
	}
	p.Legend.TextStyle.Font = font.From(sansFont, 10)
}

// chartXMax is the largest X of any series or mark.
func chartXMax(c *Chart) float64 {
	m := 0.0
	for _, s := range c.Series {
		for _, x := range s.X {
			m = math.Max(m, x)
		}
	}
	for _, mk := range c.Marks {
		m = math.Max(m, mk.X)
	}
	return m
}

// seriesLines splits s at gaps (NaN, ±Inf; on a log scale also values <= 0)
// into drawable lines.
func seriesLines(s Series, div float64, col color.RGBA, logY bool) ([]*plotter.Line, error) {
	var lines []*plotter.Line
	var run plotter.XYs
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		l, err := plotter.NewLine(run)
		if err != nil {
			return err
		}
		l.LineStyle.Color = col
		l.LineStyle.Width = vg.Points(1.5)
		if s.Dashed {
			l.LineStyle.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		lines = append(lines, l)
		run = nil
		return nil
	}
	for i, y := range s.Y {
		if math.IsNaN(y) || math.IsInf(y, 0) || (logY && y <= 0) {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		run = append(run, plotter.XY{X: s.X[i] / div, Y: y})
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return lines, nil
}

// setRanges fixes the axes: X from 0 (time) to the last point or mark; Y with
// headroom for the legend, from zero when asked, never empty.
func setRanges(p *plot.Plot, c *Chart, div, ymin, ymax float64, any bool) {
	if c.Time {
		p.X.Min = 0
		p.X.Max = math.Max(chartXMax(c)/div, p.X.Max)
	}
	if c.LogY {
		setLogRange(p, c, ymin, ymax, any)
		return
	}
	if !any {
		ymin, ymax = 0, 1
	}
	if c.YMin0 {
		ymin = math.Min(0, ymin)
	}
	if ymax <= ymin {
		ymax = ymin + math.Max(1, math.Abs(ymin))
	}
	p.Y.Min = ymin
	p.Y.Max = ymax + 0.08*float64(len(c.Series)+1)*(ymax-ymin) // room for the legend
	if p.X.Max <= p.X.Min {
		p.X.Max = p.X.Min + 1
	}
}

// setLogRange fixes a logarithmic Y axis: from the decade at or below the
// smallest positive value to the largest, with headroom for the legend.
func setLogRange(p *plot.Plot, c *Chart, ymin, ymax float64, any bool) {
	if !any || ymax <= 0 {
		ymin, ymax = 1, 10
	}
	const limit = 307 // decades a float64 holds, with room for the headroom
	const span = 5    // decades shown at most: lower values are cut off at the bottom
	lo := math.Min(math.Max(math.Floor(math.Log10(ymin)), -limit), limit-1)
	lo = math.Max(lo, math.Ceil(math.Log10(ymax))-span)
	hi := math.Max(math.Log10(ymax), lo+1)
	top := math.Min(hi+0.08*float64(len(c.Series)+1)*(hi-lo), limit+1)
	p.Y.Min = math.Pow(10, lo)
	p.Y.Max = math.Pow(10, math.Max(top, lo+1))
	if p.X.Max <= p.X.Min {
		p.X.Max = p.X.Min + 1
	}
}

// logTicks labels each power of ten in [lo, hi] (and 2 and 5 times it when
// the range spans at most two decades), with unlabelled ticks at the other
// multiples.
func logTicks(lo, hi float64) []plot.Tick {
	if !(lo > 0) || !(hi > lo) || math.IsInf(hi, 0) {
		return nil
	}
	few := math.Log10(hi/lo) <= 2
	var ticks []plot.Tick
	for dec := math.Pow(10, math.Floor(math.Log10(lo))); dec <= hi; dec *= 10 {
		for m := 1.0; m < 10; m++ {
			v := dec * m
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			label := ""
			if m == 1 || (few && (m == 2 || m == 5)) {
				label = strconv.FormatFloat(v, 'f', max(0, int(-math.Floor(math.Log10(v)))), 64)
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: label})
		}
	}
	return ticks
}

// markPlotter draws dashed vertical lines with labels (phase boundaries).
type markPlotter struct {
	marks []Mark
	div   float64
}

var _ plot.Plotter = markPlotter{}

// Plot draws the marks over the data area.
func (m markPlotter) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	line := draw.LineStyle{Color: markColor, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(4), vg.Points(3)}}
	txt := draw.TextStyle{
		Color:   markColor,
		Font:    font.From(sansFont, 9),
		XAlign:  draw.XLeft,
		YAlign:  draw.YTop,
		Handler: plot.DefaultTextHandler,
	}
	for _, mk := range m.marks {
		x := trX(mk.X / m.div)
		if x < c.Min.X || x > c.Max.X {
			continue
		}
		if mk.X/m.div > p.X.Min { // a mark on the Y axis would only hide it: label it alone
			c.StrokeLine2(line, x, c.Min.Y, x, c.Max.Y)
		}
		if label := strings.TrimSpace(mk.Label); label != "" {
			t, at := txt, x+vg.Points(3)
			if at+txt.Width(label) > c.Max.X { // would run off the right edge: set it left of the line
				t.XAlign, at = draw.XRight, x-vg.Points(3)
			}
			c.FillText(t, vg.Point{X: at, Y: c.Min.Y + vg.Points(14)}, label)
		}
	}
}

// niceTicks marks about targetTicks labelled ticks at 1, 2 or 5 times a power
// of ten, with unlabelled minor ticks between them.
const targetTicks = 7

func niceTicks(lo, hi float64) []plot.Tick {
	if !(hi > lo) || math.IsInf(hi-lo, 0) {
		return plot.DefaultTicks{}.Ticks(lo, hi)
	}
	raw := (hi - lo) / targetTicks
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var ticks []plot.Tick
	minor := step / 2
	decimals := max(0, int(-math.Floor(math.Log10(step))))
	for i := math.Ceil(lo / minor); i*minor <= hi+minor*1e-9 && len(ticks) < 200; i++ {
		v := i * minor
		if math.Abs(v) < minor*1e-9 {
			v = 0
		}
		label := ""
		if math.Mod(math.Round(v/minor), 2) == 0 {
			label = strconv.FormatFloat(v, 'f', decimals, 64)
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: label})
	}
	return ticks
}
