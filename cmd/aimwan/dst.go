package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/aimwan/aimwan/aimdst"
	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/internal/netaddr"
	"github.com/aimwan/aimwan/internal/units"
)

func init() {
	register(command{Name: "dst", Summary: "destination node: receive, ordered destage, snapshots, hooks (status|export|snapshots|promote|demote|test-clone)", Run: runDst})
}

// Default addresses of the destination node. The push address is the source
// node's default push target.
const (
	dstDefaultListen  = "127.0.0.1:7800"
	dstDefaultControl = "127.0.0.1:7702"
	dstDefaultMetrics = "127.0.0.1:9702"
)

// dstFile is the YAML form of the destination node's configuration.
type dstFile struct {
	Node        string            `yaml:"node"`
	Listen      string            `yaml:"listen"`
	Buffer      string            `yaml:"buffer"`
	Snapshots   string            `yaml:"snapshots"`
	Control     string            `yaml:"control"`
	Metrics     string            `yaml:"metrics"`
	Record      string            `yaml:"record"`
	BufferLimit string            `yaml:"buffer_limit"`
	HookTimeout string            `yaml:"hook_timeout"`
	Hooks       map[string]string `yaml:"hooks"`
	Key         string            `yaml:"key"`       // identity dir (aimwan keygen)
	PeerFP      []string          `yaml:"peer_fp"`   // the senders' fingerprints (src or the destination-edge proxy)
	MaxConns    int               `yaml:"max_conns"` // push connections at once
	Volumes     []dstVolume       `yaml:"volumes"`
	Groups      []dstGroup        `yaml:"groups"`
	Retention   []dstRetention    `yaml:"retention"`

	PartExpiry       string `yaml:"part_expiry"`
	NoRebindSnapshot bool   `yaml:"no_rebind_snapshot"` // no copy of a volume before an initialize's stream rebinds it
}

// dstVolume is one entry of volumes: in the YAML file.
type dstVolume struct {
	Name   string `yaml:"name"`
	Path   string `yaml:"path"`
	Create bool   `yaml:"create"`
}

// dstGroup is one entry of groups: in the YAML file.
type dstGroup struct {
	Name    string   `yaml:"name"`
	Volumes []string `yaml:"volumes"`
}

func runDst(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "status":
			return runDstStatus(ctx, args[1:], os.Stdout)
		case "export":
			return runDstExport(ctx, args[1:])
		case "snapshots":
			return runDstSnapshots(ctx, args[1:], os.Stdout)
		case "promote":
			return runDstPromote(ctx, args[1:], os.Stdout)
		case "demote":
			return runDstDemote(ctx, args[1:], os.Stdout)
		case "test-clone":
			return runDstTestClone(ctx, args[1:], os.Stdout)
		}
	}
	f, err := dstFlags(args)
	if err != nil {
		return err
	}
	return serveDst(ctx, f)
}

// dstFlags reads --config and the flags (flags win; list flags replace the
// YAML lists).
func dstFlags(args []string) (dstFile, error) {
	fs := newFlagSet("dst", "--buffer DIR --volume NAME=PATH[,create] ... [--snapshots DIR] [--hook LABEL=CMD] [--group NAME=VOL,VOL] [flags]\n"+
		"       aimwan dst status|export|snapshots ...")
	cfgPath := fs.String("config", "", "YAML config `file` (flags override it)")
	var vols, hooks, groups multiFlag
	fs.Var(&vols, "volume", "destination volume `NAME=PATH[,create]` (repeatable; create: make a missing file)")
	fs.Var(&hooks, "hook", "custom-marker hook `LABEL=CMD`, run with /bin/sh -c (repeatable)")
	fs.Var(&groups, "group", "consistency group `NAME=VOL,VOL` (repeatable)")
	var retention multiFlag
	fs.Var(&retention, "retention", "snapshot retention `[TARGET=]KEEP`: TARGET a volume (VOL,VOL), group:NAME, or none for the default;\n"+
		"KEEP e.g. \"last 4, 24 hourly, 7 daily, 4 weekly, min-age 1h\" (repeatable; see docs/destination-node.md)")
	retMatch := fs.String("retention-match", "", "label `PATTERN` the --retention policies govern (default auto-*)")
	retTZ := fs.String("retention-timezone", "", "calendar `ZONE` of the --retention buckets: UTC (default), Local, or e.g. Europe/Berlin")
	fps := fpFlag(fs, "peer-fp", "fingerprint `FP` of a sender to trust: src, or the destination-edge proxy (repeatable or comma-separated; required)")
	maxConns := fs.Int("max-conns", 0, "push connections served at once (default 256, at most 64 from one host)")
	str := map[string]*string{
		"key":          fs.String("key", "", "this node's identity `DIR`, made by aimwan keygen (required: the push listener is mutual TLS)"),
		"node":         fs.String("node", "", "node name in push hellos (default dst)"),
		"listen":       fs.String("listen", "", "push listen `ADDR` (default "+dstDefaultListen+")"),
		"buffer":       fs.String("buffer", "", "destination buffer `DIR`"),
		"snapshots":    fs.String("snapshots", "", "snapshot `DIR`: <DIR>/<volume>/<label>.img (default <buffer>/snapshots-of-markers)"),
		"control":      fs.String("control", "", "status endpoint `ADDR` or off (default "+dstDefaultControl+")"),
		"metrics":      fs.String("metrics", "", "Prometheus `ADDR` or off (default "+dstDefaultMetrics+")"),
		"record":       fs.String("record", "", "record metrics as JSONL into `DIR` (<DIR>/<node>.jsonl)"),
		"buffer-limit": fs.String("buffer-limit", "", "destination buffer limit `SIZE` (default 4GiB)"),
		"hook-timeout": fs.String("hook-timeout", "", "kill a hook after `DURATION` (default 1m)"),
		"part-expiry":  fs.String("part-expiry", "", "remove a partial file nobody resumed for `DURATION` (default 10m)"),
	}
	noRebindSnap := fs.Bool("no-rebind-snapshot", false, "do not copy a volume aside before an initialize's new journal stream replaces its stream")
	if err := parseFlags(fs, args); err != nil {
		return dstFile{}, err
	}
	if fs.NArg() > 0 {
		return dstFile{}, usagef("dst: unexpected argument %q (subcommands: status, export, snapshots)", fs.Arg(0))
	}
	var f dstFile
	if err := loadYAML(*cfgPath, &f); err != nil {
		return f, err
	}
	dsts := map[string]*string{"key": &f.Key, "node": &f.Node, "listen": &f.Listen, "buffer": &f.Buffer, "snapshots": &f.Snapshots,
		"control": &f.Control, "metrics": &f.Metrics, "record": &f.Record, "buffer-limit": &f.BufferLimit, "hook-timeout": &f.HookTimeout,
		"part-expiry": &f.PartExpiry}
	for name, v := range str {
		if flagWasSet(fs, name) {
			*dsts[name] = *v
		}
	}
	if flagWasSet(fs, "no-rebind-snapshot") {
		f.NoRebindSnapshot = *noRebindSnap
	}
	if err := dstLists(&f, vols, hooks, groups); err != nil {
		return f, err
	}
	switch {
	case len(retention) > 0:
		f.Retention = retentionFlags(retention, *retMatch, *retTZ)
	case *retMatch != "" || *retTZ != "":
		return f, usagef("dst: --retention-match and --retention-timezone go with --retention (in YAML: match and timezone of each policy)")
	}
	if len(*fps) > 0 {
		f.PeerFP = *fps
	}
	if flagWasSet(fs, "max-conns") {
		f.MaxConns = *maxConns
	}
	return f, nil
}

// dstLists applies --volume, --hook and --group.
func dstLists(f *dstFile, vols, hooks, groups multiFlag) error {
	if len(vols) > 0 {
		f.Volumes = f.Volumes[:0]
		for _, s := range vols {
			name, rest, ok := strings.Cut(s, "=")
			if !ok || name == "" || rest == "" {
				return usagef("dst: --volume %q: want NAME=PATH[,create]", s)
			}
			path, opt, _ := strings.Cut(rest, ",")
			if opt != "" && opt != "create" {
				return usagef("dst: --volume %q: unknown option %q (only create)", s, opt)
			}
			f.Volumes = append(f.Volumes, dstVolume{Name: name, Path: path, Create: opt == "create"})
		}
	}
	if len(hooks) > 0 {
		f.Hooks = map[string]string{}
		for _, s := range hooks {
			label, cmd, ok := strings.Cut(s, "=")
			if !ok || label == "" || strings.TrimSpace(cmd) == "" {
				return usagef("dst: --hook %q: want LABEL=CMD", s)
			}
			f.Hooks[label] = cmd
		}
	}
	if len(groups) > 0 {
		f.Groups = f.Groups[:0]
		for _, s := range groups {
			name, members, ok := strings.Cut(s, "=")
			if !ok || name == "" || len(splitList(members)) == 0 {
				return usagef("dst: --group %q: want NAME=VOL,VOL", s)
			}
			f.Groups = append(f.Groups, dstGroup{Name: name, Volumes: splitList(members)})
		}
	}
	return nil
}

// dstConfig turns the file form into aimdst.Config.
func dstConfig(f dstFile, log *slog.Logger, reg prometheus.Registerer) (aimdst.Config, error) {
	cfg := aimdst.Config{Node: f.Node, BufferDir: f.Buffer, SnapshotDir: f.Snapshots, Hooks: f.Hooks,
		MaxConns: f.MaxConns, Logger: log, Registerer: reg, NoRebindSnapshot: f.NoRebindSnapshot}
	if f.Buffer == "" {
		return cfg, usagef("dst: --buffer DIR is required")
	}
	if len(f.Volumes) == 0 {
		return cfg, usagef("dst: at least one --volume NAME=PATH is required")
	}
	for _, v := range f.Volumes {
		cfg.Volumes = append(cfg.Volumes, aimdst.VolumeConfig{Name: v.Name, Path: v.Path, Create: v.Create})
	}
	if len(f.Groups) > 0 {
		cfg.Groups = map[string][]string{}
		for _, g := range f.Groups {
			cfg.Groups[g.Name] = g.Volumes
		}
	}
	var err error
	if cfg.Retention, err = retentionPolicies(f.Retention); err != nil {
		return cfg, err
	}
	if cfg.BufferLimit, err = optSize("buffer-limit", f.BufferLimit); err != nil {
		return cfg, err
	}
	if f.HookTimeout != "" {
		if cfg.HookTimeout, err = time.ParseDuration(f.HookTimeout); err != nil || cfg.HookTimeout <= 0 {
			return cfg, usagef("dst: hook-timeout %q: want a positive duration", f.HookTimeout)
		}
	}
	if f.PartExpiry != "" {
		if cfg.PartExpiry, err = time.ParseDuration(f.PartExpiry); err != nil || cfg.PartExpiry <= 0 {
			return cfg, usagef("dst: part-expiry %q: want a positive duration", f.PartExpiry)
		}
	}
	if f.MaxConns < 0 {
		return cfg, usagef("dst: --max-conns %d: want a positive number", f.MaxConns)
	}
	if cfg.Identity, err = loadKey("dst", f.Key); err != nil {
		return cfg, err
	}
	if cfg.Pins, err = loadPins("dst", "peer-fp", "each sender (src, or the destination-edge proxy)", f.PeerFP); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// serveDst runs the daemon: push listener, destage, control endpoint,
// metrics and the optional recorder, until ctx ends.
func serveDst(ctx context.Context, f dstFile) error {
	log := slog.Default().With("daemon", "dst")
	reg := prometheus.NewRegistry()
	cfg, err := dstConfig(f, log, reg)
	if err != nil {
		return err
	}
	n, err := aimdst.NewNode(cfg)
	if errors.Is(err, aimdst.ErrConfig) {
		return usagef("%v", err)
	}
	if err != nil {
		return err
	}
	pushLn, err := net.Listen("tcp", orDefault(f.Listen, dstDefaultListen))
	if err != nil {
		return fmt.Errorf("dst: listen: %w", err)
	}
	var controlLn net.Listener
	if c := orDefault(f.Control, dstDefaultControl); c != "off" {
		if !netaddr.IsLoopback(c) {
			log.Warn("control endpoint on a non-loopback address", "addr", c)
		}
		if controlLn, err = net.Listen("tcp", c); err != nil {
			pushLn.Close()
			return fmt.Errorf("dst: listen --control: %w", err)
		}
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.Serve(ctx, pushLn, controlLn) })
	if m := orDefault(f.Metrics, dstDefaultMetrics); m != "off" {
		g.Go(func() error { return metrics.ServeMetrics(ctx, m, reg, log) })
	}
	if f.Record != "" {
		rec, err := metrics.NewRecorder(metrics.RecorderConfig{Dir: f.Record, Daemon: orDefault(f.Node, "dst"), Gatherer: reg, Logger: log})
		if err != nil {
			return usagef("dst: --record: %v", err)
		}
		g.Go(func() error { return rec.Serve(ctx) })
	}
	err = g.Wait()
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func runDstStatus(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("dst status", "[--control ADDR] (--buffer DIR | --config FILE | --token FILE) [--json]")
	ct := addControlFlags(fs, dstDefaultControl, "destination node")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("dst status: unexpected argument %q", fs.Arg(0))
	}
	addr, token, err := resolveDst(ct, "dst status")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := aimdst.FetchStatus(ctx, addr, token)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printDstStatus(out, st)
	return nil
}

// resolveDst returns the destination node's control address and token file
// (from --control and --buffer, --token or its YAML --config).
func resolveDst(ct *controlTarget, cmd string) (string, string, error) {
	return ct.resolve(cmd, func(path string) (string, string, error) {
		var f dstFile
		err := loadYAML(path, &f)
		return f.Control, f.Buffer, err
	})
}

func printDstStatus(out io.Writer, st aimdst.Status) {
	full := ""
	if st.BufferFull {
		full = "  FULL: refusing new files (the source keeps them)"
	}
	fmt.Fprintf(out, "node %s  buffer %s of %s%s\n", st.Node, units.FormatSize(st.BufferBytes), units.FormatSize(st.BufferLimit), full)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VOLUME\tSTATE\tTIME LATENCY\tDESTAGED SEQ\tFILE\tWAITING\tBUFFER\tLAST MARKER")
	for _, v := range st.Volumes {
		lat := "-"
		if !v.CompleteUntil.IsZero() {
			lat = (time.Duration(v.TimeLatency * float64(time.Second))).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", v.Volume, v.State, lat, v.DestagedSeq, v.DestagedFile,
			v.FilesWaiting, units.FormatSize(v.BufferBytes), orDefault(v.LastMarker, "-"))
	}
	tw.Flush()
	for _, g := range st.Groups {
		fmt.Fprintf(out, "group %s (%s): time latency %.1fs, consistent point %s, last snapshot %s\n", g.Group,
			strings.Join(g.Members, ","), g.TimeLatency, orDefault(timeLabel(g.ConsistentPoint, g.ConsistentPointTime), "-"),
			orDefault(timeLabel(g.LastSnapshot, g.LastSnapshotTime), "-"))
	}
	printDstIdentity(out, st)
	printPromoted(out, st)
}

// printDstIdentity prints, per volume, the journal stream it replicates and
// what needs an operator: refused and quarantined files, an earlier binding;
// then the group markers not taken on every member.
func printDstIdentity(out io.Writer, st aimdst.Status) {
	for _, v := range st.Volumes {
		fmt.Fprintf(out, "volume %s: stream %s\n", v.Volume, orDefault(v.Stream, "(not bound yet)"))
		if p := v.Previous; p != nil {
			fmt.Fprintf(out, "  rebound at file %d on %s (an initialize); before: stream %s up to file %d, record %d; copy: %s\n",
				p.NewFile, p.Until.Format(time.RFC3339), orDefault(p.Stream, "(none: format version 1)"), p.File, p.Record, orDefault(p.Snapshot, "none"))
		}
		for _, r := range v.Refused {
			fmt.Fprintf(out, "  REFUSED file %d (%s, %d times, last %s): %s\n", r.File, r.Reason, r.Count, r.Last.Format(time.RFC3339), r.Error)
		}
		for _, q := range v.Quarantined {
			fmt.Fprintf(out, "  QUARANTINED file %d (%s) at %s: %s\n", q.File, q.Reason, q.Path, orDefault(q.Error, "-"))
		}
	}
	for _, g := range st.GroupErrors {
		fmt.Fprintf(out, "GROUP %s #%d (%s) on %s: %s\n", g.Group, g.GroupSeq, g.Label, g.Volume, g.Error)
	}
}

func runDstExport(ctx context.Context, args []string) error {
	fs := newFlagSet("dst export", "--snapshot VOLUME/LABEL --nbd ADDR [--snapshots DIR | --config FILE] [--name EXPORT] | --rw --volume NAME --nbd ADDR (--config FILE | --buffer DIR --path FILE)")
	cfgPath := fs.String("config", "", "the destination node's YAML config `file` (for its snapshot folder)")
	snapshot := fs.String("snapshot", "", "snapshot to export, `VOLUME/LABEL`")
	nbdAddr := fs.String("nbd", "127.0.0.1:10810", "NBD listen `ADDR`")
	dir := fs.String("snapshots", "", "snapshot `DIR` (default: from --config, or --buffer's default)")
	buffer := fs.String("buffer", "", "destination buffer `DIR` (locates the default snapshot folder)")
	name := fs.String("name", "", "NBD export `NAME` (default: the label)")
	rw := addExportRW(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *rw.rw {
		return runDstExportRW(ctx, rw, *cfgPath, *buffer, *nbdAddr, *snapshot)
	}
	if *snapshot == "" || fs.NArg() > 0 {
		return usagef("dst export: want --snapshot VOLUME/LABEL (and no arguments)")
	}
	if _, _, err := aimdst.ParseSnapshotName(*snapshot); err != nil {
		return usagef("dst export: %v", err)
	}
	snapDir, err := dstSnapshotDir("dst export", *cfgPath, *dir, *buffer)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *nbdAddr)
	if err != nil {
		return fmt.Errorf("dst export: listen: %w", err)
	}
	return aimdst.ServeSnapshot(ctx, ln, snapDir, *snapshot, *name, slog.Default().With("daemon", "dst-export"))
}

// timeLabel is "LABEL at TIME", or "" when label is unset.
func timeLabel(label string, t time.Time) string {
	if label == "" {
		return ""
	}
	return label + " at " + t.Format(time.RFC3339)
}

// dstSnapshotDir is the snapshot folder a dst command works on: --snapshots
// DIR, else the config's, else the default under the node's buffer
// (--buffer or the config's).
func dstSnapshotDir(cmd, cfgPath, dir, buffer string) (string, error) {
	var f dstFile
	if err := loadYAML(cfgPath, &f); err != nil {
		return "", err
	}
	if dir != "" {
		f.Snapshots = dir
	}
	if buffer != "" {
		f.Buffer = buffer
	}
	if f.Snapshots == "" {
		if f.Buffer == "" {
			return "", usagef("%s: give --snapshots DIR (or --config / --buffer of the node)", cmd)
		}
		f.Snapshots = aimdst.Config{BufferDir: f.Buffer}.SnapshotDirOrDefault()
	}
	return f.Snapshots, nil
}
