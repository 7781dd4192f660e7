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
	statePromoted  = "promoted" // failover: writable at the DR site, destage stopped for good
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

	curMu sync.Mutex // orders cursor writes (destage, rebind)

	mu          sync.Mutex
	vf          volumeFile // the volume as destage opened it (snapshots at markers read it); nil when closed
	q           *fileQueue
	info        map[uint64]heldInfo      // what each held file is, by file seq
	cursor      Cursor                   // as persisted
	receiving   map[uint64]chan struct{} // files being received now; closed when done
	partBytes   int64                    // bytes of .part files (the sum of parts)
	parts       map[uint64]int64         // bytes counted per .part file, by file seq
	state       string
	logical     int64 // bytes of writes destaged since start
	refusedFull uint64
	lastFull    time.Time
	refusals    map[uint64]*Refusal         // files refused lately (status)
	quarantined []QuarantinedFile           // files moved aside (status)
	starting    map[journal.StreamID]uint64 // start files of new streams being received: stream -> file seq
	rebinding   bool                        // a rebind is switching the volume to a new stream

	// Promotion (failover, promote.go): promoting refuses files, halted
	// stops destage, promoted is the persisted record. runMu is held by
	// destage while it applies a file; stopDestage cancels a destage
	// waiting (at a group barrier).
	promoting   bool
	halted      bool
	promoted    *Promotion
	runMu       sync.Mutex
	stopDestage context.CancelFunc
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
		info:      map[uint64]heldInfo{},
		starting:  map[journal.StreamID]uint64{},
		state:     stateIdle,
	}
	v.cursorPath = filepath.Join(v.dir, cursorName)
	if err := mkdirPrivate(v.dir); err != nil {
		return nil, fmt.Errorf("volume %s: buffer folder: %w", v.name, err)
	}
	c, err := loadCursor(v.cursorPath)
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", v.name, err)
	}
	v.cursor = c
	v.q = newFileQueue(c.File + 1)
	if v.promoted, err = loadPromotion(v.dir); err != nil {
		return nil, fmt.Errorf("volume %s: %w", v.name, err)
	}
	if v.promoted != nil {
		v.promoting, v.halted, v.state = true, true, promotedState(v.promoted)
	}
	ents, err := os.ReadDir(v.dir)
	if err != nil {
		return nil, fmt.Errorf("volume %s: scan buffer: %w", v.name, err)
	}
	for _, e := range ents {
		if err := v.scanEntry(e); err != nil {
			return nil, fmt.Errorf("volume %s: scan buffer: %w", v.name, err)
		}
	}
	if err := v.scanQuarantine(); err != nil {
		return nil, fmt.Errorf("volume %s: scan quarantine: %w", v.name, err)
	}
	return v, nil
}

// path is where held file seq lies.
func (v *volume) path(seq uint64) string { return filepath.Join(v.dir, journal.FileName(seq)) }

// scanQuarantine lists the files quarantined before a restart (they count
// in the buffer until an operator removes them).
func (v *volume) scanQuarantine() error {
	dir := filepath.Join(v.dir, quarantineDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		seq, err := journal.ParseFileName(e.Name()[:min(len(e.Name()), len(journal.FileName(1)))])
		info, ierr := e.Info()
		if err != nil || ierr != nil || !info.Mode().IsRegular() {
			continue
		}
		v.quarantined = append(v.quarantined, QuarantinedFile{File: seq, Path: filepath.Join(dir, e.Name()),
			Reason: "quarantined before a restart", Size: info.Size(), Time: info.ModTime()})
		v.n.bufBytes.Add(info.Size())
	}
	if len(v.quarantined) > 0 {
		v.n.log.Warn("quarantined journal files are kept in the buffer; remove them once resolved", "volume", v.name,
			"folder", dir, "files", len(v.quarantined))
	}
	return nil
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
			if seq <= v.cursor.File || v.n.cfg.Now().Sub(info.ModTime()) > v.n.cfg.PartExpiry {
				return os.Remove(path) // a resend of a destaged file, or abandoned long ago
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
		if sum, err := journal.ReadSummary(path, v.name); err == nil {
			v.info[seq] = heldInfo{first: sum.FirstSeq, last: sum.LastSeq, stream: sum.Header.Stream, start: sum.Header.Start}
		} else {
			v.n.log.Warn("held journal file unreadable; destage will report it", "volume", v.name, "file", name, "err", err)
		}
	}
	return nil
}

// mkdirPrivate creates dir (and missing parents) mode 0700, durably.
func mkdirPrivate(dir string) error { return durable.MkdirAll(dir, 0o700) }

// syncDirs fsyncs each folder.
func syncDirs(dirs ...string) error {
	for _, d := range dirs {
		if err := durable.SyncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// serve runs the destage loop until ctx ends: apply the next file whenever it
// is held, back off and retry after an error (volume offline...).
func (v *volume) serve(ctx context.Context) error {
	defer v.releaseVolume(false)
	backoff := time.Duration(0)
	for {
		progressed, err := v.destageOnce(ctx)
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

// destageOnce runs destageNext under runMu with a context a promotion can
// cancel; a halted volume (promoted) destages nothing.
func (v *volume) destageOnce(ctx context.Context) (bool, error) {
	v.runMu.Lock()
	defer v.runMu.Unlock()
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	v.mu.Lock()
	halted := v.halted
	v.stopDestage = cancel
	v.mu.Unlock()
	if halted {
		return false, nil
	}
	progressed, err := v.destageNext(dctx)
	if err != nil && dctx.Err() != nil && ctx.Err() == nil {
		return false, nil // a promotion halted it (at a group barrier): not a failure
	}
	return progressed, err
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
	case v.halted && v.promoted != nil:
		v.state = promotedState(v.promoted)
	case v.q.Len() > 0 || v.quarantinedAt(v.q.Next()) != nil:
		v.state = fmt.Sprintf("%s %d", stateGap, v.q.Next())
		if q := v.quarantinedAt(v.q.Next()); q != nil {
			v.state += fmt.Sprintf(" (a file %d was quarantined: %s)", q.File, q.Reason)
		}
	case !v.cfg.Create && !nbd.IsURI(v.cfg.Path) && !exists(v.cfg.Path):
		v.state = stateOffline + ": missing" // nothing to apply yet, but say so
	default:
		v.state = stateIdle
	}
}

// quarantinedAt returns the newest quarantine of file seq, if any. v.mu
// held.
func (v *volume) quarantinedAt(seq uint64) *QuarantinedFile {
	for i := len(v.quarantined) - 1; i >= 0; i-- {
		if v.quarantined[i].File == seq {
			return &v.quarantined[i]
		}
	}
	return nil
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
