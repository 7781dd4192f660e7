package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/aimwan/aimwan/aimdst"
	"github.com/aimwan/aimwan/aimsrc"
	"github.com/aimwan/aimwan/internal/ctlapi"
)

func init() {
	register(command{Name: "failover", Summary: "planned failover of a volume: drain at src, wait for dst, promote at dst", Run: runFailover})
}

// dstControl adds the flags that reach a destination node's control
// endpoint.
func dstControl(fs *flag.FlagSet) *controlTarget {
	return addControlFlags(fs, dstDefaultControl, "destination node")
}

// dstControlAddr resolves a destination node's control address and token.
func dstControlAddr(cmd string, ct *controlTarget) (string, string, error) {
	return ct.resolve(cmd, func(path string) (string, string, error) {
		var f dstFile
		err := loadYAML(path, &f)
		return f.Control, f.Buffer, err
	})
}

// runDstPromote: aimwan dst promote (--volume V | --group G) [--at LABEL].
func runDstPromote(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("dst promote", "[--control ADDR] (--buffer DIR | --config FILE | --token FILE) (--volume NAME | --group NAME) [--at LABEL]")
	ct := dstControl(fs)
	volume := fs.String("volume", "", "volume `NAME` to promote")
	group := fs.String("group", "", "consistency group `NAME` whose members to promote")
	at := fs.String("at", "", "snapshot `LABEL` to restore (default: the newest consistent point)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*volume == "") == (*group == "") || fs.NArg() > 0 {
		return usagef("dst promote: want --volume NAME or --group NAME (and no arguments)")
	}
	addr, token, err := dstControlAddr("dst promote", ct)
	if err != nil {
		return err
	}
	ps, err := aimdst.RequestPromote(ctx, addr, token, aimdst.PromoteRequest{Volume: *volume, Group: *group, At: *at})
	if err != nil {
		return err
	}
	printPromotions(out, ps)
	return nil
}

func printPromotions(out io.Writer, ps []aimdst.Promotion) {
	for _, p := range ps {
		point := "the newest point destaged"
		if p.At != "" {
			point = "snapshot " + p.At
		}
		fmt.Fprintf(out, "promoted at %s (destaged up to file %d, record %d; newest write %s)\n", point, p.File, p.Record,
			p.NewestWrite.Format(time.RFC3339Nano))
		if len(p.KeptFiles) > 0 {
			fmt.Fprintf(out, "kept, not applied (%d): %s\n", len(p.KeptFiles), strings.Join(p.KeptFiles, " "))
		}
	}
}

// runDstDemote: aimwan dst demote --volume V.
func runDstDemote(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("dst demote", "[--control ADDR] (--buffer DIR | --config FILE | --token FILE) --volume NAME")
	ct := dstControl(fs)
	volume := fs.String("volume", "", "promoted volume `NAME` to make a replica again")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *volume == "" || fs.NArg() > 0 {
		return usagef("dst demote: want --volume NAME (and no arguments)")
	}
	addr, token, err := dstControlAddr("dst demote", ct)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := aimdst.RequestDemote(ctx, addr, token, *volume); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s is a replica again: it takes the journal stream of the next initialize (aimwan src init)\n", *volume)
	return nil
}

// runSrcDrain: aimwan src drain --volume V [--undo] [--no-wait].
func runSrcDrain(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("src drain", "[--control ADDR] (--buffer DIR | --config FILE | --token FILE) --volume NAME [--undo] [--no-wait] [--timeout D]")
	ct := srcControl(fs)
	volume := fs.String("volume", "", "volume `NAME` to drain")
	undo := fs.Bool("undo", false, "take writes again")
	noWait := fs.Bool("no-wait", false, "do not wait until the far end has everything")
	timeout := fs.Duration("timeout", 30*time.Minute, "how long to wait for the drain to complete")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *volume == "" || fs.NArg() > 0 {
		return usagef("src drain: want --volume NAME (and no arguments)")
	}
	c, err := srcClient("src drain", ct)
	if err != nil {
		return err
	}
	st, err := c.Drain(ctx, aimsrc.DrainRequest{Volume: *volume, Undo: *undo})
	if err != nil {
		return fmt.Errorf("src drain %s: %w", *volume, err)
	}
	if *undo {
		fmt.Fprintf(out, "%s takes writes again\n", *volume)
		return nil
	}
	if *noWait {
		fmt.Fprintf(out, "%s drained: writes refused; %d bytes still to push\n", *volume, st.SrcDataBytes)
		return nil
	}
	return waitDrained(ctx, c, *volume, *timeout, out)
}

// waitDrained polls the drain until the far end has everything.
func waitDrained(ctx context.Context, c *aimsrc.Client, volume string, timeout time.Duration, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := c.Drain(ctx, aimsrc.DrainRequest{Volume: volume})
		if err != nil {
			return fmt.Errorf("src drain %s: %w", volume, err)
		}
		if st.Complete {
			fmt.Fprintf(out, "%s drained: writes refused, every file acknowledged by the far end\n", volume)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("src drain %s: not complete after %s (%d bytes, %d files still waiting, %d dirty bytes): %w",
				volume, timeout, st.SrcDataBytes, st.FilesWaiting, st.DirtyBytes, ctx.Err())
		case <-t.C:
		}
	}
}

// runFailover: the planned failover of one volume, as one command.
func runFailover(ctx context.Context, args []string) error {
	fs := newFlagSet("failover", "--volume NAME... --src-control ADDR (--src-buffer DIR | --src-token FILE) --dst-control ADDR (--dst-buffer DIR | --dst-token FILE)")
	var volumes multiFlag
	fs.Var(&volumes, "volume", "volume `NAME` to fail over (several: a consistency group's members, drained together)")
	srcAddr := fs.String("src-control", aimsrc.DefaultControlAddr, "control API `ADDR` of the source node")
	srcBuf := fs.String("src-buffer", "", "the source node's buffer `DIR` (its token)")
	srcTok := fs.String("src-token", "", "the source node's token `FILE`")
	dstAddr := fs.String("dst-control", dstDefaultControl, "control `ADDR` of the destination node")
	dstBuf := fs.String("dst-buffer", "", "the destination node's buffer `DIR` (its token)")
	dstTok := fs.String("dst-token", "", "the destination node's token `FILE`")
	timeout := fs.Duration("timeout", 30*time.Minute, "how long to wait for the far end to have everything")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(volumes) == 0 || fs.NArg() > 0 {
		return usagef("failover: want --volume NAME (and no arguments)")
	}
	srcToken, dstToken := tokenOf(*srcTok, *srcBuf), tokenOf(*dstTok, *dstBuf)
	if srcToken == "" || dstToken == "" {
		return usagef("failover: give --src-buffer DIR (or --src-token FILE) and --dst-buffer DIR (or --dst-token FILE)")
	}
	return failover(ctx, volumes, &aimsrc.Client{Addr: *srcAddr, TokenFile: srcToken}, *dstAddr, dstToken, *timeout, os.Stdout)
}

func tokenOf(token, buffer string) string {
	if token != "" || buffer == "" {
		return token
	}
	return ctlapi.TokenPath(buffer)
}

// failover drains the volumes at the source (all of them before any is
// promoted: a consistency group's members), waits until the
// source has everything acknowledged and the destination has destaged it,
// and promotes them there.
func failover(ctx context.Context, volumes []string, src *aimsrc.Client, dstAddr, dstToken string, timeout time.Duration, out io.Writer) error {
	names := strings.Join(volumes, ", ")
	fmt.Fprintf(out, "1/3 draining %s at the source (writes refused from now on)\n", names)
	for _, v := range volumes {
		if _, err := src.Drain(ctx, aimsrc.DrainRequest{Volume: v}); err != nil {
			return fmt.Errorf("failover %s: drain: %w", v, err)
		}
	}
	for _, v := range volumes {
		if err := waitDrained(ctx, src, v, timeout, out); err != nil {
			return fmt.Errorf("failover %s: %w", v, err)
		}
	}
	fmt.Fprintf(out, "2/3 waiting for the destination to destage %s\n", names)
	for _, v := range volumes {
		if err := waitDstIdle(ctx, dstAddr, dstToken, v, timeout); err != nil {
			return fmt.Errorf("failover %s: %w", v, err)
		}
	}
	fmt.Fprintf(out, "3/3 promoting %s at the destination\n", names)
	for _, v := range volumes {
		ps, err := aimdst.RequestPromote(ctx, dstAddr, dstToken, aimdst.PromoteRequest{Volume: v})
		if err != nil {
			return fmt.Errorf("failover %s: promote: %w", v, err)
		}
		fmt.Fprintf(out, "%s: ", v)
		printPromotions(out, ps)
	}
	fmt.Fprintf(out, "failover of %s done: serve it at the DR site (aimwan src on the DR volume file); the source stays drained\n", names)
	return nil
}

// waitDstIdle waits until the destination holds no file of volume.
func waitDstIdle(ctx context.Context, addr, token, volume string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := aimdst.FetchStatus(ctx, addr, token)
		if err != nil {
			return err
		}
		found := false
		for _, v := range st.Volumes {
			if v.Volume != volume {
				continue
			}
			found = true
			if v.FilesWaiting == 0 && v.Receiving == 0 {
				return nil
			}
		}
		if !found {
			return fmt.Errorf("the destination has no volume %s", volume)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("destination still destaging %s after %s: %w", volume, timeout, ctx.Err())
		case <-t.C:
		}
	}
}

// runDstTestClone: aimwan dst test-clone --volume V --snapshot L [--nbd
// ADDR] (serves until interrupted), or --delete.
func runDstTestClone(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("dst test-clone", "--volume NAME --snapshot LABEL [--nbd ADDR] [--name EXPORT] [--keep] [--snapshots DIR | --buffer DIR | --config FILE] | --delete --volume NAME [--snapshot LABEL]")
	cfgPath := fs.String("config", "", "the destination node's YAML config `file` (for its snapshot folder)")
	dir := fs.String("snapshots", "", "snapshot `DIR` (default: from --config, or --buffer's default)")
	buffer := fs.String("buffer", "", "destination buffer `DIR` (locates the default snapshot folder)")
	volume := fs.String("volume", "", "volume `NAME`")
	label := fs.String("snapshot", "", "snapshot `LABEL` to clone")
	nbdAddr := fs.String("nbd", "127.0.0.1:10811", "NBD listen `ADDR` of the clone")
	name := fs.String("name", "", "NBD export `NAME` (default: VOLUME-LABEL)")
	keep := fs.Bool("keep", false, "keep the clone's overlay when serving ends")
	del := fs.Bool("delete", false, "remove kept clones of the volume (of --snapshot, or all)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *volume == "" || (*label == "" && !*del) || fs.NArg() > 0 {
		return usagef("dst test-clone: want --volume NAME --snapshot LABEL (or --delete --volume NAME), and no arguments")
	}
	snapDir, err := dstSnapshotDir("dst test-clone", *cfgPath, *dir, *buffer)
	if err != nil {
		return err
	}
	if *del {
		paths, err := aimdst.DeleteClones(snapDir, *volume, *label)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "removed %d test clone(s)\n", len(paths))
		return nil
	}
	c := aimdst.TestClone{SnapshotDir: snapDir, Volume: *volume, Label: *label, Listen: *nbdAddr, Export: *name,
		Keep: *keep, Logger: slog.Default().With("daemon", "dst-test-clone")}
	return c.Serve(ctx, func(uri string) {
		fmt.Fprintf(out, "test clone of %s/%s served read-write at %s (Ctrl-C ends it and removes the clone)\n", *volume, *label, uri)
	})
}

// printPromoted lists, per promoted volume, its promotion and what it kept.
func printPromoted(out io.Writer, st aimdst.Status) {
	for _, v := range st.Volumes {
		if p := v.Promoted; p != nil {
			fmt.Fprintf(out, "%s: promoted %s", v.Volume, p.Time.Format(time.RFC3339))
			if p.At != "" {
				fmt.Fprintf(out, " at snapshot %s", p.At)
			}
			fmt.Fprintf(out, "; %d file(s) kept, not applied, in %s\n", len(p.KeptFiles), p.Kept)
		}
	}
}

// exportRW are the flags of aimwan dst export --rw (a promoted volume).
type exportRW struct {
	rw           *bool
	volume, path *string
}

func addExportRW(fs *flag.FlagSet) exportRW {
	return exportRW{
		rw:     fs.Bool("rw", false, "export a promoted volume read-write (with --volume) instead of a snapshot"),
		volume: fs.String("volume", "", "promoted volume `NAME` to export read-write (--rw)"),
		path:   fs.String("path", "", "the volume's `FILE` (default: from --config)"),
	}
}

// runDstExportRW serves a promoted volume read-write until interrupted.
func runDstExportRW(ctx context.Context, o exportRW, cfgPath, buffer, nbdAddr, snapshot string) error {
	if *o.volume == "" || snapshot != "" {
		return usagef("dst export --rw: want --volume NAME (a promoted volume; not --snapshot)")
	}
	var f dstFile
	if err := loadYAML(cfgPath, &f); err != nil {
		return err
	}
	if buffer != "" {
		f.Buffer = buffer
	}
	path := *o.path
	for _, v := range f.Volumes {
		if v.Name == *o.volume && path == "" {
			path = v.Path
		}
	}
	if f.Buffer == "" || path == "" {
		return usagef("dst export --rw: give the node's --buffer DIR and the volume's --path FILE (or --config FILE)")
	}
	ln, err := net.Listen("tcp", nbdAddr)
	if err != nil {
		return fmt.Errorf("dst export: listen: %w", err)
	}
	return aimdst.ServePromoted(ctx, ln, f.Buffer, *o.volume, path, slog.Default().With("daemon", "dst-export"))
}
