package aimdst

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aimwan/aimwan/journal"
)

// Keep counts what a retention policy keeps (grandfather-father-son, as
// restic's and borg's "forget/prune --keep-*" count them): Last keeps the
// newest N points; each calendar class keeps the newest point of each of its
// N most recent buckets that hold a point (an hour, day, ISO week, month or
// year with no point does not use up a bucket). Zero means none of that
// class.
type Keep struct {
	Last    int `json:"last,omitempty"`
	Hourly  int `json:"hourly,omitempty"`
	Daily   int `json:"daily,omitempty"`
	Weekly  int `json:"weekly,omitempty"`
	Monthly int `json:"monthly,omitempty"`
	Yearly  int `json:"yearly,omitempty"`
}

// Retention classes: the reasons a point is kept, as list shows them.
const (
	KeptLast    = "last"
	KeptHourly  = "hourly"
	KeptDaily   = "daily"
	KeptWeekly  = "weekly"
	KeptMonthly = "monthly"
	KeptYearly  = "yearly"
	KeptMinAge  = "min-age" // younger than the policy's minimum age
	KeptNewest  = "newest"  // the newest point of its volume or group is never pruned
	KeptInUse   = "in-use"  // due for pruning, but exported over NBD or used by a test clone
	// KeptUncovered: no policy governs this volume or group, or its label
	// does not match the policy's Match: never pruned.
	KeptUncovered = "not-covered"
)

// calendarClasses are the bucketed classes, finest first.
var calendarClasses = []string{KeptHourly, KeptDaily, KeptWeekly, KeptMonthly, KeptYearly}

// DefaultRetentionMatch is the label pattern a policy governs when it names
// none: the labels of scheduled snapshot markers (aimwan src --schedule).
// A label of an operator's own marker ("before-upgrade") is not pruned
// unless a policy's Match covers it.
const DefaultRetentionMatch = "auto-*"

// RetentionPolicy is a retention rule for snapshots at the destination.
// Its scope is set by Volumes or Group, or neither (the default policy):
//
//   - Volumes: the snapshots of these volumes taken at plain (non-group)
//     snapshot markers, each volume on its own;
//   - Group: the group points of this consistency group: a point's member
//     snapshots are kept or pruned together;
//   - neither: every volume and group that no other policy names.
//
// Snapshots taken at group markers follow the group's policy (or the
// default), never a volume's, so members are never split up.
type RetentionPolicy struct {
	Volumes []string `json:"volumes,omitempty"`
	Group   string   `json:"group,omitempty"`
	// Match is the label pattern (path.Match glob) of the snapshots the
	// policy may prune; others are kept. Default DefaultRetentionMatch.
	Match string `json:"match"`
	Keep  Keep   `json:"keep"`
	// MinAge: a point younger than this (by its source time) is never
	// pruned.
	MinAge time.Duration `json:"min_age,omitempty"`
	// Location is the calendar of the buckets (hours, days, ISO weeks
	// starting Monday, months, years); nil means UTC.
	Location *time.Location `json:"-"`
}

// ParseKeep parses a keep list such as "keep last 4, 24 hourly, 7 daily,
// 4 weekly, min-age 1h": comma-separated items "last N", "N hourly",
// "N daily", "N weekly", "N monthly", "N yearly" and "min-age DURATION"; a
// leading "keep" is allowed. Each item at most once.
func ParseKeep(s string) (Keep, time.Duration, error) {
	var k Keep
	var minAge time.Duration
	body := strings.TrimSpace(s)
	body = strings.TrimSpace(strings.TrimPrefix(body, "keep "))
	if body == "" || body == "keep" {
		return k, 0, fmt.Errorf("keep %q: empty (want e.g. \"24 hourly, 7 daily, 4 weekly\")", s)
	}
	seen := map[string]bool{}
	for _, item := range strings.Split(body, ",") {
		f := strings.Fields(item)
		if len(f) != 2 {
			return k, 0, fmt.Errorf("keep %q: item %q: want \"last N\", \"N hourly|daily|weekly|monthly|yearly\" or \"min-age DURATION\"", s, strings.TrimSpace(item))
		}
		class, arg := f[1], f[0]
		if f[0] == "last" || f[0] == "min-age" {
			class, arg = f[0], f[1]
		}
		if seen[class] {
			return k, 0, fmt.Errorf("keep %q: %s given twice", s, class)
		}
		seen[class] = true
		if class == "min-age" {
			d, err := time.ParseDuration(arg)
			if err != nil || d <= 0 {
				return k, 0, fmt.Errorf("keep %q: min-age %q: want a positive duration such as 2h", s, arg)
			}
			minAge = d
			continue
		}
		dst := map[string]*int{KeptLast: &k.Last, KeptHourly: &k.Hourly, KeptDaily: &k.Daily, KeptWeekly: &k.Weekly,
			KeptMonthly: &k.Monthly, KeptYearly: &k.Yearly}[class]
		if dst == nil {
			return k, 0, fmt.Errorf("keep %q: item %q: unknown class %q (want last, hourly, daily, weekly, monthly, yearly, min-age)",
				s, strings.TrimSpace(item), class)
		}
		n, err := strconv.Atoi(arg)
		if err != nil || n <= 0 || n > 100000 {
			return k, 0, fmt.Errorf("keep %q: item %q: want a count from 1 to 100000", s, strings.TrimSpace(item))
		}
		*dst = n
	}
	return k, minAge, nil
}

// String is the keep list in ParseKeep's form.
func (k Keep) String() string {
	var parts []string
	if k.Last > 0 {
		parts = append(parts, fmt.Sprintf("last %d", k.Last))
	}
	for i, n := range k.counts() {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, calendarClasses[i]))
		}
	}
	return strings.Join(parts, ", ")
}

// counts returns the calendar classes' counts, in calendarClasses order.
func (k Keep) counts() []int { return []int{k.Hourly, k.Daily, k.Weekly, k.Monthly, k.Yearly} }

// String describes the policy's scope and rule.
func (p RetentionPolicy) String() string {
	s := p.Keep.String()
	if p.MinAge > 0 {
		s += ", min-age " + p.MinAge.String()
	}
	return fmt.Sprintf("%s: keep %s of labels %s (%s)", p.scope(), s, p.match(), p.location())
}

func (p RetentionPolicy) scope() string {
	switch {
	case p.Group != "":
		return "group " + p.Group
	case len(p.Volumes) > 0:
		return "volume " + strings.Join(p.Volumes, ",")
	}
	return "default"
}

func (p RetentionPolicy) match() string {
	if p.Match == "" {
		return DefaultRetentionMatch
	}
	return p.Match
}

func (p RetentionPolicy) location() *time.Location {
	if p.Location == nil {
		return time.UTC
	}
	return p.Location
}

// covers reports whether the policy may prune a snapshot with label.
func (p RetentionPolicy) covers(label string) bool {
	ok, err := path.Match(p.match(), label)
	return err == nil && ok
}

// validate checks one policy; volumes are the node's volume names.
func (p RetentionPolicy) validate(volumes map[string]bool) error {
	if p.Group != "" && len(p.Volumes) > 0 {
		return fmt.Errorf("retention %s: give volumes or a group, not both", p.scope())
	}
	if p.Group != "" {
		if err := journal.ValidName(p.Group); err != nil {
			return fmt.Errorf("retention: group: %w", err)
		}
	}
	for _, v := range p.Volumes {
		if !volumes[v] {
			return fmt.Errorf("retention %s: %q is not a volume of this node", p.scope(), v)
		}
	}
	if _, err := path.Match(p.match(), ""); err != nil {
		return fmt.Errorf("retention %s: match %q: %w", p.scope(), p.Match, err)
	}
	k := p.Keep
	if k.Last < 0 || slices.ContainsFunc(k.counts(), func(n int) bool { return n < 0 }) || p.MinAge < 0 {
		return fmt.Errorf("retention %s: negative count or minimum age", p.scope())
	}
	if k == (Keep{}) && p.MinAge == 0 {
		return fmt.Errorf("retention %s: keeps nothing but the newest point: give counts (e.g. \"24 hourly, 7 daily\") or a min-age", p.scope())
	}
	return nil
}

// validateRetention checks the policies together: at most one policy per
// volume, per group, and one default.
func validateRetention(policies []RetentionPolicy, volumes map[string]bool) error {
	seen := map[string]bool{}
	for _, p := range policies {
		if err := p.validate(volumes); err != nil {
			return err
		}
		keys := []string{"default"}
		switch {
		case p.Group != "":
			keys = []string{"group " + p.Group}
		case len(p.Volumes) > 0:
			keys = nil
			for _, v := range p.Volumes {
				keys = append(keys, "volume "+v)
			}
		}
		for _, k := range keys {
			if seen[k] {
				return fmt.Errorf("retention: two policies for %s", k)
			}
			seen[k] = true
		}
	}
	return nil
}

// policyFor returns the policy governing a series: a group's points (group
// set) or a volume's plain snapshots; nil when none does.
func policyFor(policies []RetentionPolicy, volume, group string) *RetentionPolicy {
	var def *RetentionPolicy
	for i := range policies {
		p := &policies[i]
		switch {
		case p.Group == "" && len(p.Volumes) == 0:
			def = p
		case group != "" && p.Group == group:
			return p
		case group == "" && slices.Contains(p.Volumes, volume):
			return p
		}
	}
	return def
}

// retPoint is one unit of retention: a volume's snapshot, or a group point
// (the member snapshots of one group marker).
type retPoint struct {
	Time time.Time // source time of the point
	ID   string    // ties between equal times are broken by ID, larger = newer
}

// planRetention decides, for points of one series (one volume's snapshots,
// or one group's points) that policy p covers, which are kept: the result
// holds, per point (same index), the classes that keep it; an empty list
// means prune. now is the clock for MinAge. The newest point is always
// kept. Each calendar class walks the points newest first and keeps the
// first point it meets in each new bucket (so the newest of the bucket)
// until it has kept its count of buckets.
func planRetention(points []retPoint, p RetentionPolicy, now time.Time) [][]string {
	kept := make([][]string, len(points))
	order := make([]int, len(points))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { // newest first
		if c := points[b].Time.Compare(points[a].Time); c != 0 {
			return c
		}
		return strings.Compare(points[b].ID, points[a].ID)
	})
	for rank, i := range order {
		if rank < p.Keep.Last {
			kept[i] = append(kept[i], KeptLast)
		}
	}
	loc := p.location()
	for c, n := range p.Keep.counts() {
		last, buckets := "", 0
		for _, i := range order {
			if buckets >= n {
				break
			}
			if b := bucket(calendarClasses[c], points[i].Time.In(loc)); b != last {
				last = b
				buckets++
				kept[i] = append(kept[i], calendarClasses[c])
			}
		}
	}
	for _, i := range order {
		if p.MinAge > 0 && now.Sub(points[i].Time) < p.MinAge {
			kept[i] = append(kept[i], KeptMinAge)
		}
	}
	if len(order) > 0 && len(kept[order[0]]) == 0 {
		kept[order[0]] = []string{KeptNewest}
	}
	return kept
}

// bucket names the calendar bucket of class that t (in the policy's
// location) falls in: its hour, day, ISO week, month or year, on the wall
// clock of that location (so in a zone with daylight saving time the
// repeated hour of the autumn change is one bucket).
func bucket(class string, t time.Time) string {
	switch class {
	case KeptHourly:
		return t.Format("2006-01-02T15")
	case KeptDaily:
		return t.Format("2006-01-02")
	case KeptWeekly:
		y, w := t.ISOWeek()
		return fmt.Sprintf("%d-W%02d", y, w)
	case KeptMonthly:
		return t.Format("2006-01")
	}
	return t.Format("2006")
}
