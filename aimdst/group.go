package aimdst

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aimwan/aimwan/internal/durable"
	"github.com/aimwan/aimwan/journal"
)

// groupsDirName holds the persisted state of consistency groups inside the
// buffer folder (a name no volume can take: it starts with a dot).
const groupsDirName = ".groups"

// membersArg is the custom-marker argument in which a source of format
// version 1 could name a group's members on the marker itself ("a,b").
const membersArg = "members"

// maxGroupErrors bounds the group errors kept for status.
const maxGroupErrors = 16

// GroupError is a group marker that could not be taken on every member, as
// status shows it.
type GroupError struct {
	Group    string    `json:"group"`
	GroupSeq uint64    `json:"group_seq"`
	Label    string    `json:"label"`
	Volume   string    `json:"volume"` // the member that reported it
	Reason   string    `json:"reason"` // member-missing, no-members, reused-id
	Error    string    `json:"error"`
	Time     time.Time `json:"time"`
}

// groups is the consistency-group barrier. A group marker (Group, GroupSeq)
// takes effect only when every member volume's destage has reached it: each
// member pauses there (its writes before the marker durable, none after it
// applied) until all have arrived; then the last to arrive takes the action
// for all members (snapshots at the same point, or hooks), persists the
// group's progress, and releases them. A group point completed before a crash
// is not taken again: its snapshots exist, and members whose cursor was still
// before it pass it without waiting.
type groups struct {
	n   *Node
	dir string

	mu     sync.Mutex
	states map[string]*groupState
	errs   []GroupError // newest last, at most maxGroupErrors
}

type groupState struct {
	Done    uint64   `json:"done"`    // id of the last group point completed
	Members []string `json:"members"` // members of the last completed marker (status)
	// At is, per member, the record sequence of the last completed point's
	// marker in that member's journal: a member that reaches that very
	// marker again (its cursor was not persisted past it before a crash)
	// passes it; any other marker is a new point, whatever its id.
	At map[string]uint64 `json:"at,omitempty"`
	// Label and Time are the label and source time of the last completed
	// point (the group's last consistent point); Snapshot and SnapshotTime
	// those of the last group snapshot (status; what promote --group
	// restores).
	Label        string    `json:"label,omitempty"`
	Time         time.Time `json:"time,omitzero"`
	Snapshot     string    `json:"snapshot,omitempty"`
	SnapshotTime time.Time `json:"snapshot_time,omitzero"`

	arrived map[uint64]map[string]*arrival // group marker id -> member -> arrival
}

type arrival struct {
	v       *volume
	rec     journal.Record
	release chan error // closed (after err is set) when the group point is done
	err     error
}

func newGroups(n *Node) *groups {
	return &groups{n: n, dir: filepath.Join(n.cfg.BufferDir, groupsDirName), states: map[string]*groupState{}}
}

// state returns the state of group g, loading it on first use. g.mu held.
func (gs *groups) state(name string) (*groupState, error) {
	if st, ok := gs.states[name]; ok {
		return st, nil
	}
	st := &groupState{arrived: map[uint64]map[string]*arrival{}}
	b, err := os.ReadFile(gs.groupFile(name))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("group %s: %w", name, err)
	default:
		if err := json.Unmarshal(b, st); err != nil {
			return nil, fmt.Errorf("group %s: bad state file: %w", name, err)
		}
	}
	gs.states[name] = st
	return st, nil
}

// members returns the member volumes of group marker r that this node
// holds: the list the marker carries (format version 2), else a version 1
// source's "members" argument, else this node's --group configuration. A
// member this node does not hold, and a marker whose members cannot be
// known, are reported (log, metric, status): never silence. gs.mu held.
func (gs *groups) members(r journal.Record, self string) []string {
	named := r.Members
	if len(named) == 0 {
		for _, a := range r.Args {
			if a.Key == membersArg {
				named = splitMembers(a.Value)
			}
		}
	}
	if len(named) == 0 {
		named = slices.Sorted(slices.Values(gs.n.cfg.Groups[r.Group]))
	}
	if len(named) == 0 {
		gs.report(r, self, "no-members", fmt.Errorf("group marker %s #%d (%s) names no members (a source of format version 1) "+
			"and group %s is not configured here (--group %s=VOL,VOL): volume %s takes it alone", r.Group, r.GroupSeq, r.Label, r.Group, r.Group, self))
		return []string{self}
	}
	var out, missing []string
	for _, m := range named {
		if _, ok := gs.n.vols[m]; ok {
			out = append(out, m)
		} else {
			missing = append(missing, m)
		}
	}
	if len(missing) > 0 {
		gs.report(r, self, "member-missing", fmt.Errorf("group marker %s #%d (%s) names member(s) %s that this node does not hold "+
			"(add them with --volume, or fix the group at the source): the group point is taken on %s only, without them",
			r.Group, r.GroupSeq, r.Label, strings.Join(missing, ","), strings.Join(out, ",")))
	}
	if !slices.Contains(out, self) {
		out = append(out, self)
		slices.Sort(out)
	}
	return out
}

// report logs, counts and keeps a group error for status. gs.mu held.
func (gs *groups) report(r journal.Record, volume, reason string, err error) {
	gs.n.metrics.groupErrors.WithLabelValues(r.Group, reason).Inc()
	gs.n.log.Error("group marker not taken on every member", "group", r.Group, "group_seq", r.GroupSeq, "label", r.Label,
		"volume", volume, "reason", reason, "err", err)
	gs.errs = append(gs.errs, GroupError{Group: r.Group, GroupSeq: r.GroupSeq, Label: r.Label, Volume: volume, Reason: reason,
		Error: err.Error(), Time: gs.n.cfg.Now()})
	if len(gs.errs) > maxGroupErrors {
		gs.errs = gs.errs[len(gs.errs)-maxGroupErrors:]
	}
}

// errorList returns the group errors kept, oldest first.
func (gs *groups) errorList() []GroupError {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return append([]GroupError(nil), gs.errs...)
}

func splitMembers(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// arrive blocks v's destage at group marker r until the group point is done
// (or ctx ends). The last member to arrive takes the action for all.
func (gs *groups) arrive(ctx context.Context, v *volume, r journal.Record) error {
	gs.mu.Lock()
	st, err := gs.state(r.Group)
	if err != nil {
		gs.mu.Unlock()
		return err
	}
	if gs.replay(st, v.name, r) {
		gs.mu.Unlock()
		return nil // completed before a crash: snapshots exist
	}
	members := gs.members(r, v.name)
	at := st.arrived[r.GroupSeq]
	if at == nil {
		at = map[string]*arrival{}
		st.arrived[r.GroupSeq] = at
	}
	me := &arrival{v: v, rec: r, release: make(chan error)}
	at[v.name] = me
	var missing []string
	for _, m := range members {
		if at[m] == nil {
			missing = append(missing, m)
		}
	}
	if len(missing) == 0 {
		delete(st.arrived, r.GroupSeq) // from now on only complete sees these arrivals
		gs.mu.Unlock()
		return gs.complete(ctx, st, r, members, at)
	}
	gs.mu.Unlock()
	v.setState(fmt.Sprintf("%s %s #%d (missing %s)", stateGroup, r.Group, r.GroupSeq, strings.Join(missing, ",")))
	select {
	case <-me.release:
		return me.err
	case <-ctx.Done():
		gs.mu.Lock()
		if cur := st.arrived[r.GroupSeq]; cur != nil && cur[v.name] == me {
			delete(cur, v.name) // still waiting: leave; once complete runs, it owns at
		}
		gs.mu.Unlock()
		return ctx.Err()
	}
}

// replay reports whether member reaches again the marker of the group
// point completed last (its cursor was not persisted past it before a
// crash). A marker with an id at or below the last completed one that is
// not that marker is reported and taken as a new point: a source whose
// group counter went back (a new or restored source buffer) must not lose
// its snapshots. gs.mu held.
func (gs *groups) replay(st *groupState, member string, r journal.Record) bool {
	if r.GroupSeq > st.Done {
		return false
	}
	if st.At == nil {
		return true // a state file of an older build: the id alone decides
	}
	if at, ok := st.At[member]; ok && r.GroupSeq == st.Done && at == r.Seq {
		return true
	}
	gs.report(r, member, "reused-id", fmt.Errorf("group marker %s #%d (%s) has an id at or below the last group point done (#%d) "+
		"and is not that point reached again (the source's group counter went back?): taken as a new group point",
		r.Group, r.GroupSeq, r.Label, st.Done))
	return false
}

// complete takes the group point's action for every member (all paused at
// the marker), persists it, and releases the members.
func (gs *groups) complete(ctx context.Context, st *groupState, r journal.Record, members []string, at map[string]*arrival) error {
	var err error
	for _, m := range members {
		a := at[m]
		if e := gs.n.markerAction(ctx, a.v, a.rec); e != nil && err == nil {
			err = e
		}
	}
	if err == nil {
		gs.mu.Lock()
		st.Done, st.Members, st.At = r.GroupSeq, members, map[string]uint64{}
		st.Label, st.Time = r.Label, r.Time
		if r.Kind == journal.KindSnapshot {
			st.Snapshot, st.SnapshotTime = r.Label, r.Time
		}
		for _, m := range members {
			st.At[m] = at[m].rec.Seq
		}
		b, _ := json.Marshal(st)
		gs.mu.Unlock()
		if e := durable.MkdirAll(gs.dir, 0o700); e != nil {
			err = e
		} else {
			err = durable.WriteFile(gs.groupFile(r.Group), b, 0o600)
		}
	}
	if err == nil {
		gs.n.log.Info("group point done", "group", r.Group, "group_seq", r.GroupSeq, "label", r.Label, "members", members)
	}
	for _, a := range at {
		a.err = err
		close(a.release)
	}
	return err
}
