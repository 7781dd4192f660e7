package sizing

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/reports"
	"github.com/aimwan/aimwan/transport"
)

func renderPage(t *testing.T, p *reports.Page, f reports.Format) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := reports.WritePage(&b, p, f); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pageStudy is a small study with a sweep: one day in 10-minute steps, two
// volumes, a 2 GiB buffer, three rates, two schedules.
func pageStudy(t *testing.T) *Report {
	t.Helper()
	erp := Volume{Name: "erp"}
	for h := 8; h < 18; h++ {
		erp.Hourly[h] = 1 << 30 // 1 GiB an hour in office hours
	}
	files := Volume{Name: "files", Bursts: []Burst{{At: 2 * time.Hour, Bytes: 3 << 30}}}
	m := Model{Duration: 24 * time.Hour, Step: 10 * time.Minute, Samples: 25, Buffer: 2 << 30, Rate: 250e3,
		Reduction: 4, Volumes: []Volume{erp, files}}
	for h := range m.CrossHourly {
		m.CrossHourly[h] = 70e3
	}
	res := mustRun(t, m)
	nights, err := transport.ParseSchedule("timezone UTC\ndefault paused\n* 18:00-08:00 unlimited")
	if err != nil {
		t.Fatal(err)
	}
	sw, err := Sweep(m, []float64{250e3, 1.25e6, 12.5e6}, []NamedSchedule{{Name: "as configured"}, {Name: "nights only", Schedule: nights}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &Report{Title: "test study", Model: m, Result: res, Sweep: sw}
}

func TestStudyPage(t *testing.T) {
	rep := pageStudy(t)
	p := rep.Page()
	var titles []string
	for _, tb := range p.Tables {
		titles = append(titles, tb.Title)
	}
	wantTitles := []string{"The study", "Per volume", "What line do I need for an RPO of 1h0m0s", "Smallest line that meets the RPO"}
	if !slices.Equal(titles, wantTitles) {
		t.Errorf("tables %q, want %q", titles, wantTitles)
	}
	answer := p.Tables[2]
	if len(answer.Rows) != len(rep.Sweep.Rows) {
		t.Fatalf("answer table has %d rows, sweep %d", len(answer.Rows), len(rep.Sweep.Rows))
	}
	for i, row := range rep.Sweep.Rows {
		cells := answer.Rows[i]
		if cells[0] != row.Schedule || cells[6] != map[bool]string{true: "yes", false: "no"}[row.MeetsRPO] ||
			(cells[3] == "no") != (row.Overflow == 0) {
			t.Errorf("answer row %d %q does not match %+v", i, cells, row)
		}
	}
	var ids []string
	for _, c := range p.Charts {
		ids = append(ids, c.ID)
	}
	wantIDs := []string{"src-data", "time-latency", "sweep-0-src-data", "sweep-0-time-latency", "sweep-1-src-data", "sweep-1-time-latency"}
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("charts %q, want %q", ids, wantIDs)
	}
	// Per schedule: one line per rate, plus the buffer (Src Data) or the
	// RPO (Time Latency) dashed.
	for _, c := range p.Charts[2:] {
		if len(c.Series) != 4 || !c.Series[3].Dashed || c.Series[0].Name != "250.0 KB/s" {
			t.Errorf("chart %s series %+v", c.ID, c.Series)
		}
	}
	// Study chart: erp, files, total and the buffer line.
	if n := len(p.Charts[0].Series); n != 4 {
		t.Errorf("src-data chart has %d series, want 4", n)
	}
	testkit.CheckGolden(t, "page-study.json.golden", renderPage(t, p, reports.FormatJSON))
	testkit.CheckGolden(t, "page-study.md.golden", renderPage(t, p, reports.FormatMarkdown))
	html := string(renderPage(t, p, reports.FormatHTML))
	if got := strings.Count(html, "<svg"); got != len(p.Charts) {
		t.Errorf("html has %d svg, want %d", got, len(p.Charts))
	}
}

func TestStudyPageNoSweepNoBuffer(t *testing.T) {
	m := Model{Duration: time.Hour, Step: time.Minute, Samples: 10, Rate: 1e6, Volumes: []Volume{burstAt0("a", 1e9)}}
	p := (&Report{Model: m, Result: mustRun(t, m)}).Page()
	if p.Title != "Sizing study" || len(p.Tables) != 2 || len(p.Charts) != 2 {
		t.Errorf("page %q: %d tables, %d charts; want 2 and 2", p.Title, len(p.Tables), len(p.Charts))
	}
	if n := len(p.Charts[0].Series); n != 1 { // one volume: no total, no buffer
		t.Errorf("src-data chart has %d series, want 1", n)
	}
	if u := p.Charts[1].YLabel; u != "minutes" { // 1 GB at 1 MB/s: 1000 s at worst
		t.Errorf("latency unit %q, want minutes", u)
	}
	renderPage(t, p, reports.FormatHTML)
}

func TestStudyPageNoResult(t *testing.T) {
	p := (&Report{}).Page()
	if len(p.Tables) != 0 || len(p.Charts) != 0 || len(p.Notes) != 2 {
		t.Errorf("page without a result: %+v", p)
	}
	renderPage(t, p, reports.FormatHTML)
}

func TestValidationPage(t *testing.T) {
	v, err := FromBench("testdata/bench-tiny")
	if err != nil {
		t.Fatal(err)
	}
	p := v.Page()
	if len(p.Charts) != 2 || len(p.Charts[0].Series) != 2 || len(p.Charts[0].Marks) != len(v.Phases) {
		t.Fatalf("validation page charts %+v", p.Charts)
	}
	tb := p.Tables[0]
	if tb.Rows[0][0] != "peak Src Data" || tb.Rows[1][0] != "worst Time Latency" {
		t.Errorf("validation table %q", tb.Rows)
	}
	v.Dir = "bench-tiny" // the golden file must not depend on where the test runs
	testkit.CheckGolden(t, "page-validation.md.golden", renderPage(t, v.Page(), reports.FormatMarkdown))
	renderPage(t, p, reports.FormatHTML)
}
