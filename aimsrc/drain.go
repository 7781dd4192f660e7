package aimsrc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aimwan/aimwan/internal/durable"
)

// PathDrain is the control API resource of a drain (planned failover).
const PathDrain = "/v1/drain" // POST DrainRequest -> DrainStatus

// ErrDrained is what a write to a drained volume fails with (the NBD client
// sees EROFS's errno, EPERM).
var ErrDrained = errors.New("volume drained for failover: writes are refused")

// DrainRequest drains a volume (or, with Undo, takes writes again).
type DrainRequest struct {
	Volume string `json:"volume"`
	Undo   bool   `json:"undo,omitempty"`
}

// DrainStatus is a volume's drain state. Complete says the far end has
// acknowledged everything: no file waits, the open file is empty, no dirty
// region and no initialize is left; the destination may then promote.
type DrainStatus struct {
	Volume       string    `json:"volume"`
	Drained      bool      `json:"drained"`
	Since        time.Time `json:"since,omitzero"`
	Complete     bool      `json:"complete"`
	SrcDataBytes int64     `json:"src_data_bytes"`
	FilesWaiting int64     `json:"files_waiting"`
	DirtyBytes   int64     `json:"dirty_bytes"`
	InitRunning  bool      `json:"init_running,omitempty"`
}

// drainRecord is the persisted drain: <buffer>/<volume>.drained.
type drainRecord struct {
	Since time.Time `json:"since"`
}

// drainPath is where the volume's drain is persisted.
func drainPath(buffer, volume string) string { return filepath.Join(buffer, volume+".drained") }

// Drain stops (or with undo, resumes) writes to a volume: from now on, and
// across restarts, every NBD write, zero and trim is refused, and the open
// journal file is sealed so everything journaled is pushed. Call it again
// to follow its progress until Complete.
func (n *Node) Drain(req DrainRequest) (DrainStatus, error) {
	v, ok := n.vols[req.Volume]
	if !ok {
		return DrainStatus{}, fmt.Errorf("%w: %q", ErrNoSuchVolume, req.Volume)
	}
	path := drainPath(n.cfg.Buffer, v.name)
	v.mu.Lock()
	var err error
	switch {
	case req.Undo && v.drained.Load():
		if err = os.Remove(path); err == nil || errors.Is(err, fs.ErrNotExist) {
			err = durable.SyncDir(n.cfg.Buffer)
		}
		if err == nil {
			v.drained.Store(false)
			v.drainedAt = time.Time{}
			v.log.Warn("volume takes writes again (drain undone)")
		}
	case !req.Undo && !v.drained.Load():
		now := v.now().UTC()
		b, _ := json.Marshal(drainRecord{Since: now})
		if err = durable.WriteFile(path, b, 0o600); err == nil {
			v.drained.Store(true)
			v.drainedAt = now
			err = v.jw.Seal()
			v.log.Warn("volume drained for failover: writes are refused from now on; everything journaled is pushed")
		}
	}
	v.mu.Unlock()
	if err != nil {
		return DrainStatus{}, fmt.Errorf("drain %s: %w", v.name, err)
	}
	v.kickPush()
	return v.drainStatus(), nil
}

// kickPush wakes the pusher.
func (v *volume) kickPush() {
	select {
	case v.pushKick <- struct{}{}:
	default:
	}
}

// drainStatus reports the volume's drain.
func (v *volume) drainStatus() DrainStatus {
	v.mu.Lock()
	since := v.drainedAt
	v.mu.Unlock()
	st := DrainStatus{Volume: v.name, Drained: v.drained.Load(), Since: since, SrcDataBytes: v.srcData(),
		FilesWaiting: v.sealedFiles.Load(), DirtyBytes: v.dirty.dirtyBytes(), InitRunning: v.initJob.status().Running}
	st.Complete = st.Drained && st.SrcDataBytes == 0 && st.FilesWaiting == 0 && st.DirtyBytes == 0 && !st.InitRunning
	return st
}

// loadDrain restores a drain persisted before a restart.
func (v *volume) loadDrain(buffer string) error {
	b, err := os.ReadFile(drainPath(buffer, v.name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("volume %s: drain state: %w", v.name, err)
	}
	r, err := parseDrain(b)
	if err != nil {
		return fmt.Errorf("volume %s: drain state %s: %w", v.name, drainPath(buffer, v.name), err)
	}
	v.drained.Store(true)
	v.drainedAt = r.Since
	v.log.Warn("volume is drained (failover): NBD writes are refused; undo with aimwan src drain --undo", "since", r.Since)
	return nil
}

// parseDrain decodes a drain record. A damaged one is an error: the volume
// must not silently take writes again.
func parseDrain(b []byte) (drainRecord, error) {
	var r drainRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%w (fix or remove it: without it the volume takes writes)", err)
	}
	if r.Since.IsZero() {
		return r, errors.New("no drain time")
	}
	return r, nil
}

// refuseDrained is the error of a write to a drained volume. v.mu held.
func (v *volume) refuseDrained() error {
	if !v.drained.Load() {
		return nil
	}
	return fmt.Errorf("%w (since %s): %w", ErrDrained, v.drainedAt.Format(time.RFC3339), syscall.EROFS)
}
