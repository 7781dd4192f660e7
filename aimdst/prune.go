package aimdst

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aimwan/aimwan/internal/metrics"
)

// snapshots is the node's snapshot lifecycle: the store, the retention
// policies and the pruning loop that applies them.
type snapshots struct {
	store    *snapshotStore
	policies []RetentionPolicy
	now      func() time.Time
	log      *slog.Logger
	kick     chan struct{} // a snapshot was taken (capacity 1)
	pruned   *prometheus.CounterVec
}

func newSnapshots(cfg Config) *snapshots {
	return &snapshots{
		store: newSnapshotStore(cfg.SnapshotDir, cfg.Now), policies: cfg.Retention, now: cfg.Now, log: cfg.Logger,
		kick: make(chan struct{}, 1),
		pruned: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metrics.DstSnapshotsPruned,
			Help: "Snapshots deleted by retention."}, []string{"volume"}),
	}
}

// kicked asks the pruning loop for a pass (after a new snapshot).
func (s *snapshots) kicked() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// unit is what retention keeps or prunes as one: a volume's snapshot, or
// the member snapshots of one group point.
type unit struct {
	members []int // indexes into the inventory
	point   retPoint
}

// inventory lists every snapshot (all volume folders, sorted by volume, then
// time) and classifies each by retention: Policy, KeptBy (empty: to be
// pruned), Members of group points. It returns the units to prune and the
// next time a point kept only by its minimum age becomes due (zero: none).
func (s *snapshots) inventory() (SnapshotList, [][]int, time.Time, error) {
	now := s.now()
	l := SnapshotList{Time: now.UTC(), Snapshots: []SnapshotInfo{}}
	for _, p := range s.policies {
		l.Policies = append(l.Policies, p.String())
	}
	vols, err := s.store.volumes()
	if err != nil {
		return l, nil, time.Time{}, err
	}
	for _, v := range vols {
		si, err := s.store.list(v)
		if err != nil {
			if l.Errors == nil {
				l.Errors = map[string]string{}
			}
			l.Errors[v] = err.Error()
			continue
		}
		l.Snapshots = append(l.Snapshots, si...)
	}
	for i := range l.Snapshots {
		l.Snapshots[i].InUse = inUse(l.Snapshots[i].path)
	}
	series := s.series(l.Snapshots)
	var prune [][]int
	var due time.Time
	for _, key := range slices.Sorted(maps.Keys(series)) {
		units := series[key]
		first := l.Snapshots[units[0].members[0]]
		p := policyFor(s.policies, first.Volume, first.Group)
		var covered []unit
		for _, u := range units {
			for _, i := range u.members {
				l.Snapshots[i].KeptBy = []string{KeptUncovered}
			}
			if p != nil && p.covers(l.Snapshots[u.members[0]].Label) {
				covered = append(covered, u)
			}
		}
		if p == nil {
			continue
		}
		points := make([]retPoint, len(covered))
		for i, u := range covered {
			points[i] = u.point
		}
		for i, kept := range planRetention(points, *p, now) {
			u := covered[i]
			if len(kept) == 0 && slices.ContainsFunc(u.members, func(m int) bool { return l.Snapshots[m].InUse }) {
				kept = []string{KeptInUse}
			}
			if len(kept) == 0 {
				prune = append(prune, u.members)
			}
			if slices.Equal(kept, []string{KeptMinAge}) {
				if d := u.point.Time.Add(p.MinAge); due.IsZero() || d.Before(due) {
					due = d
				}
			}
			for _, m := range u.members {
				l.Snapshots[m].Policy = p.scope()
				l.Snapshots[m].KeptBy = kept
			}
		}
	}
	return l, prune, due, nil
}

// series groups the snapshots into retention series: "volume NAME" (plain
// snapshots, one unit each) and "group NAME" (one unit per group point:
// group, group seq and label alike; its time is its earliest member's).
// Members lists are filled in.
func (s *snapshots) series(all []SnapshotInfo) map[string][]unit {
	out := map[string][]unit{}
	points := map[string]*unit{}
	var order []string
	for i, si := range all {
		if si.Group == "" {
			key := "volume " + si.Volume
			out[key] = append(out[key], unit{members: []int{i}, point: retPoint{Time: si.sortTime(), ID: fmt.Sprintf("%020d %s", si.Seq, si.Label)}})
			continue
		}
		id := fmt.Sprintf("%020d %s", si.GroupSeq, si.Label)
		key := "group " + si.Group + "\x00" + id
		u := points[key]
		if u == nil {
			u = &unit{point: retPoint{Time: si.sortTime(), ID: id}}
			points[key] = u
			order = append(order, key)
		}
		u.members = append(u.members, i)
		if si.sortTime().Before(u.point.Time) {
			u.point.Time = si.sortTime()
		}
	}
	for _, key := range order {
		u := points[key]
		var members []string
		for _, m := range u.members {
			members = append(members, all[m].Volume)
		}
		sort.Strings(members)
		for _, m := range u.members {
			all[m].Members = members
		}
		g := "group " + all[u.members[0]].Group
		out[g] = append(out[g], *u)
	}
	return out
}

// prune runs one retention pass: it deletes every unit no class keeps (a
// group point's members together) and returns when the next pass is due
// by a minimum age (zero: none). A snapshot in use, or taken again since
// it was listed, is left for a later pass.
func (s *snapshots) prune() (time.Time, error) {
	l, units, due, err := s.inventory()
	if err != nil {
		return due, err
	}
	var errs []error
	for _, members := range units {
		for _, m := range members {
			si := l.Snapshots[m]
			err := s.store.remove(si.Volume, si.Label, &si.id)
			switch {
			case err == nil:
				s.pruned.WithLabelValues(si.Volume).Inc()
				s.log.Info("snapshot pruned by retention", "volume", si.Volume, "label", si.Label, "point_time", si.PointTime,
					"group", si.Group, "group_seq", si.GroupSeq, "policy", policyFor(s.policies, si.Volume, si.Group).scope())
			case errors.Is(err, ErrSnapshotInUse), errors.Is(err, errSnapshotChanged), errors.Is(err, ErrNoSuchSnapshot):
				s.log.Debug("snapshot not pruned this pass", "volume", si.Volume, "label", si.Label, "err", err)
			default:
				errs = append(errs, err)
			}
		}
	}
	return due, errors.Join(errs...)
}

// maxPruneWait bounds the time between retention passes.
const maxPruneWait = time.Hour

// serve applies retention at start, after every new snapshot, when a point
// kept only by its minimum age comes due, and at least hourly, until ctx
// ends. A failed pass is logged and tried again at the next occasion.
func (s *snapshots) serve(ctx context.Context) error {
	if len(s.policies) == 0 {
		return nil
	}
	for {
		due, err := s.prune()
		if err != nil {
			s.log.Warn("retention pass failed; trying again later", "err", err)
		}
		wait := maxPruneWait
		if !due.IsZero() {
			wait = min(max(due.Sub(s.now())+time.Second, time.Second), maxPruneWait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

var (
	descSnapHeld = prometheus.NewDesc(metrics.DstSnapshotsHeld,
		"Snapshots held in the snapshot folder.", []string{"volume"}, nil)
	descSnapBytes = prometheus.NewDesc(metrics.DstSnapshotBytes,
		"Bytes the snapshots' blocks take (st_blocks; reflinked extents shared with the volume count in full).", []string{"volume"}, nil)
)

// snapshotCollector exports the snapshots held per volume at scrape time.
type snapshotCollector struct {
	s    *snapshots
	vols []string // the node's volumes: exported even with no snapshot
}

var _ prometheus.Collector = snapshotCollector{}

func (c snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSnapHeld
	ch <- descSnapBytes
}

func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	vols, _ := c.s.store.volumes()
	for _, v := range c.vols {
		if !slices.Contains(vols, v) {
			vols = append(vols, v)
		}
	}
	for _, v := range vols {
		list, err := c.s.store.list(v)
		if err != nil {
			continue
		}
		var bytes int64
		for _, si := range list {
			bytes += si.AllocatedBytes
		}
		ch <- prometheus.MustNewConstMetric(descSnapHeld, prometheus.GaugeValue, float64(len(list)), v)
		ch <- prometheus.MustNewConstMetric(descSnapBytes, prometheus.GaugeValue, float64(bytes), v)
	}
}
