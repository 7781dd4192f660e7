package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/aimwan/aimwan/internal/units"
	"github.com/aimwan/aimwan/sim/bench"
	"github.com/aimwan/aimwan/sim/link"
)

// runBenchWAN: aimwan bench wan --out DIR [--size 256MiB] [--rate 100mbit] [--rtt 100ms] [--loss 0.1%] ...
func runBenchWAN(ctx context.Context, args []string) error {
	cfg, err := benchWANConfig(args)
	if err != nil {
		return err
	}
	_, err = bench.RunWAN(ctx, cfg)
	if errors.Is(err, bench.ErrConfig) {
		return usagef("%v", err)
	}
	return err
}

func benchWANConfig(args []string) (bench.WANConfig, error) {
	fs := newFlagSet("bench wan", "--out DIR [--size 256MiB] [--volumes 1] [--rate 100mbit] [--rtt 100ms] [--loss 0.1%] [--cross 0] [--proxy-bin PATH] [--proxy-arg FLAG ...] [--no-hints] [--no-link] [--limit 10m]")
	out := fs.String("out", "", "run `DIR`: wan.json, logs/ (work/ is removed at the end) (required)")
	size := fs.String("size", "256MiB", "`SIZE` of incompressible data written through src's NBD export")
	vols := fs.Int("volumes", 1, "volumes written side by side (the size is split among them)")
	rate := fs.String("rate", "100mbit", "line `RATE` of the simulated WAN")
	rtt := fs.Duration("rtt", 100*time.Millisecond, "round-trip time of the simulated WAN")
	loss := fs.String("loss", "0", "random loss of the simulated WAN (0.1% or 0.001)")
	cross := fs.String("cross", "0", "cross traffic `RATE` on the line (0 = none)")
	proxyBin := fs.String("proxy-bin", "", "run the two proxies from this aimwan `BINARY` (another build: a before/after)")
	var proxyArgs multiFlag
	fs.Var(&proxyArgs, "proxy-arg", "extra `FLAG` for both proxies (repeatable, e.g. --proxy-arg=--conns=16)")
	noHints := fs.Bool("no-hints", false, "give the proxies neither --link-rate nor --rtt")
	noLink := fs.Bool("no-link", false, "connect the proxies directly (what the chain carries on this machine; --rate is then the yardstick)")
	limit := fs.Duration("limit", 10*time.Minute, "end a run that has not destaged everything by then")
	seed := fs.String("seed", "1", "data seed (unsigned integer)")
	if err := parseFlags(fs, args); err != nil {
		return bench.WANConfig{}, err
	}
	if fs.NArg() > 0 {
		return bench.WANConfig{}, usagef("bench wan: unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return bench.WANConfig{}, usagef("bench wan: --out DIR is required")
	}
	bin, err := os.Executable()
	if err != nil {
		return bench.WANConfig{}, fmt.Errorf("bench wan: find the aimwan binary: %w", err)
	}
	cfg := bench.WANConfig{Out: *out, Bin: bin, ProxyBin: *proxyBin, Volumes: *vols, RTT: *rtt, NoHints: *noHints, NoLink: *noLink,
		Limit: *limit, ProxyArgs: proxyArgs}
	if cfg.Size, err = units.ParseSize(*size); err != nil {
		return cfg, usagef("bench wan: --size: %v", err)
	}
	if cfg.Rate, err = units.ParseRate(*rate); err != nil {
		return cfg, usagef("bench wan: --rate: %v", err)
	}
	if cfg.Cross, err = units.ParseRate(*cross); err != nil {
		return cfg, usagef("bench wan: --cross: %v", err)
	}
	if cfg.Loss, err = link.ParseProbability(*loss); err != nil {
		return cfg, usagef("bench wan: --loss: %v", err)
	}
	if cfg.Seed, err = strconv.ParseUint(*seed, 10, 64); err != nil || cfg.Seed == 0 {
		return cfg, usagef("bench wan: --seed %q: want a positive integer", *seed)
	}
	if *rtt <= 0 {
		return cfg, usagef("bench wan: --rtt %v: want a positive duration", *rtt)
	}
	return cfg, nil
}
