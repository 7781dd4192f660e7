package reports

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// sparkWidth is the number of characters of a sparkline.
const sparkWidth = 40

var sparkRunes = []rune("▁▂▃▄▅▆▇█")

// writeMarkdown writes the page for a terminal: tables as they are, each chart
// as a table of its series (min, mean, max, last) with a sparkline.
func writeMarkdown(w io.Writer, p *Page) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# %s\n\n", mdEscape(p.Title))
	if p.Subtitle != "" {
		fmt.Fprintf(bw, "%s\n\n", mdEscape(p.Subtitle))
	}
	for _, n := range p.Notes {
		fmt.Fprintf(bw, "%s\n\n", mdEscape(n))
	}
	for _, t := range p.Tables {
		fmt.Fprintf(bw, "## %s\n\n", mdEscape(t.Title))
		writeMDTable(bw, t.Columns, t.Rows)
	}
	for _, c := range p.Charts {
		fmt.Fprintf(bw, "## %s\n\n", mdEscape(c.Title))
		if len(c.Marks) > 0 {
			var ms []string
			for _, m := range c.Marks {
				ms = append(ms, fmt.Sprintf("%s at %s", m.Label, formatX(&c, m.X)))
			}
			fmt.Fprintf(bw, "Marks: %s.\n\n", mdEscape(strings.Join(ms, "; ")))
		}
		rows := make([][]string, 0, len(c.Series))
		for _, s := range c.Series {
			rows = append(rows, seriesRow(s))
		}
		writeMDTable(bw, []string{"series [" + c.YLabel + "]", "min", "mean", "max", "last", "over " + xSpan(&c)}, rows)
		if c.Note != "" {
			fmt.Fprintf(bw, "%s\n\n", mdEscape(c.Note))
		}
	}
	return bw.Flush()
}

func writeMDTable(w io.Writer, cols []string, rows [][]string) {
	esc := func(cells []string) []string {
		out := make([]string, len(cells))
		for i, c := range cells {
			out[i] = mdEscape(c)
		}
		return out
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(esc(cols), " | "))
	seps := make([]string, len(cols))
	for i := range seps {
		seps[i] = "---"
	}
	fmt.Fprintf(w, "|%s|\n", strings.Join(seps, "|"))
	for _, r := range rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(esc(r), " | "))
	}
	fmt.Fprintln(w)
}

var mdEscaper = strings.NewReplacer("|", `\|`, "\n", " ")

func mdEscape(s string) string { return mdEscaper.Replace(s) }

// seriesRow summarises one series: name, min, mean, max, last, sparkline.
func seriesRow(s Series) []string {
	minV, maxV, sum, n, last := math.Inf(1), math.Inf(-1), 0.0, 0, math.NaN()
	for _, y := range s.Y {
		if math.IsNaN(y) || math.IsInf(y, 0) {
			continue
		}
		minV, maxV, sum, n, last = math.Min(minV, y), math.Max(maxV, y), sum+y, n+1, y
	}
	if n == 0 {
		return []string{s.Name, "—", "—", "—", "—", ""}
	}
	return []string{s.Name, num(minV), num(sum / float64(n)), num(maxV), num(last), sparkline(s.Y, minV, maxV)}
}

// num formats a figure with 4 significant digits.
func num(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// sparkline draws ys in sparkWidth characters (each the mean of its bucket);
// a space marks a bucket without data.
func sparkline(ys []float64, lo, hi float64) string {
	width := min(sparkWidth, len(ys))
	var b strings.Builder
	for i := range width {
		from, to := i*len(ys)/width, (i+1)*len(ys)/width
		sum, n := 0.0, 0
		for _, y := range ys[from:to] {
			if !math.IsNaN(y) && !math.IsInf(y, 0) {
				sum, n = sum+y, n+1
			}
		}
		if n == 0 {
			b.WriteRune(' ')
			continue
		}
		level := 0
		if hi > lo {
			level = int((sum/float64(n) - lo) / (hi - lo) * float64(len(sparkRunes)-1))
		}
		b.WriteRune(sparkRunes[max(0, min(level, len(sparkRunes)-1))])
	}
	return b.String()
}

// formatX writes an X position in the chart's unit.
func formatX(c *Chart, x float64) string {
	if !c.Time {
		return num(x)
	}
	div, _ := timeAxis(chartXMax(c))
	unit := map[float64]string{1: "s", 60: "min", 3600: "h"}[div]
	return num(x/div) + " " + unit
}

// xSpan describes the X range the sparkline covers.
func xSpan(c *Chart) string {
	if c.Time {
		return "0–" + formatX(c, chartXMax(c))
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		for _, x := range s.X {
			lo, hi = math.Min(lo, x), math.Max(hi, x)
		}
	}
	if lo > hi {
		return c.XLabel
	}
	return fmt.Sprintf("%s %s–%s", c.XLabel, num(lo), num(hi))
}
