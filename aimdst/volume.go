package aimdst

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aimwan/aimwan/internal/durable"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/nbd"
)

// Volume states, as shown by status. Offline and stalled states carry a
// reason after a colon.
const (
	stateIdle      = "idle"      // everything received is destaged
	stateDestaging = "destaging" // applying files
	stateGap       = "waiting for file"
	stateOffline   = "offline"
	stateStalled   = "stalled"
	stateGroup     = "waiting for group"
)

// volume is one destination volume: its part of the destination buffer, its
// reorder buffer and cursor, and its destage loop.
type volume struct {
	name       string
	cfg        VolumeConfig
	dir        string // <buffer>/<name>
	cursorPath string
	n          *Node
	kick       chan struct{} // a file arrived (capacity 1)

	mu          sync.Mutex
	vf          volumeFile // the volume as destage opened it (snapshots at markers read it); nil when closed
	q           *fileQueue
	cursor      Cursor                   // as persisted
	receiving   map[uint64]chan struct{} // files being received now; closed when done
	partBytes   int64                    // bytes of .part files (the sum of parts)
	parts       map[uint64]int64         // bytes counted per .part file, by file seq
	state       string
	logical     int64 // bytes of writes destaged since start
	refusedFull uint64
	lastFull    time.Time
	warnedSeq   bool
}

// errOffline marks a destage error caused by the destination volume.
var errOffline = errors.New("destination volume offline")

// offlineError is a volume error: the volume is missing, read-only, full, or
// failing. Destage retries with back-off.
type offlineError struct {
	Reason string
	Err    error
}

func (e *offlineError) Error() string   { return "volume offline (" + e.Reason + "): " + e.Err.Error() }
func (e *offlineError) Unwrap() []error { return []error{errOffline, e.Err} }

func offline(err error) error { return &offlineError{Reason: offlineReason(err), Err: err} }

// openVolumeState loads a volume's cursor and scans its buffer folder:
// sealed files not yet destaged go to the reorder buffer, files the cursor
// has passed (a crash between cursor and delete) are removed, partial files
// are kept for resume.
func openVolumeState(n *Node, vc VolumeConfig) (*volume, error) {
	v := &volume{
		name: vc.Name, cfg: vc, n: n,
		dir:       filepath.Join(n.cfg.BufferDir, vc.Name),
		kick:      make(chan struct{}, 1),
		receiving: map[uint64]chan struct{}{},
		state:     stateIdle,
	}
	v.cursorPath = filepath.Join(v.dir, cursorName)
	if err := durable.MkdirAll(v.dir, 0o755); err != nil {
		return nil, fmt.Errorf("volume %s: buffer folder: %w", v.name, err)
	}
	c, err := loadCursor(v.cursorPath)
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", v.name, err)
	}
	v.cursor = c
	v.q = newFileQueue(c.File + 1)
	ents, err := os.ReadDir(v.dir)
	if err != nil {
		return nil, fmt.Errorf("volume %s: scan buffer: %w", v.name, err)
	}
	for _, e := range ents {
		if err := v.scanEntry(e); err != nil {
			return nil, fmt.Errorf("volume %s: scan buffer: %w", v.name, err)
		}
	}
	return v, nil
}

// scanEntry takes one entry of the buffer folder into account at start.
func (v *volume) scanEntry(e os.DirEntry) error {
	name := e.Name()
	path := filepath.Join(v.dir, name)
	info, err := e.Info()
	if err != nil || !info.Mode().IsRegular() {
		return err
	}
	switch {
	case strings.HasPrefix(name, "."+cursorName+".tmp"):
		return os.Remove(path) // an interrupted cursor update
	case strings.HasSuffix(name, partExt):
		if seq, err := journal.ParseFileName(strings.TrimSuffix(name, partExt)); err == nil {
			if seq <= v.cursor.File {
				return os.Remove(path) // a resend of a destaged file, never committed
			}
			v.setPart(seq, info.Size())
		}
		return nil
	}
	seq, err := journal.ParseFileName(name)
	if err != nil {
		return nil // not ours
	}
	if seq <= v.cursor.File {
		return os.Remove(path) // destaged before a crash; only the delete was missing
	}
	if v.q.Add(seq, info.Size()) {
		v.n.bufBytes.Add(info.Size())
	}
	return nil
}

// serve runs the destage loop until ctx ends: apply the next file whenever it
// is held, back off and retry after an error (volume offline...).
func (v *volume) serve(ctx context.Context) error {
	defer v.releaseVolume(false)
	backoff := time.Duration(0)
	for {
		progressed, err := v.destageNext(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			backoff = min(max(2*backoff, v.n.cfg.RetryMin), v.n.cfg.RetryMax)
			v.failed(err, backoff)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		backoff = 0
		if progressed {
			continue
		}
		v.releaseVolume(false) // nothing to apply: free the NBD server's client slot
		v.idle()
		select {
		case <-ctx.Done():
			return nil
		case <-v.kick:
		}
	}
}

// notify wakes the destage loop.
func (v *volume) notify() {
	select {
	case v.kick <- struct{}{}:
	default:
	}
}

// failed records a destage error in the state and the log.
func (v *volume) failed(err error, retry time.Duration) {
	var oe *offlineError
	state := stateStalled + ": " + err.Error()
	if errors.As(err, &oe) {
		state = stateOffline + ": " + oe.Reason
	}
	v.mu.Lock()
	changed := v.state != state
	v.state = state
	v.mu.Unlock()
	if changed {
		v.n.log.Warn("destage paused; retrying with back-off", "volume", v.name, "state", state, "err", err, "retry", retry)
	}
}

// idle sets the state when there is nothing to apply.
func (v *volume) idle() {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case v.q.Len() > 0:
		v.state = fmt.Sprintf("%s %d", stateGap, v.q.Next())
	case !v.cfg.Create && !nbd.IsURI(v.cfg.Path) && !exists(v.cfg.Path):
		v.state = stateOffline + ": missing" // nothing to apply yet, but say so
	default:
		v.state = stateIdle
	}
}

// setState sets the state shown by status.
func (v *volume) setState(s string) {
	v.mu.Lock()
	v.state = s
	v.mu.Unlock()
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// reusable is a volume that stays open from one journal file to the next
// while destage has files to apply (an NBD connection: no handshake per
// file); fits reports whether it is still usable for a volume of size bytes.
type reusable interface {
	fits(size int64) bool
}

// volumeFor returns the volume open for a file of a volume of size bytes:
// the one kept open from the previous file when it fits, else a newly opened
// one.
func (v *volume) volumeFor(size int64) (volumeFile, error) {
	if r, ok := v.heldVolume().(reusable); ok && r.fits(size) {
		return v.heldVolume(), nil
	}
	v.releaseVolume(false)
	vf, err := v.n.cfg.openVolume(v.cfg.Path, size, v.cfg.Create)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	v.vf = vf
	v.mu.Unlock()
	return vf, nil
}

// heldVolume is the volume as destage has it open, or nil.
func (v *volume) heldVolume() volumeFile {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.vf
}

// releaseVolume closes the open volume, unless keep is set and it is
// reusable.
func (v *volume) releaseVolume(keep bool) {
	v.mu.Lock()
	vf := v.vf
	if _, ok := vf.(reusable); keep && ok {
		v.mu.Unlock()
		return
	}
	v.vf = nil
	v.mu.Unlock()
	if vf != nil {
		if err := vf.Close(); err != nil {
			v.n.log.Debug("close volume", "volume", v.name, "err", err)
		}
	}
}
