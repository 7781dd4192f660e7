package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/aimwan/aimwan/aimdst/imgcmp"
	"github.com/aimwan/aimwan/internal/units"
)

func init() {
	register(command{Name: "verify", Summary: "compare two images byte for byte (exit 0 identical, 1 different)", Run: runVerify})
}

func runVerify(ctx context.Context, args []string) error {
	return verify(args, os.Stdout)
}

func verify(args []string, out io.Writer) error {
	fs := newFlagSet("verify", "[--max N] [--json] IMAGE_A IMAGE_B")
	maxRanges := fs.Int("max", 10, "list at most `N` differing ranges")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("verify: want two images, got %d arguments", fs.NArg())
	}
	if *maxRanges < 1 {
		return usagef("verify: --max must be at least 1")
	}
	a, b := fs.Arg(0), fs.Arg(1)
	res, err := imgcmp.Files(a, b, *maxRanges)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			A, B string
			imgcmp.Result
		}{a, b, res}); err != nil {
			return err
		}
	} else {
		printVerify(out, a, b, res)
	}
	if !res.Equal {
		return silentFailure
	}
	return nil
}

func printVerify(out io.Writer, a, b string, res imgcmp.Result) {
	if res.Equal {
		fmt.Fprintf(out, "identical: %s and %s (%s, %d bytes)\n", a, b, units.FormatSize(res.SizeA), res.SizeA)
		return
	}
	fmt.Fprintf(out, "DIFFERENT: %s and %s\n", a, b)
	if res.SizeA != res.SizeB {
		fmt.Fprintf(out, "  sizes differ: %d and %d bytes\n", res.SizeA, res.SizeB)
	}
	fmt.Fprintf(out, "  %-20s %-20s %s\n", "offset", "length", "")
	for _, r := range res.Ranges {
		fmt.Fprintf(out, "  %-20d %-20d [%#x, %#x)\n", r.Off, r.Len, r.Off, r.Off+r.Len)
	}
	if res.More {
		fmt.Fprintf(out, "  ... more differing ranges (raise --max)\n")
	}
}
