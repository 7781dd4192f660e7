package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aimwan/aimwan/aimdst"
	"github.com/aimwan/aimwan/internal/units"
)

// dstRetention is one entry of retention: in dst's YAML file.
type dstRetention struct {
	Volumes  []string `yaml:"volumes"`  // these volumes' plain snapshots
	Group    string   `yaml:"group"`    // or this group's points; neither: the default policy
	Match    string   `yaml:"match"`    // label pattern governed (default auto-*)
	Keep     string   `yaml:"keep"`     // "last 4, 24 hourly, 7 daily, 4 weekly, min-age 1h"
	MinAge   string   `yaml:"min_age"`  // also possible as "min-age D" in keep
	Timezone string   `yaml:"timezone"` // calendar of the buckets: UTC (default), Local, or an IANA zone
}

// retentionFlags parses --retention values, [TARGET=]KEEP, where TARGET is
// VOL[,VOL] or group:NAME (none or "*": the default policy), with the
// --retention-match and --retention-timezone given for all of them.
func retentionFlags(values []string, match, tz string) []dstRetention {
	var out []dstRetention
	for _, s := range values {
		r := dstRetention{Keep: s, Match: match, Timezone: tz}
		if target, keep, ok := strings.Cut(s, "="); ok {
			r.Keep = keep
			switch g, isGroup := strings.CutPrefix(target, "group:"); {
			case isGroup:
				r.Group = g
			case strings.TrimSpace(target) != "*":
				r.Volumes = splitList(target)
			}
		}
		out = append(out, r)
	}
	return out
}

// retentionPolicies turns the YAML/flag form into aimdst policies.
func retentionPolicies(rs []dstRetention) ([]aimdst.RetentionPolicy, error) {
	var out []aimdst.RetentionPolicy
	for _, r := range rs {
		keep, minAge, err := aimdst.ParseKeep(r.Keep)
		if err != nil {
			return nil, usagef("dst: retention: %v", err)
		}
		if r.MinAge != "" {
			if minAge, err = time.ParseDuration(r.MinAge); err != nil || minAge <= 0 {
				return nil, usagef("dst: retention min_age %q: want a positive duration such as 1h", r.MinAge)
			}
		}
		p := aimdst.RetentionPolicy{Volumes: r.Volumes, Group: r.Group, Match: r.Match, Keep: keep, MinAge: minAge}
		switch r.Timezone {
		case "", "UTC":
		case "Local", "local":
			p.Location = time.Local
		default:
			if p.Location, err = time.LoadLocation(r.Timezone); err != nil {
				return nil, usagef("dst: retention timezone %q: %v (want UTC, Local or an IANA name such as Europe/Berlin)", r.Timezone, err)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// runDstSnapshots is `aimwan dst snapshots list|delete`.
func runDstSnapshots(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return usagef("dst snapshots: want list or delete")
	}
	switch args[0] {
	case "list":
		return runSnapshotsList(ctx, args[1:], out)
	case "delete":
		return runSnapshotsDelete(ctx, args[1:], out)
	}
	return usagef("dst snapshots: unknown subcommand %q (want list or delete)", args[0])
}

func runSnapshotsList(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("dst snapshots list", "[--control ADDR] (--buffer DIR | --config FILE | --token FILE) [--volume NAME] [--json]")
	ct := addControlFlags(fs, dstDefaultControl, "destination node")
	volume := fs.String("volume", "", "list only the snapshots of volume `NAME`")
	asJSON := fs.Bool("json", false, "print the list as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("dst snapshots list: unexpected argument %q", fs.Arg(0))
	}
	addr, token, err := resolveDst(ct, "dst snapshots list")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	l, err := aimdst.FetchSnapshots(ctx, addr, token, *volume)
	if err != nil {
		return fmt.Errorf("dst snapshots list: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(l)
	}
	printSnapshots(out, l)
	return nil
}

// printSnapshots prints the list as a table, times in UTC.
func printSnapshots(out io.Writer, l aimdst.SnapshotList) {
	if len(l.Policies) == 0 {
		fmt.Fprintln(out, "retention: none (snapshots are kept until deleted)")
	}
	for _, p := range l.Policies {
		fmt.Fprintln(out, "retention "+p)
	}
	for v, e := range l.Errors {
		fmt.Fprintf(out, "volume %s: %s\n", v, e)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VOLUME\tLABEL\tPOINT (UTC)\tTAKEN (UTC)\tSIZE\tALLOCATED\tMETHOD\tGROUP\tKEPT BY")
	const layout = "2006-01-02 15:04:05"
	for _, s := range l.Snapshots {
		point := "-"
		if !s.PointTime.IsZero() {
			point = s.PointTime.UTC().Format(layout)
		}
		group := "-"
		if s.Group != "" {
			group = fmt.Sprintf("%s #%d (%s)", s.Group, s.GroupSeq, strings.Join(s.Members, ","))
		}
		kept := strings.Join(s.KeptBy, ",")
		if s.InUse && !strings.Contains(kept, aimdst.KeptInUse) {
			kept += " (in use)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Volume, s.Label, point, s.Taken.UTC().Format(layout),
			units.FormatSize(s.SizeBytes), units.FormatSize(s.AllocatedBytes), orDefault(s.Method, "-"), group, kept)
	}
	tw.Flush()
}

func runSnapshotsDelete(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("dst snapshots delete", "[--control ADDR] (--buffer DIR | --config FILE | --token FILE) (--volume NAME | --group NAME) --label LABEL")
	ct := addControlFlags(fs, dstDefaultControl, "destination node")
	volume := fs.String("volume", "", "the snapshot's volume `NAME`")
	group := fs.String("group", "", "a group `NAME`: delete the group point's snapshot on every member")
	label := fs.String("label", "", "the snapshot's `LABEL`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usagef("dst snapshots delete: unexpected argument %q", fs.Arg(0))
	case (*volume == "") == (*group == ""):
		return usagef("dst snapshots delete: give exactly one of --volume and --group")
	case *label == "":
		return usagef("dst snapshots delete: --label LABEL is required")
	}
	addr, token, err := resolveDst(ct, "dst snapshots delete")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := aimdst.RequestDelete(ctx, addr, token, aimdst.DeleteRequest{Volume: *volume, Group: *group, Label: *label})
	if err != nil {
		return fmt.Errorf("dst snapshots delete: %w", err)
	}
	for _, d := range res.Deleted {
		fmt.Fprintf(out, "deleted %s\n", d)
	}
	return nil
}
