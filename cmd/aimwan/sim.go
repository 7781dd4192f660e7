package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/internal/units"
	"github.com/aimwan/aimwan/sim/link"
	"github.com/aimwan/aimwan/sim/workload"
)

func init() {
	register(command{Name: "sim", Summary: "simulators: link relay, workload images, sizing studies, offline dedupe estimate", Run: runSim})
}

// simCommands are the subcommands of "aimwan sim".
var simCommands = map[string]func(ctx context.Context, args []string) error{
	"workload": runSimWorkload,
	"link":     runSimLink,
	"size":     runSimSize,
}

func runSim(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Println("Usage: aimwan sim link|workload|size|estimate [flags]   (aimwan sim SUBCOMMAND --help)")
		if len(args) == 0 {
			return usagef("sim: no subcommand given (link, workload, size, estimate)")
		}
		return nil
	}
	run, ok := simCommands[args[0]]
	if !ok {
		return usagef("sim: unknown subcommand %q (link, workload, size, estimate)", args[0])
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

// Default addresses of `aimwan sim link`; its metrics port is one of the
// distinct default ports of the daemons (docs/metrics.md).
const (
	simLinkDefaultListen  = "127.0.0.1:7400"
	simLinkDefaultMetrics = "127.0.0.1:9720"
)

func runSimLink(ctx context.Context, args []string) error {
	fs := newFlagSet("sim link", "--listen ADDR --to ADDR [--rate 2mbit] [--rtt 40ms] [flags]")
	listen := fs.String("listen", simLinkDefaultListen, "address to listen on (UDP and TCP, same port)")
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
	metricsAddr := fs.String("metrics", simLinkDefaultMetrics, "`ADDR` to serve Prometheus metrics on, or off")
	record := fs.String("record", "", "`DIR` to append the metrics to once a second (DIR/link.jsonl, for aimwan report)")
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
	g.Go(func() error { return metrics.ServeMetrics(ctx, *metricsAddr, reg, log) }) // "" or off: none
	if *record != "" {
		rec, err := metrics.NewRecorder(metrics.RecorderConfig{Dir: *record, Daemon: "link", Gatherer: reg, Logger: log})
		if err != nil {
			return usagef("sim link: --record: %v", err)
		}
		g.Go(func() error { return rec.Serve(ctx) })
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
