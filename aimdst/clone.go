package aimdst

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aimwan/aimwan/internal/durable"
)

// clonesDir is the folder, inside the snapshot folder, of test clones (a
// name no volume can take: it starts with a dot).
const clonesDir = ".clones"

// TestClone is a DR test's writable copy-on-write clone of a snapshot: a
// qcow2 overlay whose backing file is the snapshot image (never written),
// served read-write over NBD by qemu-nbd. Replication and destage are not
// involved: they go on untouched.
type TestClone struct {
	SnapshotDir string // the destination node's snapshot folder
	Volume      string
	Label       string // the snapshot to clone
	// Listen is the NBD address to serve on (host:port); Export its
	// export name ("" : VOLUME-LABEL).
	Listen string
	Export string
	// Keep leaves the overlay in place when serving ends (delete it later
	// with DeleteClones); default: it is removed.
	Keep   bool
	Logger *slog.Logger
	// QemuNBD and QemuImg are the programs (default: from PATH).
	QemuNBD, QemuImg string
}

// ClonePath is where the overlay of volume's snapshot label lies.
func ClonePath(snapshotDir, volume, label string) string {
	return filepath.Join(snapshotDir, clonesDir, volume, label+".qcow2")
}

// Serve creates the overlay (refusing when one exists: a test running, or
// one kept), serves it over NBD until ctx ends or qemu-nbd exits, then
// stops qemu-nbd and removes the overlay (unless Keep).
func (c TestClone) Serve(ctx context.Context, ready func(uri string)) error {
	if _, _, err := ParseSnapshotName(c.Volume + "/" + c.Label); err != nil {
		return err
	}
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	snap, err := filepath.Abs(SnapshotPath(c.SnapshotDir, c.Volume, c.Label))
	if err != nil {
		return err
	}
	if _, err := os.Stat(snap); err != nil {
		return fmt.Errorf("test clone of %s/%s: %w", c.Volume, c.Label, err)
	}
	overlay := ClonePath(c.SnapshotDir, c.Volume, c.Label)
	if _, err := os.Stat(overlay); err == nil {
		return fmt.Errorf("test clone of %s/%s: %s exists (a clone is being served, or was kept: remove it with --delete)",
			c.Volume, c.Label, overlay)
	}
	if err := durable.MkdirAll(filepath.Dir(overlay), 0o700); err != nil {
		return fmt.Errorf("test clone: %w", err)
	}
	img := orProgram(c.QemuImg, "qemu-img")
	if out, err := exec.CommandContext(ctx, img, "create", "-q", "-f", "qcow2", "-b", snap, "-F", "raw", overlay).CombinedOutput(); err != nil {
		os.Remove(overlay)
		return fmt.Errorf("test clone: qemu-img create: %w: %s", err, out)
	}
	if err := os.Chmod(overlay, 0o600); err != nil {
		os.Remove(overlay)
		return fmt.Errorf("test clone: %w", err)
	}
	defer func() {
		if c.Keep {
			log.Info("test clone kept", "overlay", overlay)
			return
		}
		if err := os.Remove(overlay); err != nil {
			log.Warn("test clone: remove overlay", "overlay", overlay, "err", err)
		} else {
			log.Info("test clone removed", "overlay", overlay)
		}
	}()
	return c.serveNBD(ctx, overlay, log, ready)
}

// serveNBD runs qemu-nbd on the overlay until ctx ends.
func (c TestClone) serveNBD(ctx context.Context, overlay string, log *slog.Logger, ready func(string)) error {
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("test clone: --nbd %q: %w", c.Listen, err)
	}
	if _, err := strconv.Atoi(port); err != nil {
		return fmt.Errorf("test clone: --nbd %q: port: %w", c.Listen, err)
	}
	export := c.Export
	if export == "" {
		export = c.Volume + "-" + c.Label
	}
	cmd := exec.Command(orProgram(c.QemuNBD, "qemu-nbd"), "--format=qcow2", "--bind="+host, "--port="+port,
		"--export-name="+export, "--persistent", "--shared=16", "--cache=writeback", overlay)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("test clone: start qemu-nbd: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	uri := "nbd://" + c.Listen + "/" + export
	if err := waitListening(ctx, c.Listen, done); err != nil {
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("test clone: qemu-nbd: %w", err)
	}
	log.Info("test clone served read-write over NBD; the snapshot and the DR volume are not written", "uri", uri,
		"overlay", overlay, "backing", SnapshotPath(c.SnapshotDir, c.Volume, c.Label))
	if ready != nil {
		ready(uri)
	}
	select {
	case err := <-done:
		return fmt.Errorf("test clone: qemu-nbd exited: %w", err)
	case <-ctx.Done():
	}
	cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	return nil
}

// waitListening waits until addr accepts connections (qemu-nbd is up), the
// process ends, or 30 s pass.
func waitListening(ctx context.Context, addr string, done <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-done:
			return fmt.Errorf("exited before serving: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("not listening after 30s")
}

// DeleteClones removes kept test clones of volume (of one label, or all
// when label is ""), returning the paths removed.
func DeleteClones(snapshotDir, volume, label string) ([]string, error) {
	pattern := ClonePath(snapshotDir, volume, "*")
	if label != "" {
		pattern = ClonePath(snapshotDir, volume, label)
	}
	paths, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return out, fmt.Errorf("delete test clone %s: %w", p, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func orProgram(p, def string) string {
	if p == "" {
		return def
	}
	return p
}
