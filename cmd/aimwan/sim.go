package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/aimwan/aimwan/internal/units"
	"github.com/aimwan/aimwan/reports"
	"github.com/aimwan/aimwan/sim/link"
	"github.com/aimwan/aimwan/sim/sizing"
	"github.com/aimwan/aimwan/sim/workload"
)

func init() {
	register(command{Name: "sim", Summary: "simulators: link relay, workload images, sizing studies", Run: runSim})
}

// simCommands are the subcommands of "aimwan sim".
var simCommands = map[string]func(ctx context.Context, args []string) error{
	"workload": runSimWorkload,
	"link":     runSimLink,
	"size":     runSimSize,
}

func runSim(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Println("Usage: aimwan sim link|workload|size [flags]   (aimwan sim SUBCOMMAND --help)")
		if len(args) == 0 {
			return usagef("sim: no subcommand given (link, workload, size)")
		}
		return nil
	}
	run, ok := simCommands[args[0]]
	if !ok {
		return usagef("sim: unknown subcommand %q (link, workload, size)", args[0])
	}
	return run(ctx, args[1:])
}

func runSimWorkload(ctx context.Context, args []string) error {
	fs := newFlagSet("sim workload", "--out DIR [--template-size SIZE] [--clones N] [--seed S]")
	out := fs.String("out", "", "folder to write template.img and clone-N.img into (required)")
	size := fs.String("template-size", "64MiB", "template image size (e.g. 64MiB, 12G)")
	clones := fs.Int("clones", 3, "number of clones to write")
	seed := fs.String("seed", "1", "seed (unsigned integer); the same seed gives the same images")
	change := fs.Float64("change", 0, "share of a clone's blocks rewritten (0 = default 0.015)")
	used := fs.Float64("used", 0, "share of the template's blocks in use (0 = default 0.55)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("sim workload: --out is required")
	}
	n, err := units.ParseSize(*size)
	if err != nil {
		return usagef("sim workload: --template-size: %v", err)
	}
	s, err := strconv.ParseUint(*seed, 10, 64)
	if err != nil {
		return usagef("sim workload: --seed %q is not an unsigned integer", *seed)
	}
	if *clones < 0 || *clones > 1000 {
		return usagef("sim workload: --clones %d is out of range 0..1000", *clones)
	}
	t, err := workload.NewTemplate(workload.Config{Size: n, Seed: s, ChangeFraction: *change, UsedFraction: *used})
	if err != nil {
		return usagef("sim workload: %v", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("sim workload: %w", err)
	}
	write := func(name string, im *workload.Image) error {
		p := filepath.Join(*out, name)
		if err := im.WriteFile(ctx, p); err != nil {
			return err
		}
		fmt.Printf("wrote %s (%s)\n", p, units.FormatSize(im.Size()))
		return nil
	}
	if err := write("template.img", t.Image()); err != nil {
		return err
	}
	for i := 1; i <= *clones; i++ {
		if err := write(fmt.Sprintf("clone-%d.img", i), t.Clone(i)); err != nil {
			return err
		}
	}
	return nil
}

func runSimLink(ctx context.Context, args []string) error {
	fs := newFlagSet("sim link", "--listen ADDR --to ADDR [--rate 2mbit] [--rtt 40ms] [flags]")
	listen := fs.String("listen", "127.0.0.1:7400", "address to listen on (UDP and TCP, same port)")
	to := fs.String("to", "", "address to relay to (UDP and TCP; required)")
	rate := fs.String("rate", "2mbit", "line rate per direction (2mbit, 240KB/s, unlimited)")
	rtt := fs.Duration("rtt", 40*time.Millisecond, "round-trip time (half each way)")
	jitter := fs.Duration("jitter", 0, "random extra one-way delay, uniform [0, jitter), order kept")
	loss := fs.String("loss", "0", "UDP datagram loss probability (0.1% or 0.001)")
	dup := fs.String("dup", "0", "UDP datagram duplication probability")
	reorder := fs.String("reorder", "0", "probability that a UDP datagram is held back and overtaken")
	reorderDelay := fs.Duration("reorder-delay", 10*time.Millisecond, "extra delay of a reordered datagram")
	queue := fs.String("queue", "", "drop-tail queue size per direction (default 100 ms at the rate, at least 32KiB)")
	cross := fs.String("cross", "0", "cross traffic per direction competing in the queue (e.g. 70KB/s)")
	crossPacket := fs.Int("cross-packet", 200, "cross-traffic packet size in bytes")
	outage := fs.String("outage", "", "outages of the primary line: START+DURATION[,...] from start, e.g. 60s+20s")
	backup := fs.String("backup-rate", "0", "backup line rate used during outages (0: none, traffic dropped)")
	seed := fs.Uint64("seed", 1, "seed of the random impairments")
	metrics := fs.String("metrics", "", "address to serve Prometheus metrics on (e.g. 127.0.0.1:9400)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	line, err := simLinkLine(*rate, *rtt, *jitter, *loss, *dup, *reorder, *queue, *cross, *outage, *backup)
	if err != nil {
		return err
	}
	line.ReorderDelay, line.CrossPacket, line.Seed = *reorderDelay, *crossPacket, *seed
	reg := prometheus.NewRegistry()
	log := slog.Default()
	r, err := link.New(link.Config{Listen: *listen, To: *to, Line: line, Metrics: reg, Logger: log})
	if err != nil {
		return usagef("sim link: %v", err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.Serve(ctx) })
	if *metrics != "" {
		g.Go(func() error { return reports.ServeMetrics(ctx, *metrics, reg, log) })
	}
	return g.Wait()
}

// simLinkLine turns the line flags into a link.PipeConfig.
func simLinkLine(rate string, rtt, jitter time.Duration, loss, dup, reorder, queue, cross, outage, backup string) (link.PipeConfig, error) {
	var c link.PipeConfig
	var err error
	if c.Rate, err = units.ParseRate(rate); err != nil || c.Rate <= 0 {
		return c, usagef("sim link: --rate %q: want a positive rate such as 2mbit or 240KB/s", rate)
	}
	if rtt < 0 || jitter < 0 {
		return c, usagef("sim link: --rtt and --jitter must not be negative")
	}
	c.Delay, c.Jitter = rtt/2, jitter
	if c.Delay == 0 {
		c.Delay = -1 // no delay (the zero value means the default)
	}
	for _, p := range []struct {
		name, v string
		dst     *float64
	}{{"loss", loss, &c.Loss}, {"dup", dup, &c.Duplicate}, {"reorder", reorder, &c.Reorder}} {
		if *p.dst, err = link.ParseProbability(p.v); err != nil {
			return c, usagef("sim link: --%s: %v", p.name, err)
		}
	}
	if queue != "" {
		if c.Queue, err = units.ParseSize(queue); err != nil {
			return c, usagef("sim link: --queue: %v", err)
		}
	}
	if c.Cross, err = units.ParseRate(cross); err != nil {
		return c, usagef("sim link: --cross: %v", err)
	}
	if c.BackupRate, err = units.ParseRate(backup); err != nil {
		return c, usagef("sim link: --backup-rate: %v", err)
	}
	if c.Outages, err = link.ParseOutages(outage); err != nil {
		return c, usagef("sim link: --outage: %v", err)
	}
	return c, nil
}

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
	fs := newFlagSet("sim size", "--config FILE [--out DIR]")
	config := fs.String("config", "", "sizing study (YAML; see docs/sizing.md) (required)")
	out := fs.String("out", "", "folder for sizing.json (summary, curves, sweep) and curves.csv")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *config == "" {
		return usagef("sim size: --config is required")
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
	return writeSizing(*out, &o)
}

func secs(s float64) string {
	if s < 0 {
		return "not within the run"
	}
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
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
		units.FormatSize(int64(r.PeakBacklog)), secs(r.PeakAt), secs(r.CatchUp))
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
			units.FormatSize(int64(row.PeakBacklog)), secs(row.MaxLatency), secs(row.CatchUp),
			units.FormatSize(int64(row.Overflow)), row.MeetsRPO)
	}
	tw.Flush()
	for _, row := range o.Sweep.Rows { // first row of each schedule, in order
		if n, ok := o.Sweep.Needed[row.Schedule]; ok {
			if n > 0 {
				fmt.Fprintf(w, "needed with schedule %q: %s\n", row.Schedule, units.FormatRate(n))
			} else {
				fmt.Fprintf(w, "needed with schedule %q: more than the rates tried\n", row.Schedule)
			}
			delete(o.Sweep.Needed, row.Schedule)
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
	fmt.Printf("\nwrote %s and %s\n", filepath.Join(dir, "sizing.json"), filepath.Join(dir, "curves.csv"))
	return nil
}
