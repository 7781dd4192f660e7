package aimsrc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/aimwan/aimwan/internal/durable"
	"github.com/aimwan/aimwan/journal"
)

// Sentinels of control requests. (push.ErrUnknownVolume is the push
// protocol's refusal by a receiver; these name a control request's target.)
var (
	ErrBadRequest   = errors.New("bad request")
	ErrNoSuchVolume = errors.New("unknown volume")
	ErrNoSuchGroup  = errors.New("unknown group")
)

// Marker kinds in requests.
const (
	MarkerSnapshot = "snapshot"
	MarkerCustom   = "custom"
)

// Arg is one key=value argument of a custom marker.
type Arg struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// MarkerRequest asks for a marker on a volume or, atomically, a group.
type MarkerRequest struct {
	Volume string `json:"volume,omitempty"` // exactly one of Volume and Group
	Group  string `json:"group,omitempty"`
	Kind   string `json:"kind"` // MarkerSnapshot or MarkerCustom
	Label  string `json:"label"`
	Args   []Arg  `json:"args,omitempty"` // custom markers only
}

// MarkerResult tells where the marker went.
type MarkerResult struct {
	Group    string            `json:"group,omitempty"`
	GroupSeq uint64            `json:"group_seq,omitempty"`
	Seqs     map[string]uint64 `json:"seqs"` // volume -> the marker's write sequence
}

// record validates req and returns the marker record (without group fields).
func (req MarkerRequest) record() (journal.Record, error) {
	var r journal.Record
	switch req.Kind {
	case MarkerSnapshot:
		r.Kind = journal.KindSnapshot
		if len(req.Args) > 0 {
			return r, fmt.Errorf("%w: a snapshot marker takes no arguments", ErrBadRequest)
		}
	case MarkerCustom:
		r.Kind = journal.KindCustom
	default:
		return r, fmt.Errorf("%w: marker kind %q, want %s or %s", ErrBadRequest, req.Kind, MarkerSnapshot, MarkerCustom)
	}
	if (req.Volume == "") == (req.Group == "") {
		return r, fmt.Errorf("%w: give exactly one of volume and group", ErrBadRequest)
	}
	if err := journal.ValidName(req.Label); err != nil {
		return r, fmt.Errorf("%w: label: %w", ErrBadRequest, err)
	}
	r.Label = req.Label
	for _, a := range req.Args {
		if err := journal.ValidName(a.Key); err != nil {
			return r, fmt.Errorf("%w: argument key: %w", ErrBadRequest, err)
		}
		r.Args = append(r.Args, journal.KV{Key: a.Key, Value: a.Value})
	}
	if err := r.Validate(1); err != nil {
		return r, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return r, nil
}

// Marker places a marker in one volume's journal, or atomically in every
// member of a group: all members' locks are taken in name order, so every
// write that completed on any member before the marker precedes it, and no
// write slips between the members' markers. Group markers of one node are
// placed one at a time, in group-id order. The marker is durable when
// Marker returns.
func (n *Node) Marker(req MarkerRequest) (MarkerResult, error) {
	rec, err := req.record()
	if err != nil {
		return MarkerResult{}, err
	}
	members := []string{req.Volume}
	if req.Group != "" {
		g, ok := n.groups[req.Group]
		if !ok {
			return MarkerResult{}, fmt.Errorf("%w: %q", ErrNoSuchGroup, req.Group)
		}
		members = groupMembers(g)
		rec.Group = req.Group
	}
	vols := make([]*volume, 0, len(members))
	for _, m := range members {
		v, ok := n.vols[m]
		if !ok {
			return MarkerResult{}, fmt.Errorf("%w: %q", ErrNoSuchVolume, m)
		}
		vols = append(vols, v)
	}
	res := MarkerResult{Group: rec.Group, Seqs: map[string]uint64{}}
	if rec.Group != "" {
		// The id is taken and placed under one lock, so ids reach the
		// members' journals in increasing order: the destination skips a
		// group marker whose id is not above the last group point done.
		n.groupMu.Lock()
		rec.GroupSeq, err = n.gseq.next(req.Group)
		if err == nil {
			err = appendMarker(vols, rec, res.Seqs)
		}
		n.groupMu.Unlock()
		res.GroupSeq = rec.GroupSeq
	} else {
		err = appendMarker(vols, rec, res.Seqs)
	}
	if err != nil {
		return MarkerResult{}, err
	}
	for _, v := range vols {
		if err := v.syncJournal(); err != nil {
			return MarkerResult{}, fmt.Errorf("volume %s: sync marker: %w", v.name, err)
		}
	}
	n.log.Info("marker placed", "kind", req.Kind, "label", req.Label, "group", rec.Group,
		"group_seq", rec.GroupSeq, "seqs", res.Seqs)
	return res, nil
}

// appendMarker appends rec to every volume with all their locks held (taken
// in the given, sorted order); it refuses when any of them is not consistent.
func appendMarker(vols []*volume, rec journal.Record, seqs map[string]uint64) error {
	for _, v := range vols {
		v.mu.Lock()
		defer v.mu.Unlock()
	}
	for _, v := range vols {
		if v.pullAhead || v.dirty.count.Load() > 0 {
			return fmt.Errorf("volume %s is in %s: %w", v.name, v.State(), ErrNotConsistent)
		}
	}
	for _, v := range vols {
		seq, err := v.markerLocked(rec)
		if err != nil {
			return err
		}
		seqs[v.name] = seq
	}
	return nil
}

// groupSeqs hands out group marker ids, persisted per group in the buffer
// folder so they keep increasing across restarts.
type groupSeqs struct {
	dir string
	mu  sync.Mutex
}

// next returns the group's next marker id, durable before it is returned.
func (g *groupSeqs) next(group string) (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	path := filepath.Join(g.dir, group+".gseq")
	var cur uint64
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if cur, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err != nil {
			return 0, fmt.Errorf("group %s: bad id file %s: %w", group, path, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return 0, fmt.Errorf("group %s: read id file: %w", group, err)
	}
	cur++
	if err := durable.WriteFile(path, []byte(strconv.FormatUint(cur, 10)+"\n"), 0o644); err != nil {
		return 0, fmt.Errorf("group %s: store id: %w", group, err)
	}
	return cur, nil
}
