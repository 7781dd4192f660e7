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

	"github.com/aimwan/aimwan/internal/durable"
	"github.com/aimwan/aimwan/journal"
)

// groupsDirName holds the persisted state of consistency groups inside the
// buffer folder (a name no volume can take: it starts with a dot).
const groupsDirName = ".groups"

// membersArg is the custom-marker style argument in which a source may name
// a group's members on the marker itself ("a,b"); it overrides the config.
const membersArg = "members"

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
	warned map[string]bool // unconfigured groups already logged
}

type groupState struct {
	Done    uint64   `json:"done"`    // highest group marker id completed
	Members []string `json:"members"` // members of the last completed marker (status)

	arrived map[uint64]map[string]*arrival // group marker id -> member -> arrival
}

type arrival struct {
	v       *volume
	rec     journal.Record
	release chan error // closed (after err is set) when the group point is done
	err     error
}

func newGroups(n *Node) *groups {
	return &groups{n: n, dir: filepath.Join(n.cfg.BufferDir, groupsDirName), states: map[string]*groupState{}, warned: map[string]bool{}}
}

// state returns the state of group g, loading it on first use. g.mu held.
func (gs *groups) state(name string) (*groupState, error) {
	if st, ok := gs.states[name]; ok {
		return st, nil
	}
	st := &groupState{arrived: map[uint64]map[string]*arrival{}}
	b, err := os.ReadFile(filepath.Join(gs.dir, name+".json"))
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

// members returns the member volumes of marker r: its "members" argument
// (less the volumes this node does not hold: they can never arrive here), or
// the configured group, or (unknown group) just the arriving volume. gs.mu
// held.
func (gs *groups) members(r journal.Record, self string) []string {
	for _, a := range r.Args {
		if a.Key == membersArg {
			m := gs.held(r, splitMembers(a.Value))
			if len(m) > 0 {
				return m
			}
		}
	}
	if m := gs.n.cfg.Groups[r.Group]; len(m) > 0 {
		return slices.Sorted(slices.Values(m))
	}
	if !gs.warned[r.Group] {
		gs.warned[r.Group] = true
		gs.n.log.Warn("group marker of a group not configured here (--group NAME=VOL,VOL): each volume takes it alone",
			"group", r.Group, "volume", self)
	}
	return []string{self}
}

// held returns the members that are volumes of this node, and logs the
// others. gs.mu held.
func (gs *groups) held(r journal.Record, members []string) []string {
	var out, unknown []string
	for _, m := range members {
		if _, ok := gs.n.vols[m]; ok {
			out = append(out, m)
		} else {
			unknown = append(unknown, m)
		}
	}
	if len(unknown) > 0 {
		gs.n.log.Warn("group marker names members this node does not hold; not waiting for them",
			"group", r.Group, "group_seq", r.GroupSeq, "unknown", unknown)
	}
	return out
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
	if r.GroupSeq <= st.Done {
		gs.mu.Unlock()
		return nil // completed before a crash: snapshots exist
	}
	members := gs.members(r, v.name)
	if !slices.Contains(members, v.name) {
		gs.n.log.Warn("group marker on a volume that is not a member; treated as a member", "volume", v.name, "group", r.Group, "members", members)
		members = append(members, v.name)
	}
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
		st.Done, st.Members = r.GroupSeq, members
		b, _ := json.Marshal(st)
		gs.mu.Unlock()
		if e := durable.MkdirAll(gs.dir, 0o755); e != nil {
			err = e
		} else {
			err = durable.WriteFile(filepath.Join(gs.dir, r.Group+".json"), b, 0o600)
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
