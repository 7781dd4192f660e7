package aimsrc

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
)

// DefaultSchedulePrefix is the label prefix of scheduled snapshot markers:
// labels are PREFIX-YYYYMMDD-HHMM (UTC), the default pattern the
// destination's retention policies govern ("auto-*").
const DefaultSchedulePrefix = "auto"

// MinScheduleEvery is the shortest schedule interval.
const MinScheduleEvery = time.Second

// Results of a schedule slot (the result label of SrcScheduledMarkers).
const (
	SlotPlaced  = "placed"
	SlotSkipped = "skipped"
	SlotFailed  = "failed"
)

// ScheduleConfig is a scheduled snapshot marker: every Every, at times
// aligned to the clock (multiples of Every since 1970-01-01 00:00 UTC, so
// 15m gives :00, :15, :30 and :45, and 24h midnight UTC), a snapshot marker
// on Volume, or atomically on every member of Group.
type ScheduleConfig struct {
	Volume string // exactly one of Volume and Group
	Group  string
	// Every is the interval: at least MinScheduleEvery, in whole seconds.
	Every time.Duration
	// Prefix starts the labels (default DefaultSchedulePrefix).
	Prefix string
}

// target names the schedule's volume, or its group as "group:NAME".
func (sc ScheduleConfig) target() string {
	if sc.Group != "" {
		return "group:" + sc.Group
	}
	return sc.Volume
}

func (sc ScheduleConfig) prefix() string {
	if sc.Prefix == "" {
		return DefaultSchedulePrefix
	}
	return sc.Prefix
}

// Label is the marker label of the slot starting at t: PREFIX-YYYYMMDD-HHMM
// in UTC, with seconds (-HHMMSS) when Every is not whole minutes.
func (sc ScheduleConfig) Label(t time.Time) string {
	layout := "20060102-1504"
	if sc.Every%time.Minute != 0 {
		layout = "20060102-150405"
	}
	return sc.prefix() + "-" + t.UTC().Format(layout)
}

// slot returns the start of the slot t falls in.
func (sc ScheduleConfig) slot(t time.Time) time.Time {
	ns := t.UnixNano()
	return time.Unix(0, ns-ns%int64(sc.Every)).UTC()
}

// ParseSchedule parses a --schedule value: TARGET=EVERY[,prefix=P], where
// TARGET is a volume or group:NAME ("db=15m", "group:app=1h,prefix=hourly").
func ParseSchedule(s string) (ScheduleConfig, error) {
	target, rest, ok := strings.Cut(s, "=")
	if !ok || target == "" || rest == "" {
		return ScheduleConfig{}, fmt.Errorf("%w: --schedule %q: want VOLUME=EVERY or group:NAME=EVERY[,prefix=P]", ErrConfig, s)
	}
	var sc ScheduleConfig
	if g, isGroup := strings.CutPrefix(target, "group:"); isGroup {
		if g == "" {
			return ScheduleConfig{}, fmt.Errorf("%w: --schedule %q: group:NAME wants a group name", ErrConfig, s)
		}
		sc.Group = g
	} else {
		sc.Volume = target
	}
	parts := strings.Split(rest, ",")
	d, err := time.ParseDuration(parts[0])
	if err != nil {
		return ScheduleConfig{}, fmt.Errorf("%w: --schedule %q: interval %q: want a duration such as 15m", ErrConfig, s, parts[0])
	}
	sc.Every = d
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		if k != "prefix" || v == "" {
			return ScheduleConfig{}, fmt.Errorf("%w: --schedule %q: unknown option %q (want prefix=P)", ErrConfig, s, p)
		}
		sc.Prefix = v
	}
	return sc, nil
}

// validateSchedules checks the schedules against the volumes and groups.
func (c Config) validateSchedules(volumes map[string]bool) error {
	groups := map[string]bool{}
	for _, g := range c.Groups {
		groups[g.Name] = true
	}
	seen := map[string]bool{}
	for _, sc := range c.Schedules {
		name := "--schedule " + sc.target()
		switch {
		case (sc.Volume == "") == (sc.Group == ""):
			return fmt.Errorf("%w: %s: give a volume or a group", ErrConfig, name)
		case sc.Volume != "" && !volumes[sc.Volume]:
			return fmt.Errorf("%w: %s: unknown volume %q", ErrConfig, name, sc.Volume)
		case sc.Group != "" && !groups[sc.Group]:
			return fmt.Errorf("%w: %s: unknown group %q", ErrConfig, name, sc.Group)
		case sc.Every < MinScheduleEvery || sc.Every%time.Second != 0:
			return fmt.Errorf("%w: %s: interval %s: want whole seconds, at least %s", ErrConfig, name, sc.Every, MinScheduleEvery)
		}
		if err := journal.ValidName(sc.Label(time.Now())); err != nil {
			return fmt.Errorf("%w: %s: prefix %q: %w", ErrConfig, name, sc.prefix(), err)
		}
		key := sc.target() + " " + sc.prefix()
		if seen[key] {
			return fmt.Errorf("%w: %s: two schedules with prefix %q (their labels would collide)", ErrConfig, name, sc.prefix())
		}
		seen[key] = true
	}
	return nil
}

// scheduleState is the persisted progress of a schedule.
type scheduleState struct {
	LastSlot time.Time `json:"last_slot"` // the last slot handled (placed, skipped or failed)
}

// statePath is where a schedule's progress is kept in the source buffer.
func (sc ScheduleConfig) statePath(buffer string) string {
	name := sc.Volume
	if sc.Group != "" {
		name = sc.Group // group and volume names never collide (validateGroups)
	}
	return filepath.Join(buffer, name+"."+sc.prefix()+".schedule")
}

// newScheduleMetric is the counter of schedule slots.
func newScheduleMetric() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: metrics.SrcScheduledMarkers,
		Help: "Slots of scheduled snapshot markers, by result (placed, skipped, failed)."}, []string{"target", "result"})
}

// serveSchedule places sc's markers until ctx ends. After a restart it
// waits for the next slot: slots missed while the node was down are not
// made up (no burst of catch-up markers), and a slot handled before the
// restart is never handled again, even when the clock went back.
func (n *Node) serveSchedule(ctx context.Context, sc ScheduleConfig) error {
	path := sc.statePath(n.cfg.Buffer)
	var st scheduleState
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("schedule %s: %w", sc.target(), err)
	default:
		if err := json.Unmarshal(b, &st); err != nil {
			n.log.Warn("schedule state unreadable; starting afresh", "schedule", sc.target(), "file", path, "err", err)
		}
	}
	for _, r := range []string{SlotPlaced, SlotSkipped, SlotFailed} {
		n.schedMetric.WithLabelValues(sc.target(), r)
	}
	n.log.Info("scheduled snapshot markers", "target", sc.target(), "every", sc.Every, "prefix", sc.prefix(),
		"next", sc.Label(sc.slot(n.cfg.Now()).Add(sc.Every)))
	for {
		now := n.cfg.Now()
		next := sc.slot(now).Add(sc.Every)
		if !next.After(st.LastSlot) {
			next = st.LastSlot.Add(sc.Every)
		}
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		slot := sc.slot(n.cfg.Now())
		if !slot.After(st.LastSlot) {
			continue
		}
		n.placeScheduled(sc, slot)
		st.LastSlot = slot
		b, _ := json.Marshal(st)
		if err := durable.WriteFile(path, append(b, '\n'), 0o600); err != nil {
			return fmt.Errorf("schedule %s: store progress: %w", sc.target(), err)
		}
	}
}

// placeScheduled places the marker of one slot, or skips it while a member
// volume is initializing or not consistent (pull-ahead, resync): a snapshot
// there would not be a consistent point.
func (n *Node) placeScheduled(sc ScheduleConfig, slot time.Time) {
	label := sc.Label(slot)
	members := []string{sc.Volume}
	if sc.Group != "" {
		members = groupMembers(n.groups[sc.Group])
	}
	for _, m := range members {
		if v := n.vols[m]; v != nil && v.initJob.status().Running {
			n.schedMetric.WithLabelValues(sc.target(), SlotSkipped).Inc()
			n.log.Info("scheduled marker skipped: the volume is initializing", "target", sc.target(), "label", label, "volume", m)
			return
		}
	}
	req := MarkerRequest{Volume: sc.Volume, Group: sc.Group, Kind: MarkerSnapshot, Label: label}
	_, err := n.Marker(req)
	switch {
	case err == nil:
		n.schedMetric.WithLabelValues(sc.target(), SlotPlaced).Inc()
	case errors.Is(err, ErrNotConsistent):
		n.schedMetric.WithLabelValues(sc.target(), SlotSkipped).Inc()
		n.log.Info("scheduled marker skipped", "target", sc.target(), "label", label, "reason", err)
	default:
		n.schedMetric.WithLabelValues(sc.target(), SlotFailed).Inc()
		n.log.Warn("scheduled marker failed", "target", sc.target(), "label", label, "err", err)
	}
}
