package aimdst

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// GroupStatus is the replication state of one consistency group, as status
// shows it: how current its members are together, and its last consistent
// point (the last group marker taken on every member).
type GroupStatus struct {
	Group   string   `json:"group"`
	Members []string `json:"members"` // members held here (of the last completed point, or configured)
	// CompleteUntil is the oldest of the members' CompleteUntil: every
	// member is complete up to it. TimeLatency is now minus it (0 before
	// every member has destaged a file).
	CompleteUntil time.Time `json:"complete_until,omitzero"`
	TimeLatency   float64   `json:"time_latency_s"`
	// ConsistentPoint and ConsistentPointTime are the label and source time
	// of the last group marker taken on every member: the newest point at
	// which the members are consistent with each other.
	ConsistentPoint     string    `json:"consistent_point,omitempty"`
	ConsistentPointTime time.Time `json:"consistent_point_time,omitzero"`
	// LastSnapshot and LastSnapshotTime are the label and source time of
	// the last group snapshot.
	LastSnapshot     string    `json:"last_snapshot,omitempty"`
	LastSnapshotTime time.Time `json:"last_snapshot_time,omitzero"`
}

// latency is now minus t in seconds, never negative (source and
// destination clocks differ a little); 0 when t is unset.
func latency(now, t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return max(now.Sub(t).Seconds(), 0)
}

// groupStatus returns the state of every group this node knows: configured
// (--group) or seen in a group marker. vols are the volumes' statuses.
func (n *Node) groupStatus(now time.Time, vols []VolumeStatus) []GroupStatus {
	byName := map[string]VolumeStatus{}
	for _, v := range vols {
		byName[v.Volume] = v
	}
	gs := n.groups
	gs.mu.Lock()
	names := map[string]bool{}
	for g := range n.cfg.Groups {
		names[g] = true
	}
	if entries, err := os.ReadDir(gs.dir); err == nil {
		for _, e := range entries {
			if g, ok := strings.CutSuffix(e.Name(), ".json"); ok {
				names[g] = true
			}
		}
	}
	var out []GroupStatus
	for g := range names {
		st, err := gs.state(g)
		if err != nil {
			continue // a bad state file is reported when its group's next marker arrives
		}
		members := st.Members
		if len(members) == 0 {
			members = n.cfg.Groups[g]
		}
		s := GroupStatus{Group: g, ConsistentPoint: st.Label, ConsistentPointTime: st.Time,
			LastSnapshot: st.Snapshot, LastSnapshotTime: st.SnapshotTime}
		complete := true
		for _, m := range members {
			v, ok := byName[m]
			if !ok {
				continue
			}
			s.Members = append(s.Members, m)
			switch {
			case v.CompleteUntil.IsZero():
				complete = false
			case s.CompleteUntil.IsZero() || v.CompleteUntil.Before(s.CompleteUntil):
				s.CompleteUntil = v.CompleteUntil
			}
		}
		if !complete {
			s.CompleteUntil = time.Time{}
		}
		s.TimeLatency = latency(now, s.CompleteUntil)
		out = append(out, s)
	}
	gs.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out
}

// groupFile is where a group's state is kept (see groups).
func (gs *groups) groupFile(name string) string { return filepath.Join(gs.dir, name+".json") }
