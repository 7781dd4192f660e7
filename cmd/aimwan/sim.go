package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/aimwan/aimwan/internal/units"
	"github.com/aimwan/aimwan/sim/workload"
)

func init() {
	register(command{Name: "sim", Summary: "simulators: link relay, workload images, sizing studies", Run: runSim})
}

// simCommands are the subcommands of "aimwan sim".
var simCommands = map[string]func(ctx context.Context, args []string) error{
	"workload": runSimWorkload,
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
