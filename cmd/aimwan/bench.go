package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aimwan/aimwan/internal/units"
	"github.com/aimwan/aimwan/sim/bench"
)

func init() {
	register(command{Name: "bench", Summary: "the seed experiment end to end (pass-through, then optimized); writes DIR/result.json", Run: runBench})
}

// runBench: aimwan bench --out DIR [--scale tiny|small|full] [--images IMG...] ...
func runBench(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "wan" {
		return runBenchWAN(ctx, args[1:])
	}
	cfg, report, err := benchConfig(args)
	if err != nil {
		return err
	}
	_, runErr := bench.Run(ctx, cfg)
	if errors.Is(runErr, bench.ErrConfig) {
		return usagef("%v", runErr)
	}
	if _, err := os.Stat(filepath.Join(cfg.Out, "result.json")); err == nil && report {
		if err := reportMain([]string{"--in", cfg.Out, "--out", filepath.Join(cfg.Out, "report.html"),
			"--title", "aimwan bench (" + cfg.Scale + ")"}, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "bench: report: %v\n", err)
		}
	}
	return runErr
}

// benchConfig parses the flags into bench.Config.
func benchConfig(args []string) (bench.Config, bool, error) {
	fs := newFlagSet("bench", "--out DIR [--scale tiny|small|full] [--images IMG ...] [--seed S] [--rate 2mbit] [--rtt 40ms] [--cross 70KB/s] [--prime]")
	out := fs.String("out", "", "run `DIR`: recordings, result.json, phases.json, report.html, work/ (required)")
	scale := fs.String("scale", bench.DefaultScale, "`SCALE`: tiny (CI, seconds), small (make demo, < 10 min), full (larger)")
	var images multiFlag
	fs.Var(&images, "images", "your own VM `IMG` files as the clones (repeatable or comma-separated; at least 2, the last is created in the optimized phase)")
	template := fs.String("template", "", "with --images and --prime: the template `IMG` the DR site already holds")
	seed := fs.String("seed", "1", "workload seed (unsigned integer)")
	rate := fs.String("rate", "2mbit", "line `RATE` of the simulated WAN")
	rtt := fs.Duration("rtt", 40*time.Millisecond, "round-trip time of the simulated WAN")
	cross := fs.String("cross", "70KB/s", "cross traffic `RATE` on the line (0 = none)")
	prime := fs.Bool("prime", false, "prime the DR cache with the template before the run (reported in the result)")
	noLink := fs.Bool("no-link", false, "connect the proxies directly, without the link simulator (development only)")
	pass := fs.Duration("passthrough", 0, "length of the pass-through phase (default: the scale's)")
	noReport := fs.Bool("no-report", false, "do not write DIR/report.html")
	if err := parseFlags(fs, args); err != nil {
		return bench.Config{}, false, err
	}
	if fs.NArg() > 0 {
		return bench.Config{}, false, usagef("bench: unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return bench.Config{}, false, usagef("bench: --out DIR is required")
	}
	bin, err := os.Executable()
	if err != nil {
		return bench.Config{}, false, fmt.Errorf("bench: find the aimwan binary: %w", err)
	}
	cfg := bench.Config{Out: *out, Bin: bin, Scale: *scale, Template: *template, RTT: *rtt, Prime: *prime,
		NoLink: *noLink, Passthrough: *pass}
	for _, s := range images {
		cfg.Images = append(cfg.Images, splitList(s)...)
	}
	if cfg.Seed, err = strconv.ParseUint(*seed, 10, 64); err != nil {
		return cfg, false, usagef("bench: --seed %q is not an unsigned integer", *seed)
	}
	if cfg.Rate, err = units.ParseRate(*rate); err != nil {
		return cfg, false, usagef("bench: --rate: %v", err)
	}
	if cfg.Cross, err = units.ParseRate(*cross); err != nil {
		return cfg, false, usagef("bench: --cross: %v", err)
	}
	if cfg.Cross == 0 {
		cfg.Cross = -1 // none (zero means the default in bench.Config)
	}
	if *rtt <= 0 {
		return cfg, false, usagef("bench: --rtt %v: want a positive duration", *rtt)
	}
	if _, ok := bench.Scales[cfg.Scale]; !ok {
		return cfg, false, usagef("bench: --scale %q: want tiny, small or full", cfg.Scale)
	}
	return cfg, !*noReport, nil
}
