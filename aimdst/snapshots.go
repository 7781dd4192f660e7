package aimdst

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aimwan/aimwan/internal/durable"
	"github.com/aimwan/aimwan/journal"
)

// Errors of snapshot requests.
var (
	ErrNoSuchSnapshot = errors.New("no such snapshot")
	// ErrSnapshotInUse: the snapshot is held by a reader (aimwan dst export,
	// a test clone); it is neither deleted nor pruned until released.
	ErrSnapshotInUse = errors.New("snapshot in use")
	// ErrGroupPoint: a member of a group point cannot be deleted alone.
	ErrGroupPoint = errors.New("snapshot belongs to a group point")
	// ErrBadSnapshotRequest: a malformed list or delete request.
	ErrBadSnapshotRequest = errors.New("bad snapshot request")
)

// errSnapshotChanged: the snapshot was taken again since it was listed.
var errSnapshotChanged = errors.New("snapshot replaced since it was listed")

// metaExt is the extension of a snapshot's metadata file, beside its image:
// <snapshots>/<volume>/<label>.json.
const (
	imgExt  = ".img"
	metaExt = ".json"
)

// snapMeta is what the node records about a snapshot it took, in
// <label>.json, written durably right after the image.
type snapMeta struct {
	Volume    string    `json:"volume"`
	Label     string    `json:"label"`
	Seq       uint64    `json:"seq"`        // the marker's record sequence
	PointTime time.Time `json:"point_time"` // source time of the marker: the point the snapshot captures
	Taken     time.Time `json:"taken"`      // when dst took it (dst's clock)
	Method    string    `json:"method"`     // reflink or sparse copy
	Group     string    `json:"group,omitempty"`
	GroupSeq  uint64    `json:"group_seq,omitempty"`
}

// SnapshotInfo is one snapshot as `aimwan dst snapshots list` shows it.
type SnapshotInfo struct {
	Volume string `json:"volume"`
	Label  string `json:"label"`
	// PointTime is the source time of the marker the snapshot was taken at:
	// the volume holds every write made before it and none after. Zero for
	// a snapshot without metadata (not taken at a marker by this build).
	PointTime time.Time `json:"point_time,omitzero"`
	Taken     time.Time `json:"taken"` // when dst took it (file time when there is no metadata)
	Seq       uint64    `json:"seq,omitempty"`
	SizeBytes int64     `json:"size_bytes"` // the volume's size
	// AllocatedBytes is the space the file's blocks take (st_blocks). For
	// a reflink it counts extents shared with the volume and other
	// snapshots too: what deleting it frees is at most this.
	AllocatedBytes int64    `json:"allocated_bytes"`
	Method         string   `json:"method,omitempty"` // reflink or sparse copy; "" when unknown
	Group          string   `json:"group,omitempty"`
	GroupSeq       uint64   `json:"group_seq,omitempty"`
	Members        []string `json:"members,omitempty"` // of a group point: the volumes holding its snapshots here
	// Policy names the retention policy that governs it ("" when none).
	Policy string `json:"policy,omitempty"`
	// KeptBy lists the retention classes that keep it (Kept* constants).
	KeptBy []string `json:"kept_by"`
	InUse  bool     `json:"in_use"` // exported over NBD or used by a test clone now

	path string
	id   fileID
}

// fileID identifies a snapshot file, so a snapshot taken again under the
// same label since it was listed is not deleted by a plan made before.
type fileID struct{ dev, ino uint64 }

// SnapshotList is the answer of the control endpoint's snapshot list.
type SnapshotList struct {
	Node      string            `json:"node"`
	Time      time.Time         `json:"time"`
	Policies  []string          `json:"policies,omitempty"` // retention policies in force, described
	Snapshots []SnapshotInfo    `json:"snapshots"`
	Errors    map[string]string `json:"errors,omitempty"` // per volume folder that could not be read
}

// snapshotStore is the node's snapshot folder: taking snapshots with their
// metadata, listing and deleting them. A per-volume lock serializes taking
// and deleting, so a delete never races destage taking a snapshot.
type snapshotStore struct {
	dir string
	now func() time.Time

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func newSnapshotStore(dir string, now func() time.Time) *snapshotStore {
	return &snapshotStore{dir: dir, now: now, locks: map[string]*sync.Mutex{}}
}

// lock takes volume's snapshot lock and returns its release.
func (s *snapshotStore) lock(volume string) func() {
	s.mu.Lock()
	l := s.locks[volume]
	if l == nil {
		l = &sync.Mutex{}
		s.locks[volume] = l
	}
	s.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// take snapshots the volume at volPath at marker r under r's label: the
// copy (reflink or sparse copy) under a temp name, its metadata, then the
// image renamed into place, so a listed image always has its metadata (a
// crash before the rename leaves metadata without an image, which cleanup
// removes at the next start).
func (s *snapshotStore) take(volume, volPath string, r journal.Record) (string, error) {
	defer s.lock(volume)()
	dst := SnapshotPath(s.dir, volume, r.Label)
	return snapshotFileThen(volPath, dst, func(method string) error {
		m := snapMeta{Volume: volume, Label: r.Label, Seq: r.Seq, PointTime: r.Time.UTC(), Taken: s.now().UTC(),
			Method: method, Group: r.Group, GroupSeq: r.GroupSeq}
		b, _ := json.MarshalIndent(m, "", "  ")
		if err := durable.WriteFile(metaPath(s.dir, volume, r.Label), append(b, '\n'), 0o600); err != nil {
			return fmt.Errorf("snapshot %s/%s: metadata: %w", volume, r.Label, err)
		}
		return nil
	})
}

func metaPath(dir, volume, label string) string {
	return filepath.Join(dir, volume, label+metaExt)
}

// validLabel checks a label given to delete: a journal name, or a name the
// node itself gives (letters, digits, "_", "-", "."), never a path.
func validLabel(label string) error {
	if journal.ValidName(label) == nil {
		return nil
	}
	if label == "" || len(label) > 200 || label[0] == '.' || strings.ContainsFunc(label, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.')
	}) {
		return fmt.Errorf("%w: label %q: want letters, digits, _, - and . (not first)", ErrBadSnapshotRequest, label)
	}
	return nil
}

// volumes lists the volume folders of the snapshot folder.
func (s *snapshotStore) volumes() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshots %s: %w", s.dir, err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && journal.ValidName(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// list returns the snapshots of volume, sorted by point time (then label).
// KeptBy, Policy and Members are left for the caller.
func (s *snapshotStore) list(volume string) ([]SnapshotInfo, error) {
	dir := filepath.Join(s.dir, volume)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshots of %s: %w", volume, err)
	}
	var out []SnapshotInfo
	for _, e := range ents {
		name := e.Name()
		label, ok := strings.CutSuffix(name, imgExt)
		if !ok || strings.HasPrefix(name, ".") || validLabel(label) != nil {
			continue
		}
		si, err := s.stat(volume, label)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, si)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].sortTime().Equal(out[j].sortTime()) {
			return out[i].sortTime().Before(out[j].sortTime())
		}
		return out[i].Label < out[j].Label
	})
	return out, nil
}

// stat describes one snapshot from its file and metadata.
func (s *snapshotStore) stat(volume, label string) (SnapshotInfo, error) {
	p := SnapshotPath(s.dir, volume, label)
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot %s/%s: %w", volume, label, &fs.PathError{Op: "stat", Path: p, Err: err})
	}
	si := SnapshotInfo{Volume: volume, Label: label, SizeBytes: st.Size, AllocatedBytes: st.Blocks * 512,
		Taken: time.Unix(st.Mtim.Unix()).UTC(), path: p, id: fileID{dev: uint64(st.Dev), ino: st.Ino}}
	b, err := os.ReadFile(metaPath(s.dir, volume, label))
	if err == nil {
		var m snapMeta
		if json.Unmarshal(b, &m) == nil && m.Label == label {
			si.PointTime, si.Taken, si.Seq, si.Method, si.Group, si.GroupSeq = m.PointTime, m.Taken, m.Seq, m.Method, m.Group, m.GroupSeq
		}
	}
	return si, nil
}

// sortTime is the time retention and listing order by: the point's source
// time, else when it was taken.
func (si SnapshotInfo) sortTime() time.Time {
	if !si.PointTime.IsZero() {
		return si.PointTime
	}
	return si.Taken
}

// remove deletes the snapshot volume/label: refused while a reader holds it
// (ErrSnapshotInUse); want, when set, must still be the file (else
// errSnapshotChanged). The image goes first, then its metadata, then the
// folder is synced: a crash in between leaves metadata without an image,
// which the next start removes.
func (s *snapshotStore) remove(volume, label string, want *fileID) error {
	defer s.lock(volume)()
	p := SnapshotPath(s.dir, volume, label)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s/%s", ErrNoSuchSnapshot, volume, label)
	}
	if err != nil {
		return fmt.Errorf("delete snapshot %s/%s: %w", volume, label, err)
	}
	defer f.Close()
	// The exclusive lock fails while a reader holds its shared one; held
	// until the file is gone, so no reader starts on it meanwhile.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("%w: %s/%s is exported over NBD or used by a test clone; stop that first", ErrSnapshotInUse, volume, label)
		}
		return fmt.Errorf("delete snapshot %s/%s: lock: %w", volume, label, err)
	}
	if want != nil {
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil || (fileID{uint64(st.Dev), st.Ino}) != *want {
			return fmt.Errorf("%w: %s/%s", errSnapshotChanged, volume, label)
		}
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("delete snapshot %s/%s: %w", volume, label, err)
	}
	if err := os.Remove(metaPath(s.dir, volume, label)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete snapshot %s/%s: metadata: %w", volume, label, err)
	}
	return durable.SyncDir(filepath.Dir(p))
}

// cleanup removes what an interrupted snapshot or delete left in the
// snapshot folder: temporary files of a snapshot or metadata being written,
// and metadata whose image is gone. Run at start, before destage.
func (s *snapshotStore) cleanup() ([]string, error) {
	vols, err := s.volumes()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, v := range vols {
		dir := filepath.Join(s.dir, v)
		ents, err := os.ReadDir(dir)
		if err != nil {
			return removed, fmt.Errorf("snapshots of %s: %w", v, err)
		}
		for _, e := range ents {
			name := e.Name()
			stale := strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp") && e.Type().IsRegular()
			if label, ok := strings.CutSuffix(name, metaExt); ok && !stale && !strings.HasPrefix(name, ".") {
				stale = !exists(filepath.Join(dir, label+imgExt))
			}
			if !stale {
				continue
			}
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return removed, fmt.Errorf("snapshots of %s: clean up %s: %w", v, name, err)
			}
			removed = append(removed, filepath.Join(v, name))
		}
		if len(removed) > 0 {
			if err := durable.SyncDir(dir); err != nil {
				return removed, err
			}
		}
	}
	return removed, nil
}

// OpenSnapshot opens <snapshotDir>/<volume>/<label>.img read-only and holds
// a shared lock on it until the file is closed: while it is held, `aimwan
// dst snapshots delete` and retention leave the snapshot alone. Every
// reader that needs the snapshot to stay (the NBD export, a test clone)
// opens it this way.
func OpenSnapshot(snapshotDir, volume, label string) (*os.File, error) {
	p := SnapshotPath(snapshotDir, volume, label)
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s/%s: %w", volume, label, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("snapshot %s/%s: lock: %w", volume, label, err)
	}
	// A delete may have removed the file between the open and the lock.
	var held, now unix.Stat_t
	if unix.Fstat(int(f.Fd()), &held) != nil || unix.Stat(p, &now) != nil || held.Ino != now.Ino || held.Dev != now.Dev {
		f.Close()
		return nil, fmt.Errorf("snapshot %s/%s: %w (deleted or taken again while opening)", volume, label, fs.ErrNotExist)
	}
	return f, nil
}

// inUse reports whether a reader holds the snapshot at path (OpenSnapshot).
func inUse(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
	}
	return errors.Is(err, unix.EWOULDBLOCK)
}
