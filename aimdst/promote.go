package aimdst

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aimwan/aimwan/internal/durable"
	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// promotedName is the file in a volume's buffer folder that records its
// promotion (failover); while it exists the volume takes no files and
// destage leaves it alone.
const promotedName = "promoted.json"

// keptPrefix names the folder, inside the volume's buffer folder, where a
// promotion moves what it did not apply (files received past the chosen
// point, partial files, the volume as it was before a snapshot was
// restored).
const keptPrefix = "promoted-"

// Errors of promotion, matched with errors.Is.
var (
	// ErrPromoted: the volume is promoted (it takes no files; demote it
	// first).
	ErrPromoted = errors.New("volume is promoted")
	// ErrNotPromoted: demote of a volume that is not promoted.
	ErrNotPromoted = errors.New("volume is not promoted")
	// ErrNoSuchVolume: a volume or group this node does not hold.
	ErrNoSuchVolume = errors.New("no such volume or group")
	// ErrBadRequest: a malformed control request.
	ErrBadRequest = errors.New("bad request")
	// ErrNoPoint: no consistent point to promote to (a group without a
	// completed group snapshot, a label without a snapshot file).
	ErrNoPoint = errors.New("no consistent point to promote to")
)

// descPromoted is the promotion gauge, per volume.
var descPromoted = prometheus.NewDesc(metrics.DstPromoted,
	"1 once the volume is promoted (failover): writable at the DR site, destage stopped, files refused.", []string{"volume"}, nil)

func promotedGauge(v VolumeStatus) float64 {
	if v.Promoted != nil {
		return 1
	}
	return 0
}

// PromoteRequest asks to promote a volume, or every member of a group, at
// the newest consistent point or at a snapshot.
type PromoteRequest struct {
	Volume string `json:"volume,omitempty"`
	Group  string `json:"group,omitempty"`
	// At is a snapshot label: its image is restored into the volume. ""
	// means the newest consistent point: for a volume, every file received
	// in sequence is destaged first; for a group, the newest group
	// snapshot every member has.
	At string `json:"at,omitempty"`
}

// Promotion is the persisted record of a volume's promotion, as status shows
// it.
type Promotion struct {
	Time time.Time `json:"time"`
	// At is the snapshot label restored ("" : the newest point destaged).
	At string `json:"at,omitempty"`
	// File and Record are the destage cursor at the promotion (before a
	// restore: the point the volume had reached).
	File   uint64 `json:"file"`
	Record uint64 `json:"record"`
	// NewestWrite is the source time of the newest write in the volume
	// (before a restore).
	NewestWrite time.Time `json:"newest_write,omitzero"`
	// Kept is the folder holding what the promotion did not apply, and
	// KeptFiles its files: journal files received past the point (inspect
	// them with aimwan journal inspect), partial files, and with At the
	// volume as it was before the restore (volume-before-promote.img).
	Kept      string   `json:"kept,omitempty"`
	KeptFiles []string `json:"kept_files,omitempty"`
	// Pending says the promotion was interrupted (a crash) before it
	// finished: the volume takes no files and is not destaged, and
	// promoting it again finishes it.
	Pending bool `json:"pending,omitempty"`
}

// promotedState is the state status shows for a promotion.
func promotedState(p *Promotion) string {
	if p.Pending {
		return statePromoted + " (interrupted: run aimwan dst promote again to finish)"
	}
	return statePromoted
}

// promoteWait bounds how long a promotion lets destage apply what it holds
// (the request's context may end it earlier).
const promoteWait = 10 * time.Minute

// Promote makes the volume (or every member of the group) writable: destage
// stops for good, files are refused, and the volume holds the newest
// consistent point or the snapshot req.At. Promoting a promoted volume
// returns its promotion again.
func (n *Node) Promote(ctx context.Context, req PromoteRequest) ([]Promotion, error) {
	vols, at, err := n.promoteTargets(req)
	if err != nil {
		return nil, err
	}
	for _, v := range vols {
		v.beginPromote()
	}
	var out []Promotion
	for _, v := range vols {
		p, err := v.promote(ctx, at, req.Group != "")
		if err != nil {
			for _, w := range vols {
				w.abortPromote()
			}
			return out, fmt.Errorf("promote %s: %w", v.name, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// promoteTargets resolves the request to volumes and the label to restore.
func (n *Node) promoteTargets(req PromoteRequest) ([]*volume, string, error) {
	if (req.Volume == "") == (req.Group == "") {
		return nil, "", fmt.Errorf("%w: promote wants a volume or a group", ErrBadRequest)
	}
	if req.At != "" {
		if err := journal.ValidName(req.At); err != nil {
			return nil, "", fmt.Errorf("%w: snapshot label: %w", ErrBadRequest, err)
		}
	}
	if req.Volume != "" {
		v, ok := n.vols[req.Volume]
		if !ok {
			return nil, "", fmt.Errorf("%w: volume %q", ErrNoSuchVolume, req.Volume)
		}
		return []*volume{v}, req.At, nil
	}
	names := n.cfg.Groups[req.Group]
	n.groups.mu.Lock()
	st, err := n.groups.state(req.Group)
	n.groups.mu.Unlock()
	if err != nil {
		return nil, "", err
	}
	if len(names) == 0 {
		names = st.Members // a group known from its markers only
	}
	if len(names) == 0 {
		return nil, "", fmt.Errorf("%w: group %q (configure it with --group, or promote its volumes one by one)", ErrNoSuchVolume, req.Group)
	}
	at := req.At
	if at == "" {
		at = st.Snapshot
	}
	if at == "" {
		return nil, "", fmt.Errorf("%w: group %s has no completed group snapshot here; promote with --at LABEL, or each volume alone",
			ErrNoPoint, req.Group)
	}
	var vols []*volume
	for _, name := range names {
		v, ok := n.vols[name]
		if !ok {
			return nil, "", fmt.Errorf("%w: volume %q of group %s", ErrNoSuchVolume, name, req.Group)
		}
		if p := SnapshotPath(n.cfg.SnapshotDir, name, at); !exists(p) && !v.isPromoted() {
			return nil, "", fmt.Errorf("%w: no snapshot %s of member %s (%s)", ErrNoPoint, at, name, p)
		}
		vols = append(vols, v)
	}
	return vols, at, nil
}

// isPromoted reports whether the volume is promoted.
func (v *volume) isPromoted() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.promoted != nil
}

// beginPromote refuses new files from now on.
func (v *volume) beginPromote() {
	v.mu.Lock()
	v.promoting = true
	v.mu.Unlock()
}

// abortPromote takes files again after a promotion that failed (unless the
// volume got promoted).
func (v *volume) abortPromote() {
	v.mu.Lock()
	if v.promoted == nil {
		v.promoting, v.halted = false, false
	}
	v.mu.Unlock()
	v.notify()
}

// promote promotes one volume (beginPromote called). With at == "" it lets
// destage apply every file held in sequence first (unless stopAtOnce: a
// group member, whose point is its group snapshot); then it halts destage,
// restores snapshot at when given, moves what was not applied aside and
// persists the promotion.
func (v *volume) promote(ctx context.Context, at string, stopAtOnce bool) (Promotion, error) {
	v.mu.Lock()
	prev := v.promoted
	v.mu.Unlock()
	if prev != nil && !prev.Pending {
		return *prev, nil
	}
	if prev != nil { // finish an interrupted promotion, at its point
		stopAtOnce = true
		if at == "" {
			at = prev.At
		}
	}
	ctx, cancel := context.WithTimeout(ctx, promoteWait)
	defer cancel()
	if err := v.waitReceives(ctx); err != nil {
		return Promotion{}, err
	}
	if at == "" && !stopAtOnce {
		if err := v.waitDestaged(ctx); err != nil {
			return Promotion{}, err
		}
	}
	v.halt()
	defer v.runMu.Unlock()
	now := v.n.cfg.Now().UTC()
	v.mu.Lock()
	p := Promotion{Time: now, At: at, File: v.cursor.File, Record: v.cursor.Record, NewestWrite: v.cursor.Time}
	v.mu.Unlock()
	p.Kept = filepath.Join(v.dir, keptPrefix+now.Format("20060102T150405Z"))
	if err := mkdirPrivate(p.Kept); err != nil {
		return Promotion{}, err
	}
	// Recorded first: a crash from here on leaves a halted volume that
	// refuses files, whose promotion the next promote finishes.
	p.Pending = true
	if err := v.storePromotion(p); err != nil {
		return Promotion{}, err
	}
	if at != "" {
		snap := SnapshotPath(v.n.cfg.SnapshotDir, v.name, at)
		if !exists(snap) {
			return Promotion{}, fmt.Errorf("%w: no snapshot %s (%s)", ErrNoPoint, at, snap)
		}
		if exists(v.cfg.Path) {
			before := filepath.Join(p.Kept, "volume-before-promote.img")
			if _, err := snapshotFile(v.cfg.Path, before); err != nil {
				return Promotion{}, err
			}
			p.KeptFiles = append(p.KeptFiles, before)
		}
		if err := restoreFile(snap, v.cfg.Path); err != nil {
			return Promotion{}, err
		}
	}
	kept, err := v.keepUnapplied(p.Kept)
	p.KeptFiles = append(p.KeptFiles, kept...)
	if err != nil {
		return Promotion{}, err
	}
	p.Pending = false
	if err := v.storePromotion(p); err != nil {
		return Promotion{}, err
	}
	v.n.log.Warn("volume promoted (failover): it is writable and takes no more files", "volume", v.name,
		"at", at, "file", p.File, "record", p.Record, "kept", p.Kept, "kept_files", len(p.KeptFiles))
	return p, nil
}

// storePromotion persists p and makes it the volume's promotion.
func (v *volume) storePromotion(p Promotion) error {
	b, _ := json.MarshalIndent(p, "", "  ")
	if err := durable.WriteFile(filepath.Join(v.dir, promotedName), b, 0o600); err != nil {
		return fmt.Errorf("volume %s: %w", v.name, err)
	}
	v.mu.Lock()
	v.promoted = &p
	v.state = promotedState(&p)
	v.mu.Unlock()
	return nil
}

// waitReceives waits until no file of the volume is being received (new
// offers are refused already).
func (v *volume) waitReceives(ctx context.Context) error {
	return pollUntil(ctx, func() (bool, error) {
		v.mu.Lock()
		defer v.mu.Unlock()
		return len(v.receiving) == 0, nil
	})
}

// waitDestaged waits until destage has applied every file held in
// sequence (it stops early at a group barrier that cannot complete: the
// point before that marker is the newest consistent one).
func (v *volume) waitDestaged(ctx context.Context) error {
	v.notify()
	return pollUntil(ctx, func() (bool, error) {
		v.mu.Lock()
		defer v.mu.Unlock()
		_, ready := v.q.Ready()
		switch {
		case !ready, strings.HasPrefix(v.state, stateGroup):
			return true, nil
		case strings.HasPrefix(v.state, stateOffline), strings.HasPrefix(v.state, stateStalled):
			return false, fmt.Errorf("destage cannot apply the files held (%s); promote with --at LABEL, or fix the volume first", v.state)
		}
		return false, nil
	})
}

// pollUntil calls cond every 20 ms until it is true, fails, or ctx ends.
func pollUntil(ctx context.Context, cond func() (bool, error)) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if ok || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// halt stops destage for good: a destage waiting at a group barrier is
// cancelled, one applying a file finishes it. It returns with v.runMu held.
func (v *volume) halt() {
	v.mu.Lock()
	v.halted = true
	stop := v.stopDestage
	v.mu.Unlock()
	if stop != nil {
		stop()
	}
	v.runMu.Lock()
}

// keepUnapplied moves every held and partial file of the volume into kept
// and empties the reorder buffer. v.runMu held (destage halted).
func (v *volume) keepUnapplied(kept string) ([]string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	ents, err := os.ReadDir(v.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		if _, err := journal.ParseFileName(strings.TrimSuffix(name, partExt)); err != nil {
			continue
		}
		to := filepath.Join(kept, name)
		if err := os.Rename(filepath.Join(v.dir, name), to); err != nil {
			return out, fmt.Errorf("volume %s: keep %s: %w", v.name, name, err)
		}
		out = append(out, to)
	}
	v.n.bufBytes.Add(-v.q.Bytes() - v.partBytes)
	v.q = newFileQueue(v.cursor.File + 1)
	v.info = map[uint64]heldInfo{}
	v.partBytes, v.parts = 0, nil
	return out, syncDirs(kept, v.dir)
}

// restoreFile replaces the volume at dst with a copy of the snapshot src
// (atomically; a reflink where the file system can).
func restoreFile(src, dst string) error {
	if _, err := snapshotFile(src, dst); err != nil {
		return fmt.Errorf("restore %s into %s: %w", src, dst, err)
	}
	return nil
}

// Demote makes a promoted volume a replica again: its promotion record is
// removed, and since the volume was written while promoted, its journal
// stream binding is retired, so only an initialize's new stream (src init)
// is taken. The kept folder stays for the operator.
func (n *Node) Demote(volume string) error {
	v, ok := n.vols[volume]
	if !ok {
		return fmt.Errorf("%w: volume %q", ErrNoSuchVolume, volume)
	}
	v.curMu.Lock()
	defer v.curMu.Unlock()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.promoted == nil {
		return fmt.Errorf("demote %s: %w", volume, ErrNotPromoted)
	}
	c := v.cursor
	if c.Stream != "" {
		c.Previous = &Binding{Stream: c.Stream, File: c.File, Record: c.Record, Newest: c.Time, Until: n.cfg.Now().UTC()}
	}
	c.Stream = retiredStream
	c.Destaged = nil
	c.Format = cursorFormat
	if err := storeCursor(v.cursorPath, c); err != nil {
		return fmt.Errorf("demote %s: %w", volume, err)
	}
	v.cursor = c
	if err := os.Remove(filepath.Join(v.dir, promotedName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("demote %s: %w", volume, err)
	}
	if err := durable.SyncDir(v.dir); err != nil {
		return fmt.Errorf("demote %s: %w", volume, err)
	}
	v.promoted, v.promoting, v.halted = nil, false, false
	v.state = stateIdle
	n.log.Warn("volume demoted: a replica again; it takes only an initialize's new journal stream", "volume", volume)
	v.notify()
	return nil
}

// retiredStream is the binding of a demoted volume: a stream id no source
// has (all ones), so every file of an old stream is refused and only an
// initialize's first file rebinds the volume.
var retiredStream = strings.Repeat("f", 2*len(journal.StreamID{}))

// loadPromotion reads the volume's promotion record, if any.
func loadPromotion(dir string) (*Promotion, error) {
	b, err := os.ReadFile(filepath.Join(dir, promotedName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parsePromotion(b)
}

// parsePromotion decodes a promotion record; a damaged one is an error
// naming the file (the volume must not silently go back to replicating).
func parsePromotion(b []byte) (*Promotion, error) {
	var p Promotion
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w (fix or remove it: without it the volume replicates again)", promotedName, err)
	}
	if p.Time.IsZero() {
		return nil, fmt.Errorf("%s: no promotion time", promotedName)
	}
	if p.At != "" {
		if err := journal.ValidName(p.At); err != nil {
			return nil, fmt.Errorf("%s: snapshot label: %w", promotedName, err)
		}
	}
	return &p, nil
}

// refusePromoted is the verdict on a file offered for a promoted volume.
// v.mu held.
func (v *volume) refusePromoted() error {
	if !v.promoting {
		return nil
	}
	what := "is being promoted (failover)"
	if v.promoted != nil {
		what = "was promoted (failover) at " + v.promoted.Time.Format(time.RFC3339)
	}
	return fmt.Errorf("%w: volume %s %s: it is writable at the DR site and takes no more files; nothing was stored. "+
		"To replicate into it again, demote it (aimwan dst demote --volume %s) and initialize the source (aimwan src init)",
		push.ErrConflict, v.name, what, v.name)
}
