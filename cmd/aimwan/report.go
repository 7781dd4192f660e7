package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aimwan/aimwan/reports"
)

func init() {
	register(command{Name: "report", Summary: "report of a recorded run: HTML with charts, Markdown or JSON", Run: runReport})
}

// runReport: aimwan report --in DIR --out FILE.html [--format html|md|json].
func runReport(_ context.Context, args []string) error {
	return reportMain(args, os.Stdout)
}

func reportMain(args []string, stdout io.Writer) error {
	fs := newFlagSet("report", "--in DIR [--out FILE] [--format html|md|json]")
	in := fs.String("in", "", "run folder: *.jsonl recordings, optional result.json and phases.json (required)")
	out := fs.String("out", "", "output file; '-' or empty writes to stdout (html needs a file unless '-')")
	format := fs.String("format", "", "html, md or json (default: from --out's extension, else html)")
	title := fs.String("title", "", "page title (default \"aimwan replication report\")")
	window := fs.Duration("window", 0, "smoothing window for data reduction and cache hit rate (default 10s)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("report: unexpected arguments %q", fs.Args())
	}
	if *in == "" {
		return usagef("report: --in DIR is required")
	}
	f, err := reportFormat(*format, *out)
	if err != nil {
		return err
	}
	if f == reports.FormatHTML && *out == "" {
		return usagef("report: --out FILE.html is required for the html format (or --out - for stdout)")
	}
	run, err := reports.LoadRun(*in)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	page, err := reports.BuildPage(run, reports.BuildOptions{Title: *title, Window: *window})
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if *out == "" || *out == "-" {
		return reports.WritePage(stdout, page, f)
	}
	return writeReportFile(*out, page, f)
}

// reportFormat: the --format flag, else the output file's extension, else html.
func reportFormat(flagValue, out string) (reports.Format, error) {
	if flagValue != "" {
		f, err := reports.ParseFormat(flagValue)
		if err != nil {
			return "", usagef("report: %v", err)
		}
		return f, nil
	}
	switch strings.ToLower(filepath.Ext(out)) {
	case ".md":
		return reports.FormatMarkdown, nil
	case ".json":
		return reports.FormatJSON, nil
	}
	return reports.FormatHTML, nil
}

// writeReportFile writes the page atomically and says so on stderr.
func writeReportFile(path string, page *reports.Page, f reports.Format) error {
	start := time.Now()
	if err := reports.WriteFile(path, page, f); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	fmt.Fprintf(os.Stderr, "report: wrote %s (%s, %d charts, %v)\n", path, f, len(page.Charts), time.Since(start).Round(time.Millisecond))
	return nil
}
