package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/aimwan/aimwan/internal/units"
	"github.com/aimwan/aimwan/reports"
	"github.com/aimwan/aimwan/sim/sizing"
)

// sizingOutput is what `aimwan sim size --out DIR` writes as sizing.json.
type sizingOutput struct {
	Volumes   []string            `json:"volumes"`
	Rate      float64             `json:"rate"`
	Reduction float64             `json:"reduction"`
	Buffer    float64             `json:"buffer"`
	Result    *sizing.Result      `json:"result"`
	Sweep     *sizing.SweepResult `json:"sweep,omitempty"`
}

func runSimSize(ctx context.Context, args []string) error {
	fs := newFlagSet("sim size", "--config FILE [--out DIR] | --from-bench DIR [--out DIR]")
	config := fs.String("config", "", "sizing study (YAML; see docs/sizing.md)")
	fromBench := fs.String("from-bench", "", "a bench run DIR: model its scenario and print predicted vs measured")
	out := fs.String("out", "", "folder for sizing.json (summary, curves, sweep), curves.csv and sizing.html (validation.json and validation.html with --from-bench)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *config != "" && *fromBench != "":
		return usagef("sim size: give --config or --from-bench, not both")
	case *fromBench != "":
		return runSizeFromBench(os.Stdout, *fromBench, *out)
	case *config == "":
		return usagef("sim size: --config or --from-bench is required")
	}
	var f sizing.File
	if err := loadYAML(*config, &f); err != nil {
		return err
	}
	st, err := f.Study(filepath.Dir(*config))
	if err != nil {
		return usagef("sim size: %s: %v", *config, err)
	}
	res, err := sizing.Run(st.Model)
	if err != nil {
		return usagef("sim size: %v", err)
	}
	o := sizingOutput{Rate: st.Model.Rate, Reduction: max(1, st.Model.Reduction), Buffer: st.Model.Buffer, Result: res}
	for _, v := range st.Model.Volumes {
		o.Volumes = append(o.Volumes, v.Name)
	}
	if st.Sweep {
		if o.Sweep, err = sizing.Sweep(st.Model, st.Rates, st.Schedules, st.RPO); err != nil {
			return usagef("sim size: %v", err)
		}
	}
	printSizing(os.Stdout, &o)
	if *out == "" {
		return nil
	}
	if err := writeSizing(*out, &o); err != nil {
		return err
	}
	rep := sizing.Report{Title: "Sizing study: " + filepath.Base(*config), Model: st.Model, Result: res, Sweep: o.Sweep}
	page := filepath.Join(*out, "sizing.html")
	if err := reports.WriteFile(page, rep.Page(), reports.FormatHTML); err != nil {
		return fmt.Errorf("sim size: %w", err)
	}
	fmt.Printf("wrote %s\n", page)
	return nil
}

func secs(s float64) string {
	if s < 0 {
		return "not within the run"
	}
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}

// catchUp says "no backlog" when there never was one.
func catchUp(s, peak float64) string {
	if peak <= 0 {
		return "no backlog"
	}
	return secs(s)
}

func printSizing(w io.Writer, o *sizingOutput) {
	r := o.Result
	buf := "unlimited"
	if o.Buffer > 0 {
		buf = units.FormatSize(int64(o.Buffer))
	}
	fmt.Fprintf(w, "line %s, data reduction %.2fx, buffer %s\n\n", units.FormatRate(o.Rate), o.Reduction, buf)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "volume\twritten\tpeak Src Data\tat\tmax Time Latency\tfinal Src Data\tfinal Time Latency")
	for _, v := range r.Volumes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, units.FormatSize(int64(v.Written)),
			units.FormatSize(int64(v.PeakBacklog)), secs(v.PeakAt), secs(v.MaxLatency),
			units.FormatSize(int64(v.FinalBacklog)), secs(v.FinalLatency))
	}
	tw.Flush()
	fmt.Fprintf(w, "\npeak buffer needed: %s at %s; catch-up after the peak: %s\n",
		units.FormatSize(int64(r.PeakBacklog)), secs(r.PeakAt), catchUp(r.CatchUp, r.PeakBacklog))
	if r.Overflow > 0 {
		fmt.Fprintf(w, "BUFFER OVERFLOWS at %s: %s did not fit\n", secs(r.FirstOverflow), units.FormatSize(int64(r.Overflow)))
	} else {
		fmt.Fprintln(w, "buffer: no overflow")
	}
	if o.Sweep == nil {
		return
	}
	fmt.Fprintf(w, "\nsweep for an RPO of %s:\n", secs(o.Sweep.RPO))
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "schedule\tline\tpeak Src Data\tmax Time Latency\tcatch-up\toverflow\tmeets RPO")
	for _, row := range o.Sweep.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\n", row.Schedule, units.FormatRate(row.Rate),
			units.FormatSize(int64(row.PeakBacklog)), secs(row.MaxLatency), catchUp(row.CatchUp, row.PeakBacklog),
			units.FormatSize(int64(row.Overflow)), row.MeetsRPO)
	}
	tw.Flush()
	seen := map[string]bool{}
	for _, row := range o.Sweep.Rows { // first row of each schedule, in order
		if n, ok := o.Sweep.Needed[row.Schedule]; ok && !seen[row.Schedule] {
			seen[row.Schedule] = true
			if n > 0 {
				fmt.Fprintf(w, "needed with schedule %q: %s\n", row.Schedule, units.FormatRate(n))
			} else {
				fmt.Fprintf(w, "needed with schedule %q: more than the rates tried\n", row.Schedule)
			}
		}
	}
}

func writeSizing(dir string, o *sizingOutput) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sim size: %w", err)
	}
	b, err := json.MarshalIndent(o, "", " ")
	if err != nil {
		return fmt.Errorf("sim size: encode result: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sizing.json"), b, 0o644); err != nil {
		return fmt.Errorf("sim size: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "curves.csv"))
	if err != nil {
		return fmt.Errorf("sim size: %w", err)
	}
	cw := csv.NewWriter(f)
	head := []string{"t_s", "total_backlog", "capacity", "sent", "overflow"}
	for _, v := range o.Volumes {
		head = append(head, "backlog_"+v, "latency_s_"+v)
	}
	cw.Write(head) //nolint:errcheck // checked by cw.Error
	g := func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
	for _, s := range o.Result.Samples {
		row := []string{g(s.T), g(s.Total), g(s.Capacity), g(s.Sent), g(s.Overflow)}
		for i := range s.Backlog {
			row = append(row, g(s.Backlog[i]), g(s.Latency[i]))
		}
		cw.Write(row) //nolint:errcheck
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		f.Close()
		return fmt.Errorf("sim size: write curves.csv: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sim size: %w", err)
	}
	fmt.Printf("\nwrote %s, %s\n", filepath.Join(dir, "sizing.json"), filepath.Join(dir, "curves.csv"))
	return nil
}

// runSizeFromBench models a bench run's scenario and prints predicted vs
// measured; with out, it writes validation.json and validation.html there.
func runSizeFromBench(w io.Writer, dir, out string) error {
	v, err := sizing.FromBench(dir)
	if err != nil {
		return fmt.Errorf("sim size: %w", err)
	}
	m := v.Model
	fmt.Fprintf(w, "bench run %s: line %s, cross traffic %s, files of %s\n", dir, units.FormatRate(m.Rate),
		units.FormatRate(m.CrossHourly[0]), units.FormatSize(int64(m.FileSize)))
	for _, ph := range v.Phases {
		fmt.Fprintf(w, "  phase %s from %.1fs: data reduction %.2fx (logical / link bytes), line use %.0f%%\n",
			ph.Name, ph.Start, ph.Reduction, 100*ph.LineUse)
	}
	for _, n := range v.Notes {
		fmt.Fprintf(w, "WARNING: %s\n", n)
	}
	fmt.Fprintln(w)
	t := v.Table()
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, row := range append([][]string{t.Columns}, t.Rows...) {
		for i, c := range row {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, c)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if out == "" {
		return nil
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("sim size: %w", err)
	}
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return fmt.Errorf("sim size: encode validation: %w", err)
	}
	if err := os.WriteFile(filepath.Join(out, "validation.json"), b, 0o644); err != nil {
		return fmt.Errorf("sim size: %w", err)
	}
	page := filepath.Join(out, "validation.html")
	if err := reports.WriteFile(page, v.Page(), reports.FormatHTML); err != nil {
		return fmt.Errorf("sim size: %w", err)
	}
	fmt.Fprintf(w, "\nwrote %s, %s\n", filepath.Join(out, "validation.json"), page)
	return nil
}
