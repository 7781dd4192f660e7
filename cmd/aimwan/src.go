package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aimwan/aimwan/aimsrc"
	"github.com/aimwan/aimwan/internal/units"
	"github.com/aimwan/aimwan/journal"
)

func init() {
	register(command{Name: "src", Summary: "source node: NBD export, journal capture, pushing (init|marker|status|pause|resume|drain)", Run: runSrc})
}

// srcFile is the YAML form of the source node's configuration.
type srcFile struct {
	Node        string   `yaml:"node"`
	Buffer      string   `yaml:"buffer"`
	NBD         string   `yaml:"nbd"`
	Push        string   `yaml:"push"`
	Control     string   `yaml:"control"`
	Metrics     string   `yaml:"metrics"`
	BufferLimit string   `yaml:"buffer_limit"`
	FileSize    string   `yaml:"file_size"`
	FileAge     string   `yaml:"file_age"`
	Heartbeat   string   `yaml:"heartbeat"`
	Coalesce    string   `yaml:"coalesce"`
	Record      string   `yaml:"record"`
	Key         string   `yaml:"key"`       // identity dir (aimwan keygen)
	PeerFP      []string `yaml:"peer_fp"`   // the next hop's fingerprints
	MaxConns    int      `yaml:"max_conns"` // NBD connections at once
	Volumes     []struct {
		Name string `yaml:"name"`
		Path string `yaml:"path"`
		Size string `yaml:"size"`
	} `yaml:"volumes"`
	Groups []struct {
		Name    string   `yaml:"name"`
		Volumes []string `yaml:"volumes"`
	} `yaml:"groups"`
	Schedules []srcSchedule `yaml:"schedules"`
}

func runSrc(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "init":
			return runSrcInit(ctx, args[1:], os.Stdout)
		case "marker":
			return runSrcMarker(ctx, args[1:], os.Stdout)
		case "status":
			return runSrcStatus(ctx, args[1:], os.Stdout)
		case "pause", "resume":
			return runSrcPause(ctx, args[0], args[1:], os.Stdout)
		case "drain":
			return runSrcDrain(ctx, args[1:], os.Stdout)
		}
	}
	cfg, err := srcConfig(args)
	if err != nil {
		return err
	}
	n, err := aimsrc.NewNode(cfg)
	if err != nil {
		if errors.Is(err, aimsrc.ErrConfig) {
			return usagef("%v", err)
		}
		return err
	}
	return n.Serve(ctx)
}

// srcConfig builds the daemon's config from --config YAML and flags (flags
// win).
func srcConfig(args []string) (aimsrc.Config, error) {
	fs := newFlagSet("src", "--buffer DIR --volume NAME=PATH[,size=N] ... [--group NAME=VOL,VOL] [flags]\n"+
		"       aimwan src init|marker|status|pause|resume --control ADDR ...")
	cfgPath := fs.String("config", "", "YAML config `file` (flags override it)")
	var vols, groups multiFlag
	fs.Var(&vols, "volume", "volume `NAME=PATH[,size=N]` (repeatable; the image is created at size N if missing)")
	fs.Var(&groups, "group", "consistency group `NAME=VOL,VOL` (repeatable)")
	var schedules multiFlag
	fs.Var(&schedules, "schedule", "scheduled snapshot markers `TARGET=EVERY[,prefix=P]`: TARGET a volume or group:NAME,\n"+
		"EVERY e.g. 15m (slots aligned to the clock, labels P-YYYYMMDD-HHMM in UTC, P default auto; repeatable)")
	node := fs.String("node", "", "node name in push hellos (default: host name)")
	buffer := fs.String("buffer", "", "source buffer `DIR` (journal files, dirty bitmaps)")
	nbdAddr := fs.String("nbd", "", "NBD listen `ADDR` (default "+aimsrc.DefaultNBDAddr+")")
	pushAddr := fs.String("push", "", "push target `ADDR`: aimwan dst or a source-edge proxy (default "+aimsrc.DefaultPushAddr+")")
	control := fs.String("control", "", "control API `ADDR`, loopback (default "+aimsrc.DefaultControlAddr+")")
	metrics := fs.String("metrics", "", "Prometheus `ADDR` or off (default "+aimsrc.DefaultMetricsAddr+")")
	limit := fs.String("buffer-limit", "", "source buffer limit `SIZE`; past it volumes go pull-ahead (default: none)")
	fileSize := fs.String("file-size", "", "replication file `SIZE`: payload bytes per journal file (default 4MiB)")
	fileAge := fs.String("file-age", "", "seal a journal file this old, `DURATION` (default 2s)")
	heartbeat := fs.String("heartbeat", "", "seal a heartbeat file (the watermark that keeps Time Latency about 0) when a\n"+
		"volume is idle this long, `DURATION` (default 5s; off: none)")
	coalesce := fs.String("coalesce", "", "coalesce writes to the same blocks within `WINDOW` (a duration, e.g. 10s) before\n"+
		"pushing: a block rewritten N times in the window travels once; RPO grows by up to the window\n"+
		"(the window is the file age; markers end it). 0 = off (default)")
	record := fs.String("record", "", "record metrics as JSONL into `DIR` (<DIR>/<node>.jsonl)")
	key := fs.String("key", "", "this node's identity `DIR`, made by aimwan keygen (required: pushing is mutual TLS)")
	fps := fpFlag(fs, "peer-fp", "fingerprint `FP` of the next hop (dst or the source-edge proxy) to trust (repeatable or comma-separated; required)")
	maxConns := fs.Int("max-conns", 0, "NBD connections served at once (default 64)")
	if err := parseFlags(fs, args); err != nil {
		return aimsrc.Config{}, err
	}
	if fs.NArg() > 0 {
		return aimsrc.Config{}, usagef("src: unexpected argument %q (subcommands: init, marker, status, pause, resume)", fs.Arg(0))
	}
	var f srcFile
	if err := loadYAML(*cfgPath, &f); err != nil {
		return aimsrc.Config{}, err
	}
	set := func(name string, dst *string, v string) {
		if flagWasSet(fs, name) {
			*dst = v
		}
	}
	set("node", &f.Node, *node)
	set("buffer", &f.Buffer, *buffer)
	set("nbd", &f.NBD, *nbdAddr)
	set("push", &f.Push, *pushAddr)
	set("control", &f.Control, *control)
	set("metrics", &f.Metrics, *metrics)
	set("buffer-limit", &f.BufferLimit, *limit)
	set("file-size", &f.FileSize, *fileSize)
	set("file-age", &f.FileAge, *fileAge)
	set("heartbeat", &f.Heartbeat, *heartbeat)
	set("coalesce", &f.Coalesce, *coalesce)
	set("record", &f.Record, *record)
	set("key", &f.Key, *key)
	if len(*fps) > 0 {
		f.PeerFP = *fps
	}
	if flagWasSet(fs, "max-conns") {
		f.MaxConns = *maxConns
	}
	cfg := aimsrc.Config{Node: f.Node, Buffer: f.Buffer, NBD: f.NBD, Push: f.Push, Control: f.Control, Metrics: f.Metrics,
		Record: f.Record, NBDMaxConns: f.MaxConns}
	var err error
	if cfg.BufferLimit, err = optSize("buffer-limit", f.BufferLimit); err != nil {
		return cfg, err
	}
	if cfg.FileSize, err = optSize("file-size", f.FileSize); err != nil {
		return cfg, err
	}
	if f.FileAge != "" {
		if cfg.FileAge, err = time.ParseDuration(f.FileAge); err != nil {
			return cfg, usagef("file-age %q: %v", f.FileAge, err)
		}
	}
	switch f.Heartbeat {
	case "":
	case "off":
		cfg.Heartbeat = -1
	default:
		if cfg.Heartbeat, err = time.ParseDuration(f.Heartbeat); err != nil || cfg.Heartbeat <= 0 {
			return cfg, usagef("--heartbeat %q: want a duration such as 5s, or off", f.Heartbeat)
		}
	}
	if f.Coalesce != "" {
		if cfg.Coalesce, err = time.ParseDuration(f.Coalesce); err != nil || cfg.Coalesce < 0 {
			return cfg, usagef("--coalesce %q: want a duration such as 10s, or 0 for off", f.Coalesce)
		}
	}
	if err := srcVolumes(&cfg, f, vols, groups); err != nil {
		return cfg, err
	}
	if err := srcSchedules(&cfg, f.Schedules, schedules); err != nil {
		return cfg, err
	}
	if cfg.Identity, err = loadKey("src", f.Key); err != nil {
		return cfg, err
	}
	if cfg.Pins, err = loadPins("src", "peer-fp", "the next hop (dst, or the source-edge proxy)", f.PeerFP); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func optSize(name, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := units.ParseSize(s)
	if err != nil {
		return 0, usagef("%s: %v", name, err)
	}
	return n, nil
}

// srcVolumes fills volumes and groups: flags replace the YAML lists.
func srcVolumes(cfg *aimsrc.Config, f srcFile, vols, groups multiFlag) error {
	if len(vols) > 0 {
		for _, s := range vols {
			v, err := aimsrc.ParseVolume(s)
			if err != nil {
				return usagef("%v", err)
			}
			cfg.Volumes = append(cfg.Volumes, v)
		}
	} else {
		for _, fv := range f.Volumes {
			size, err := optSize("volume "+fv.Name+" size", fv.Size)
			if err != nil {
				return err
			}
			cfg.Volumes = append(cfg.Volumes, aimsrc.VolumeConfig{Name: fv.Name, Path: fv.Path, Size: size})
		}
	}
	if len(groups) > 0 {
		for _, s := range groups {
			g, err := aimsrc.ParseGroup(s)
			if err != nil {
				return usagef("%v", err)
			}
			cfg.Groups = append(cfg.Groups, g)
		}
	} else {
		for _, fg := range f.Groups {
			cfg.Groups = append(cfg.Groups, aimsrc.GroupConfig{Name: fg.Name, Volumes: fg.Volumes})
		}
	}
	return nil
}

// srcControl adds the flags that find the source node's control API and
// token to a client subcommand.
func srcControl(fs *flag.FlagSet) *controlTarget {
	return addControlFlags(fs, aimsrc.DefaultControlAddr, "source node")
}

// srcClient is the control API client the flags name.
func srcClient(cmd string, ct *controlTarget) (*aimsrc.Client, error) {
	addr, token, err := ct.resolve(cmd, func(path string) (string, string, error) {
		var f srcFile
		err := loadYAML(path, &f)
		return f.Control, f.Buffer, err
	})
	if err != nil {
		return nil, err
	}
	return &aimsrc.Client{Addr: addr, TokenFile: token}, nil
}

func runSrcInit(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("src init", "[--control ADDR] (--buffer DIR | --config FILE | --token FILE) --volume NAME [--delta] [--no-wait]")
	ct := srcControl(fs)
	volume := fs.String("volume", "", "volume `NAME` to initialize")
	delta := fs.Bool("delta", false, "compare block checksums with the destination and send only the blocks that differ")
	noWait := fs.Bool("no-wait", false, "start the initialize and return at once")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *volume == "" || fs.NArg() > 0 {
		return usagef("src init: want --volume NAME (and no arguments)")
	}
	c, err := srcClient("src init", ct)
	if err != nil {
		return err
	}
	var opts []aimsrc.InitOption
	if *delta {
		opts = append(opts, aimsrc.InitDelta())
	}
	if _, err := c.Init(ctx, *volume, opts...); err != nil {
		return fmt.Errorf("src init %s: %w", *volume, err)
	}
	if *noWait {
		fmt.Fprintf(out, "initialize of %s started\n", *volume)
		return nil
	}
	return waitInit(ctx, c, *volume, out)
}

// waitInit polls status and draws a progress bar until the initialize ends.
func waitInit(ctx context.Context, c *aimsrc.Client, volume string, out io.Writer) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := c.Status(ctx)
		if err != nil {
			return fmt.Errorf("src init %s: %w", volume, err)
		}
		var in aimsrc.InitStatus
		for _, v := range st.Volumes {
			if v.Name == volume {
				in = v.Init
			}
		}
		fmt.Fprintf(out, "\r%s %s %5.1f%%  %s / %s", volume, progressBar(in.Percent, 30), in.Percent,
			units.FormatSize(in.DoneBytes), units.FormatSize(in.TotalBytes))
		if in.Delta {
			fmt.Fprintf(out, "  differ %s", units.FormatSize(in.Journaled))
			if in.Waiting != "" {
				fmt.Fprint(out, "  (waiting for the destination's checksums)")
			}
		}
		if !in.Running {
			fmt.Fprintln(out)
			if in.Error != "" {
				return fmt.Errorf("src init %s: %s", volume, in.Error)
			}
			if in.Delta {
				fmt.Fprintf(out, "delta initialize of %s done: %s compared, %s differed and were journaled, %s saved, %s of checksums exchanged\n",
					volume, units.FormatSize(in.DoneBytes), units.FormatSize(in.Journaled), units.FormatSize(in.SavedBytes),
					units.FormatSize(in.ChecksumBytes))
				return nil
			}
			fmt.Fprintf(out, "initialize of %s done: %s journaled (zero blocks skipped)\n", volume, units.FormatSize(in.Journaled))
			return nil
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(out)
			return ctx.Err()
		case <-t.C:
		}
	}
}

func progressBar(pct float64, width int) string {
	n := int(pct / 100 * float64(width))
	n = max(0, min(width, n))
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

func runSrcMarker(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("src marker", "[--control ADDR] (--buffer DIR | --config FILE | --token FILE) (--volume NAME | --group NAME) (--snapshot LABEL | --custom LABEL [--arg K=V]...)")
	ct := srcControl(fs)
	volume := fs.String("volume", "", "volume `NAME`")
	group := fs.String("group", "", "consistency group `NAME` (marker placed atomically in every member)")
	snapshot := fs.String("snapshot", "", "snapshot marker `LABEL`")
	custom := fs.String("custom", "", "custom marker `LABEL`")
	var kvs multiFlag
	fs.Var(&kvs, "arg", "custom marker argument `K=V` (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	req := aimsrc.MarkerRequest{Volume: *volume, Group: *group}
	switch {
	case fs.NArg() > 0:
		return usagef("src marker: unexpected argument %q", fs.Arg(0))
	case (*volume == "") == (*group == ""):
		return usagef("src marker: give exactly one of --volume and --group")
	case (*snapshot == "") == (*custom == ""):
		return usagef("src marker: give exactly one of --snapshot and --custom")
	case *snapshot != "":
		req.Kind, req.Label = aimsrc.MarkerSnapshot, *snapshot
		if len(kvs) > 0 {
			return usagef("src marker: --arg goes with --custom only")
		}
	default:
		req.Kind, req.Label = aimsrc.MarkerCustom, *custom
	}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usagef("src marker: --arg %q: want K=V", kv)
		}
		if err := journal.ValidArgValue(v); err != nil {
			return usagef("src marker: --arg %q: %v", k, err)
		}
		req.Args = append(req.Args, aimsrc.Arg{Key: k, Value: v})
	}
	c, err := srcClient("src marker", ct)
	if err != nil {
		return err
	}
	res, err := c.Marker(ctx, req)
	if err != nil {
		return fmt.Errorf("src marker: %w", err)
	}
	if res.Group != "" {
		fmt.Fprintf(out, "%s marker %q placed in group %s (group seq %d):", req.Kind, req.Label, res.Group, res.GroupSeq)
	} else {
		fmt.Fprintf(out, "%s marker %q placed:", req.Kind, req.Label)
	}
	for _, name := range slices.Sorted(maps.Keys(res.Seqs)) {
		fmt.Fprintf(out, " %s@%d", name, res.Seqs[name])
	}
	fmt.Fprintln(out)
	return nil
}

func runSrcStatus(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("src status", "[--control ADDR] (--buffer DIR | --config FILE | --token FILE) [--json]")
	ct := srcControl(fs)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("src status: unexpected argument %q", fs.Arg(0))
	}
	c, err := srcClient("src status", ct)
	if err != nil {
		return err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return fmt.Errorf("src status: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	limit := "none"
	if st.BufferLimit > 0 {
		limit = units.FormatSize(st.BufferLimit)
	}
	fmt.Fprintf(out, "node %s  push %s  buffer %s (limit %s)\n", st.Node, st.Push, units.FormatSize(st.BufferBytes), limit)
	fmt.Fprintln(out, srcLinkLine(st, time.Now()))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VOLUME\tSTATE\tSRC DATA\tFILES\tTIME LATENCY\tRATE\tETA\tDIRTY\tINIT\tLAST PUSH ERROR")
	for _, v := range st.Volumes {
		oldest := fmt.Sprintf("%.1fs", v.TimeLatency)
		init := "-"
		switch {
		case v.Init.Running:
			init = fmt.Sprintf("%.1f%%", v.Init.Percent)
		case v.Init.Error != "":
			init = "failed"
		case v.Init.Finished != nil:
			init = "done"
		}
		lastErr := v.LastPushError
		if len(v.BrokenFiles) > 0 {
			lastErr = fmt.Sprintf("%d BROKEN FILE(S), first: %s", len(v.BrokenFiles), v.BrokenFiles[0])
		}
		if len(v.RefusedFiles) > 0 {
			lastErr = fmt.Sprintf("%d REFUSED FILE(S), first: %s", len(v.RefusedFiles), v.RefusedFiles[0])
		}
		eta := "-"
		if v.ETA >= 0 {
			eta = fmt.Sprintf("%.0fs", v.ETA)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s/s\t%s\t%s\t%s\t%s\n", v.Name, v.State, units.FormatSize(v.SrcDataBytes),
			v.FilesWaiting, oldest, units.FormatSize(int64(v.Rate)), eta, units.FormatSize(v.DirtyBytes), init, lastErr)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, v := range st.Volumes {
		fmt.Fprintf(out, "volume %s: journal stream %s", v.Name, v.Stream)
		if v.FilesSuperseded > 0 {
			fmt.Fprintf(out, " (%d file(s) of an old stream superseded by an initialize)", v.FilesSuperseded)
		}
		fmt.Fprintln(out)
		for _, r := range v.RefusedFiles {
			fmt.Fprintf(out, "  REFUSED %s\n", r)
		}
	}
	return nil
}
