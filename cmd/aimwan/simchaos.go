package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aimwan/aimwan/internal/units"
	"github.com/aimwan/aimwan/sim/chaos"
)

func init() { simCommands["chaos"] = runSimChaos }

// runSimChaos is `aimwan sim chaos`: the fault harness (sim/chaos). It
// prints the report as a table (and writes report.json into the work
// folder); the exit status is non-zero when anything was lost or a round
// could not complete.
func runSimChaos(ctx context.Context, args []string) error {
	fs := newFlagSet("sim chaos", "--rounds N --seed S [--out DIR] [--duration D] [flags]")
	rounds := fs.Int("rounds", 3, "rounds to run (each: batches with faults, drain, byte-for-byte check)")
	seed := fs.String("seed", "1", "seed (unsigned integer): the same seed gives the same data and faults")
	out := fs.String("out", "", "work `DIR` (volumes, buffers, daemon logs, report.json); default: a new temp folder")
	duration := fs.Duration("duration", 0, "start no round after this `DURATION` (default: no limit)")
	bin := fs.String("bin", "", "aimwan `BINARY` that runs the daemons (default: this one)")
	faults := fs.Int("faults", 4, "faults (and batches) per round")
	size := fs.String("volume-size", "4MiB", "size of each of the two volumes")
	kinds := fs.String("kinds", "", "comma-separated fault kinds (default: all this machine supports)")
	link := fs.String("link", "auto", "link simulator between the proxies: auto, on or off")
	mode := fs.String("mode", "optimize", "proxy mode: optimize or passthrough")
	direct := fs.Bool("direct", false, "src pushes straight to dst: no proxies, no link (the baseline path)")
	coalesce := fs.Duration("coalesce", 0, "run src with --coalesce `WINDOW` (write coalescing at journal sealing); 0 = off")
	noise := fs.Bool("link-noise", false, "keep the link mildly impaired all the time (1% loss, 2% reordering, 2% duplication)")
	drain := fs.Duration("drain-timeout", 2*time.Minute, "fail a round that cannot drain within this `DURATION`")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	verbose := fs.Bool("v", false, "log every fault and round as it happens")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("sim chaos: unexpected argument %q", fs.Arg(0))
	}
	s, err := strconv.ParseUint(*seed, 10, 64)
	if err != nil {
		return usagef("sim chaos: --seed %q is not an unsigned integer", *seed)
	}
	vs, err := units.ParseSize(*size)
	if err != nil {
		return usagef("sim chaos: --volume-size: %v", err)
	}
	cfg := chaos.Config{Bin: *bin, Dir: *out, Rounds: *rounds, Seed: s, FaultsPerRound: *faults, Duration: *duration,
		VolumeSize: vs, Faults: splitList(*kinds), Link: *link, Mode: *mode, DrainTimeout: *drain, LinkNoise: *noise, Direct: *direct, Coalesce: *coalesce}
	if cfg.Bin == "" {
		if cfg.Bin, err = os.Executable(); err != nil {
			return fmt.Errorf("sim chaos: locate this binary (give --bin): %w", err)
		}
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	rep, runErr := chaos.Run(ctx, cfg)
	if errors.Is(runErr, chaos.ErrConfig) {
		return usagef("sim chaos: %v", runErr)
	}
	if rep == nil {
		return fmt.Errorf("sim chaos: %w", runErr)
	}
	js, err := rep.JSON()
	if err != nil {
		return fmt.Errorf("sim chaos: report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(rep.Dir, "report.json"), append(js, '\n'), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "sim chaos: write report.json: %v\n", err)
	}
	if *asJSON {
		fmt.Println(string(js))
	} else if err := rep.WriteTable(os.Stdout); err != nil {
		return err
	}
	if runErr != nil || !rep.OK() {
		return silentFailure
	}
	return nil
}
