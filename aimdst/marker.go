package aimdst

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/aimwan/aimwan/journal"
)

// SnapshotPath is where the snapshot with label of volume is kept.
func SnapshotPath(snapshotDir, volume, label string) string {
	return filepath.Join(snapshotDir, volume, label+".img")
}

// marker takes the action of a marker that destage of v has reached (all
// writes before it durable, none after it applied). Group markers wait at the
// group barrier first.
func (n *Node) marker(ctx context.Context, v *volume, r journal.Record) error {
	if r.Group != "" {
		return n.groups.arrive(ctx, v, r)
	}
	return n.markerAction(ctx, v, r)
}

// markerAction takes a snapshot or runs a hook. A snapshot that fails is an
// error (destage retries: the point in time must not be lost); a hook that
// fails is logged and counted, and destage goes on.
func (n *Node) markerAction(ctx context.Context, v *volume, r journal.Record) error {
	switch r.Kind {
	case journal.KindSnapshot:
		dst := SnapshotPath(n.cfg.SnapshotDir, v.name, r.Label)
		v.setState("taking snapshot " + r.Label)
		method, err := n.snaps.store.take(v.name, v.cfg.Path, r)
		if err != nil {
			return fmt.Errorf("volume %s: snapshot marker %s (seq %d): %w", v.name, r.Label, r.Seq, err)
		}
		n.snaps.kicked()
		n.metrics.snapshots.WithLabelValues(v.name).Inc()
		n.log.Info("snapshot taken", "volume", v.name, "label", r.Label, "seq", r.Seq,
			"group", r.Group, "path", dst, "method", method)
	case journal.KindCustom:
		cmd, ok := n.cfg.Hooks[r.Label]
		if !ok {
			n.log.Info("custom marker passed", "volume", v.name, "label", r.Label, "seq", r.Seq, "hook", errHookNotFound)
			return nil
		}
		v.setState("running hook " + r.Label)
		if err := runHook(ctx, n.log, cmd, n.cfg.HookTimeout, hookRun{Volume: v.name, Rec: r}); err != nil {
			n.metrics.hookFailures.WithLabelValues(v.name).Inc()
		}
	}
	return nil
}
