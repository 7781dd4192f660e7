package main

import (
	"context"
	"errors"
	"fmt"
	"math"
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

// runBench: aimwan bench --out DIR [--scale tiny|small|full|seed] [--images IMG...] ...
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
	fs := newFlagSet("bench", "--out DIR [--scale tiny|small|full|seed] [--images IMG ...] [--seed S] [--rate 2mbit|unlimited] [--rtt 40ms] [--cross 70KB/s] [--prime] [--passthrough DURATION|none] [--thin] [--proxy-arg FLAG ...]")
	out := fs.String("out", "", "run `DIR`: recordings, result.json, phases.json, report.html, work/ (required)")
	scale := fs.String("scale", bench.DefaultScale, "`SCALE`: tiny (CI, seconds), small (make demo, < 10 min), full (larger), seed (the seed's 3 × 12 GiB on a 10x line)")
	var images multiFlag
	fs.Var(&images, "images", "your own VM `IMG` files as the clones: --images A B C (or repeated, or comma-separated; at least 2, the last is created in the optimized phase)")
	template := fs.String("template", "", "with --images and --prime: the template `IMG` the DR site already holds")
	seed := fs.String("seed", "1", "workload seed (unsigned integer)")
	rate := fs.String("rate", "", "line `RATE` of the simulated WAN, or unlimited (default 2mbit, times the scale's line scale: 20mbit at seed)")
	rtt := fs.Duration("rtt", 40*time.Millisecond, "round-trip time of the simulated WAN")
	cross := fs.String("cross", "", "cross traffic `RATE` on the line, 0 = none (default 70KB/s times the scale's line scale; none on an unlimited line)")
	prime := fs.Bool("prime", false, "prime the DR cache with the template before the run (reported in the result)")
	noLink := fs.Bool("no-link", false, "connect the proxies directly, without the link simulator (development only)")
	pass := fs.String("passthrough", "", "`LENGTH` of the pass-through phase, or none: every clone created one after another in the optimized phase (default: the scale's)")
	thin := fs.Bool("thin", false, "create the VMs thin: zero blocks as NBD WRITE_ZEROES, as qemu-img convert -n (default: thick, but thin at scale seed)")
	limit := fs.Duration("limit", 0, "time limit of the optimized phase (default: the scale's; with --images at least the line's time for every byte)")
	noEstimate := fs.Bool("no-estimate", false, "skip the offline estimate (dedupe + zstd -3) of the clones after the run")
	noReport := fs.Bool("no-report", false, "do not write DIR/report.html")
	var proxyArgs multiFlag
	fs.Var(&proxyArgs, "proxy-arg", "extra `FLAG` for both proxies (repeatable, e.g. --proxy-arg=--cache-size=4GiB); result.json lists it in proxy_flags")
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
		NoLink: *noLink, Thin: *thin, Limit: *limit, NoEstimate: *noEstimate, ProxyArgs: proxyArgs}
	for _, s := range images {
		cfg.Images = append(cfg.Images, splitList(s)...)
	}
	if cfg.Seed, err = strconv.ParseUint(*seed, 10, 64); err != nil {
		return cfg, false, usagef("bench: --seed %q is not an unsigned integer", *seed)
	}
	if *rate != "" {
		if cfg.Rate, err = units.ParseRate(*rate); err != nil || cfg.Rate == 0 {
			return cfg, false, usagef("bench: --rate %q: want a rate such as 2mbit or 240KB/s, or unlimited", *rate)
		}
	}
	if *cross != "" {
		if cfg.Cross, err = units.ParseRate(*cross); err != nil || math.IsInf(cfg.Cross, 1) {
			return cfg, false, usagef("bench: --cross %q: want a rate such as 70KB/s, or 0", *cross)
		}
		if cfg.Cross == 0 {
			cfg.Cross = -1 // none (zero means the default in bench.Config)
		}
	}
	if cfg.Passthrough, err = passthroughFlag(*pass); err != nil {
		return cfg, false, err
	}
	if *rtt <= 0 {
		return cfg, false, usagef("bench: --rtt %v: want a positive duration", *rtt)
	}
	if *limit < 0 {
		return cfg, false, usagef("bench: --limit %v: want a positive duration", *limit)
	}
	if _, ok := bench.Scales[cfg.Scale]; !ok {
		return cfg, false, usagef("bench: --scale %q: want tiny, small, full or seed", cfg.Scale)
	}
	return cfg, !*noReport, nil
}

// passthroughFlag reads --passthrough: "" for the scale's length, "none"
// (or 0) for no pass-through phase (bench.Config's negative value), else a
// positive duration.
func passthroughFlag(s string) (time.Duration, error) {
	switch s {
	case "":
		return 0, nil
	case "none", "0":
		return -1, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, usagef("bench: --passthrough %q: want a duration such as 100s, or none", s)
	}
	return d, nil
}
