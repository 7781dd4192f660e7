package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/aimwan/aimwan/sim/estimate"
)

func init() { simCommands["estimate"] = runSimEstimate }

// runSimEstimate is `aimwan sim estimate [--json] IMG...`: the offline
// dedupe estimate of images (sim/estimate), the yardstick of the proxies'
// wire bytes.
func runSimEstimate(ctx context.Context, args []string) error {
	return simEstimate(ctx, args, os.Stdout, os.Stderr)
}

func simEstimate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sim estimate", "[--json] IMG...")
	asJSON := fs.Bool("json", false, "print the result as JSON instead of a table")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("sim estimate: give one or more images (in the order they are replicated)")
	}
	var in []estimate.Input
	for _, p := range fs.Args() {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("sim estimate: %w", err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("sim estimate: %w", err)
		}
		if st.IsDir() {
			return usagef("sim estimate: %s is a folder, not an image", p)
		}
		in = append(in, estimate.Input{Name: p, R: f, Size: st.Size()})
	}
	var cfg estimate.Config
	if !*quiet {
		cfg.Progress = func(done, total int64) {
			if total > 0 {
				fmt.Fprintf(stderr, "sim estimate: %.1f of %.1f GB read (%.0f%%)\n", float64(done)/1e9, float64(total)/1e9, 100*float64(done)/float64(total))
			}
		}
	}
	r, err := estimate.Run(ctx, in, cfg)
	if err != nil {
		return fmt.Errorf("sim estimate: %w", err)
	}
	if *asJSON {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	r.PrintTable(stdout)
	return nil
}
