package reports

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/internal/testkit"
)

// buildFixture loads testdata/<name> and builds its page.
func buildFixture(t *testing.T, name string) *Page {
	t.Helper()
	run, err := LoadRun(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	page, err := BuildPage(run, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return page
}

func render(t *testing.T, p *Page, f Format) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WritePage(&b, p, f); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestReportGolden(t *testing.T) {
	// realtiny is a real `aimwan bench --scale tiny` run (16 s, recorded as is).
	for _, fixture := range []string{"bench", "srconly", "realtiny"} {
		t.Run(fixture, func(t *testing.T) {
			page := buildFixture(t, fixture)
			testkit.CheckGolden(t, fixture+".json.golden", render(t, page, FormatJSON))
			testkit.CheckGolden(t, fixture+".md.golden", render(t, page, FormatMarkdown))
			html := render(t, page, FormatHTML)
			checkSelfContained(t, html)
			testkit.CheckGolden(t, fixture+".html-outline.golden", []byte(htmlOutline(html)))
		})
	}
}

// TestBenchFigures checks the numbers the fixture was built to produce (see
// testdata/gen_fixtures.py), independent of the golden files.
func TestBenchFigures(t *testing.T) {
	page := buildFixture(t, "bench")
	ids := map[string]*Chart{}
	for i := range page.Charts {
		ids[page.Charts[i].ID] = &page.Charts[i]
	}
	for _, id := range []string{"transfer-rate", "src-data", "time-latency", "data-reduction", "cache-hit-rate", "schedule-cap"} {
		if ids[id] == nil {
			t.Fatalf("chart %s missing", id)
		}
	}
	at := func(id, series string, x float64) float64 {
		for _, s := range ids[id].Series {
			if s.Name != series {
				continue
			}
			for i := range s.X {
				if s.X[i] == x {
					return s.Y[i]
				}
			}
		}
		t.Fatalf("chart %s has no series %q at x=%v", id, series, x)
		return 0
	}
	near := func(what string, got, want float64) {
		if math.Abs(got-want) > 0.01*math.Abs(want)+1e-9 {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	const eff = "effective (destaged), mean over 10 s"
	near("effective at 30 s", at("transfer-rate", eff, 30), 235)
	near("effective at 100 s (20x)", at("transfer-rate", eff, 100), 4800)
	near("effective at 150 s (14x)", at("transfer-rate", eff, 150), 3360)
	// The source edge's wire bytes only: the destination edge's acks (2 KB/s)
	// go the other way.
	near("wire at 150 s (source edge)", at("transfer-rate", "wire (source edge to WAN)", 150), 238)
	if !ids["transfer-rate"].LogY {
		t.Error("transfer rate is not on a log axis")
	}
	// The last grid interval reaches beyond the last sample: no partial rate
	// there (it used to dip to almost nothing at the end of every chart).
	for _, sr := range ids["transfer-rate"].Series {
		last := math.NaN()
		for _, y := range sr.Y {
			if !math.IsNaN(y) {
				last = y
			}
		}
		if want := map[string]float64{"wire (source edge to WAN)": 238, "link (simulated WAN, up)": 240, eff: 3360}[sr.Name]; math.Abs(last-want) > 0.01*want {
			t.Errorf("transfer rate %s ends at %v, want %v", sr.Name, last, want)
		}
	}
	// Gauges hold their latest sample: the one taken at 60.003 s shows at 61 s.
	near("src data vm1 at 61 s (MB)", at("src-data", "vm1", 61), 60)
	near("latency vm2 at 61 s", at("time-latency", "vm2", 61), 54.5)
	// Time Latency is drawn from each volume's first destaged file on.
	for _, c := range []struct {
		vol   string
		x     float64
		drawn bool
	}{{"vm1", 2, false}, {"vm1", 3, true}, {"vm2", 6, false}, {"vm2", 7, true}} { // the samples at 2.005 and 6.005 s show at 3 and 7 s
		if v := at("time-latency", c.vol, c.x); math.IsNaN(v) == c.drawn {
			t.Errorf("latency %s at %v s = %v, drawn %v", c.vol, c.x, v, c.drawn)
		}
	}
	// Both edges count the same logical bytes; reduction takes the source
	// edge's only (6.0x read as 12.25x when summed).
	near("reduction over 10 s at 150 s", at("data-reduction", "over 10 s", 150), 3360.0/238)
	near("hit rate at 150 s", at("cache-hit-rate", "over 10 s", 150), 100*(900+30.0)/(900+30+60))
	if v := at("schedule-cap", "cap (proxy-src)", 130); !math.IsInf(v, 1) {
		t.Errorf("cap at 130 s = %v, want +Inf (unlimited)", v)
	}
	if v := at("cache-hit-rate", "over 10 s", 30); !math.IsNaN(v) {
		t.Errorf("hit rate in pass-through = %v, want no data", v)
	}
	if len(page.Tables) != 3 || page.Tables[0].Title != "Seed experiment vs this run" || page.Tables[1].Title != "Phases" {
		t.Fatalf("tables %+v", page.Tables)
	}
	if got := page.Tables[1].Rows[1]; got[0] != "optimize" || got[2] != "238.0" || got[4] != "3599.9" || got[5] != "15.13x" {
		t.Errorf("optimize phase row %q", got)
	}
	// One data-reduction figure: the seed table gives the optimize phase's,
	// as the phase table does, and the summary none (phases are given).
	if got := page.Tables[0].Rows[6]; got[0] != "Data reduction (source edge, logical / wire)" || !strings.HasPrefix(got[2], "15.1x over the optimize phase") {
		t.Errorf("seed reduction row %q", got)
	}
	summary := map[string]string{}
	for _, r := range page.Tables[2].Rows {
		summary[r[0]] = r[1]
	}
	if got := summary["Effective rate: mean / peak over 10 s"]; got != "2478.2 / 4800.0 KB/s" {
		t.Errorf("effective rate summary %q", got)
	}
	if got := summary["Time Latency, worst"]; got != "54.5s (vm2)" {
		t.Errorf("worst latency %q", got)
	}
	for k := range summary {
		if strings.Contains(k, "reduction") {
			t.Errorf("summary gives a data reduction (%s) beside the phases' figures", k)
		}
	}
	if got := summary["Wire bytes (source edge)"]; got != "42.8 MB" { // 180 s × 238 KB/s
		t.Errorf("wire bytes %q", got)
	}
}

// TestSourceEdgeSelection: proxies' figures come from the role="source"
// series when the recordings have role labels, else (older recordings) from
// the recording whose proxy put the most bytes on the WAN.
func TestSourceEdgeSelection(t *testing.T) {
	rec := func(daemon string, rows ...map[string]float64) *Recording {
		r := &Recording{Daemon: daemon}
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i, v := range rows {
			r.Samples = append(r.Samples, metrics.Sample{Time: t0.Add(time.Duration(i) * time.Second), Values: v})
		}
		return r
	}
	labelled := []*Recording{
		rec("a", map[string]float64{`aimwan_proxy_logical_bytes_total{role="destination"}`: 0, `aimwan_proxy_wire_bytes_total{role="destination"}`: 0},
			map[string]float64{`aimwan_proxy_logical_bytes_total{role="destination"}`: 600, `aimwan_proxy_wire_bytes_total{role="destination"}`: 5}),
		rec("b", map[string]float64{`aimwan_proxy_logical_bytes_total{role="source"}`: 0, `aimwan_proxy_wire_bytes_total{role="source"}`: 0},
			map[string]float64{`aimwan_proxy_logical_bytes_total{role="source"}`: 600, `aimwan_proxy_wire_bytes_total{role="source"}`: 100}),
	}
	old := []*Recording{
		rec("a", map[string]float64{"aimwan_proxy_logical_bytes_total": 0, "aimwan_proxy_wire_bytes_total": 0},
			map[string]float64{"aimwan_proxy_logical_bytes_total": 600, "aimwan_proxy_wire_bytes_total": 5}),
		rec("b", map[string]float64{"aimwan_proxy_logical_bytes_total": 0, "aimwan_proxy_wire_bytes_total": 0},
			map[string]float64{"aimwan_proxy_logical_bytes_total": 600, "aimwan_proxy_wire_bytes_total": 100}),
	}
	for name, recs := range map[string][]*Recording{"role labels": labelled, "older recordings": old} {
		g, _ := newGrid(recs, nil)
		f := computeFigures(recs, g)
		if l, w := total(f.logical), total(f.wire); l != 600 || w != 100 {
			t.Errorf("%s: logical %v wire %v, want the source edge's 600 and 100 (6.0x, not 12.0x)", name, l, w)
		}
	}
}

// TestLogTicks: powers of ten are labelled; 2 and 5 only on a short range.
func TestLogTicks(t *testing.T) {
	labels := func(lo, hi float64) []string {
		var out []string
		for _, tk := range logTicks(lo, hi) {
			if tk.Label != "" {
				out = append(out, tk.Label)
			}
		}
		return out
	}
	if got := strings.Join(labels(10, 50000), " "); got != "10 100 1000 10000" {
		t.Errorf("labels 10..50000 = %s", got)
	}
	if got := strings.Join(labels(0.1, 8), " "); got != "0.1 0.2 0.5 1 2 5" {
		t.Errorf("labels 0.1..8 = %s", got)
	}
	if logTicks(0, 10) != nil || logTicks(10, 1) != nil {
		t.Error("ticks for an empty or non-positive range")
	}
}

// checkSelfContained: no scripts, no external resources, one SVG per chart.
func checkSelfContained(t *testing.T, html []byte) {
	t.Helper()
	s := string(html)
	if strings.Contains(s, "<script") {
		t.Error("page has a script")
	}
	// The only URLs allowed are the SVG namespace names, which are never fetched.
	urls := regexp.MustCompile(`(?:https?:)?//[A-Za-z0-9.-]+[^"' )]*`).FindAllString(s, -1)
	for _, u := range urls {
		if u != "http://www.w3.org/2000/svg" && u != "http://www.w3.org/1999/xlink" {
			t.Errorf("page references %s", u)
		}
	}
	for _, attr := range []string{" src=", "@import", "url("} {
		if strings.Contains(s, attr) {
			t.Errorf("page contains %q", attr)
		}
	}
}

var (
	reTag     = regexp.MustCompile(`(?s)<(h1|h2|th|figcaption|p)(?: class="([a-z]+)")?>(.*?)</(?:h1|h2|th|figcaption|p)>|<section class="chart" id="([a-z-]+)">|<svg .*?</svg>|<tr>`)
	rePath    = regexp.MustCompile(`<path `)
	reText    = regexp.MustCompile(`<text [^>]*>([^<]*)</text>`)
	reViewBox = regexp.MustCompile(`viewBox="([^"]*)"`)
)

// htmlOutline reduces the page to its structure: headings, table headers and
// row counts, and per chart its SVG's size, number of paths and its texts.
func htmlOutline(html []byte) string {
	var b strings.Builder
	var ths []string
	rows := 0
	flushTable := func() {
		if len(ths) > 0 {
			fmt.Fprintf(&b, "  table: %s; %d rows\n", strings.Join(ths, " | "), rows-1)
		}
		ths, rows = nil, 0
	}
	for _, m := range reTag.FindAllStringSubmatch(string(html), -1) {
		switch {
		case m[1] == "th":
			ths = append(ths, m[3])
		case m[0] == "<tr>":
			rows++
		case m[4] != "":
			flushTable()
			fmt.Fprintf(&b, "chart %s\n", m[4])
		case strings.HasPrefix(m[0], "<svg"):
			var texts []string
			for _, tm := range reText.FindAllStringSubmatch(m[0], -1) {
				texts = append(texts, tm[1])
			}
			vb := reViewBox.FindStringSubmatch(m[0])
			fmt.Fprintf(&b, "  svg viewBox=%q paths=%d texts=%q\n", vb[1], len(rePath.FindAllString(m[0], -1)), texts)
		default:
			flushTable()
			tag := m[1]
			if m[2] != "" {
				tag += "." + m[2]
			}
			fmt.Fprintf(&b, "%s: %s\n", tag, m[3])
		}
	}
	flushTable()
	return b.String()
}

func TestWritePageErrors(t *testing.T) {
	tests := []struct {
		name string
		page Page
		f    Format
		want error
	}{
		{"unknown format", Page{}, Format("pdf"), ErrUnknownFormat},
		{"x and y lengths", Page{Charts: []Chart{{ID: "c", Series: []Series{{Name: "s", X: []float64{1}}}}}}, FormatHTML, nil},
		{"nan x", Page{Charts: []Chart{{ID: "c", Series: []Series{{Name: "s", X: []float64{math.NaN()}, Y: []float64{1}}}}}}, FormatJSON, nil},
		{"ragged table", Page{Tables: []Table{{Columns: []string{"a", "b"}, Rows: [][]string{{"1"}}}}}, FormatMarkdown, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := WritePage(&bytes.Buffer{}, &tt.page, tt.f)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
}

// TestSizingStylePage renders a page as `aimwan sim size` would: X not time,
// several curves, an answer table, gaps and infinities in the data.
func TestSizingStylePage(t *testing.T) {
	p := &Page{
		Title:  "Sizing study",
		Tables: []Table{{Title: "Answer", Columns: []string{"link", "RPO p99"}, Rows: [][]string{{"2mbit", "41 s"}}}},
		Charts: []Chart{{
			ID: "rpo", Title: "RPO by link rate", XLabel: "hour of day", YLabel: "seconds", YMin0: true,
			Series: []Series{
				{Name: "2mbit", X: []float64{0, 1, 2, 3}, Y: []float64{10, math.NaN(), 30, 20}},
				{Name: "10mbit", X: []float64{0, 1, 2, 3}, Y: []float64{1, 2, math.Inf(1), 1}, Dashed: true},
				{Name: "empty"},
			},
			Marks: []Mark{{X: 1.5, Label: "backup window"}},
		}},
	}
	for _, f := range []Format{FormatHTML, FormatMarkdown, FormatJSON} {
		out := render(t, p, f)
		if f == FormatJSON {
			var back struct {
				Charts []struct {
					Series []struct{ Y []*float64 }
				}
			}
			if err := json.Unmarshal(out, &back); err != nil {
				t.Fatalf("json output does not parse: %v", err)
			}
			ys := back.Charts[0].Series
			if ys[0].Y[1] != nil || ys[1].Y[2] != nil || ys[0].Y[2] == nil || *ys[0].Y[2] != 30 {
				t.Errorf("NaN/Inf not written as null: %s", out)
			}
		}
		if f == FormatHTML && strings.Count(string(out), "<svg") != 1 {
			t.Error("want one svg")
		}
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"html": FormatHTML, "md": FormatMarkdown, "markdown": FormatMarkdown, "json": FormatJSON} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("pdf"); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("pdf: %v", err)
	}
}

func TestLoadRunErrors(t *testing.T) {
	write := func(t *testing.T, files map[string]string) string {
		dir := t.TempDir()
		for n, c := range files {
			if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	tests := []struct {
		name  string
		files map[string]string
	}{
		{"bad result", map[string]string{ResultFile: "{"}},
		{"negative result", map[string]string{ResultFile: `{"line_kbps":-1}`}},
		{"bad phases", map[string]string{PhasesFile: `{"name":"x"}`}},
		{"phase without name", map[string]string{PhasesFile: `[{"start":"2026-11-22T06:00:00Z"}]`}},
		{"phase without start", map[string]string{PhasesFile: `[{"name":"a"}]`}},
		{"phase ends first", map[string]string{PhasesFile: `[{"name":"a","start":"2026-11-22T06:00:00Z","end":"2026-11-22T05:00:00Z"}]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadRun(write(t, tt.files))
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("err %v, want ErrBadInput", err)
			}
		})
	}
	if _, err := LoadRun(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing folder: no error")
	}
	t.Run("empty folder", func(t *testing.T) {
		run, err := LoadRun(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		p, err := BuildPage(run, BuildOptions{})
		if err != nil || len(p.Charts) != 0 || len(p.Notes) != 1 {
			t.Fatalf("page %+v, %v", p, err)
		}
	})
	t.Run("phases in result.json", func(t *testing.T) {
		dir := write(t, map[string]string{ResultFile: `{"line_kbps":240,"phases":[{"name":"optimize","start":"2026-11-22T06:00:00Z"}]}`})
		run, err := LoadRun(dir)
		if err != nil || len(run.Phases) != 1 || run.Result.LineKBps != 240 {
			t.Fatalf("run %+v, %v", run, err)
		}
	})
}

func TestCounterReset(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	rec := &Recording{Daemon: "proxy"}
	for i, v := range []float64{0, 100, 200, 50, 150} { // restarted between 2 and 3
		rec.Samples = append(rec.Samples, metrics.Sample{Time: t0.Add(time.Duration(i) * time.Second), Values: map[string]float64{metrics.ProxyWire: v}})
	}
	g, _ := newGrid([]*Recording{rec}, nil)
	inc := increments([]*Recording{rec}, g, metricIs(metrics.ProxyWire))
	want := []float64{math.NaN(), 100, 100, 50, 100}
	for i := range want {
		if !(inc[i] == want[i] || math.IsNaN(inc[i]) && math.IsNaN(want[i])) {
			t.Fatalf("increments %v, want %v", inc, want)
		}
	}
}

func TestReportDir(t *testing.T) {
	out := filepath.Join(t.TempDir(), "report.html")
	page, err := ReportDir(filepath.Join("testdata", "bench"), out, FormatHTML, BuildOptions{Title: "bench"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if page.Title != "bench" || !bytes.Contains(b, []byte("<title>bench</title>")) {
		t.Errorf("title not used")
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 {
		t.Errorf("temporary files left beside the report: %v", entries)
	}
	if _, err := ReportDir(filepath.Join("testdata", "bench"), filepath.Join(t.TempDir(), "no", "r.html"), FormatHTML, BuildOptions{}); err == nil {
		t.Error("writing into a missing folder: no error")
	}
}
