package aimdst

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin wherever the test runs
)

// autoLabel is the label a scheduled marker of slot t gets.
func autoLabel(t time.Time) string { return "auto-" + t.UTC().Format("20060102-1504") }

// simulate takes a snapshot every `every` from start, count times, and after
// each one applies the policy as the node does (now = the snapshot's time
// plus lag), dropping what it prunes; then, after idle more, once again. It
// returns the labels that survive, oldest first.
func simulate(t *testing.T, p RetentionPolicy, start time.Time, every time.Duration, count int, idle time.Duration, extra map[string]time.Time) []string {
	t.Helper()
	type snap struct {
		label string
		at    time.Time
	}
	var held []snap
	apply := func(now time.Time) {
		var pts []retPoint
		var idx []int
		for i, s := range held {
			if p.covers(s.label) {
				pts = append(pts, retPoint{Time: s.at, ID: s.label})
				idx = append(idx, i)
			}
		}
		drop := map[int]bool{}
		for i, kept := range planRetention(pts, p, now) {
			if len(kept) == 0 {
				drop[idx[i]] = true
			}
		}
		var next []snap
		for i, s := range held {
			if !drop[i] {
				next = append(next, s)
			}
		}
		held = next
	}
	for i := range count {
		at := start.Add(time.Duration(i) * every)
		held = append(held, snap{autoLabel(at), at})
		for label, when := range extra {
			if !when.After(at) && !when.Before(at.Add(-every)) {
				held = append(held, snap{label, when})
			}
		}
		apply(at)
	}
	if idle > 0 {
		apply(start.Add(time.Duration(count-1)*every + idle))
	}
	var out []string
	for _, s := range held {
		out = append(out, s.label)
	}
	return out
}

// hm names the auto labels of day at hh:mm times.
func hm(day string, times ...string) []string {
	var out []string
	for _, x := range times {
		out = append(out, "auto-"+day+"-"+strings.ReplaceAll(x, ":", ""))
	}
	return out
}

func mustPolicy(t *testing.T, keep string, loc *time.Location) RetentionPolicy {
	t.Helper()
	k, minAge, err := ParseKeep(keep)
	if err != nil {
		t.Fatal(err)
	}
	return RetentionPolicy{Keep: k, MinAge: minAge, Location: loc}
}

// TestRetentionSimulatedDay: a scheduled snapshot every 15 minutes for one
// day (2 December 2026, UTC), retention applied after each one; the table
// names exactly the snapshots that survive.
func TestRetentionSimulatedDay(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	hourly := func() []string {
		var out []string
		for h := range 24 {
			out = append(out, fmt.Sprintf("%02d:45", h))
		}
		return out
	}
	cases := []struct {
		name  string
		keep  string
		loc   *time.Location
		start time.Time
		count int
		idle  time.Duration
		extra map[string]time.Time // snapshots with other labels, at these times
		want  []string
	}{
		{name: "24 hourly keeps the newest of each hour", keep: "24 hourly", want: hm("20261202", hourly()...)},
		{name: "last 4 and 6 hourly", keep: "last 4, 6 hourly",
			want: hm("20261202", "18:45", "19:45", "20:45", "21:45", "22:45", "23:00", "23:15", "23:30", "23:45")},
		{name: "4 hourly and 2 daily on one day", keep: "keep 4 hourly, 2 daily",
			want: hm("20261202", "20:45", "21:45", "22:45", "23:45")},
		{name: "min-age keeps what is younger than an hour", keep: "last 2, min-age 1h",
			want: hm("20261202", "23:00", "23:15", "23:30", "23:45")},
		{name: "min-age alone, then two idle hours: the newest stays", keep: "min-age 30m", idle: 2 * time.Hour,
			want: hm("20261202", "23:45")},
		{name: "a label no policy covers is kept", keep: "2 hourly",
			extra: map[string]time.Time{"before-upgrade": day.Add(12*time.Hour + 5*time.Minute)},
			want:  append([]string{"before-upgrade"}, hm("20261202", "22:45", "23:45")...)},
		{name: "3 daily in UTC over a day and a half", keep: "3 daily", start: day.Add(-12 * time.Hour), count: 36 * 4,
			want: append(hm("20261201", "23:45"), hm("20261202", "23:45")...)},
		{name: "3 daily in Europe/Berlin: the local day ends at 23:00 UTC", keep: "3 daily", loc: berlin,
			start: day.Add(-12 * time.Hour), count: 36 * 4,
			want: append(hm("20261201", "22:45"), hm("20261202", "22:45", "23:45")...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start, count := c.start, c.count
			if start.IsZero() {
				start, count = day, 96
			}
			got := simulate(t, mustPolicy(t, c.keep, c.loc), start, 15*time.Minute, count, c.idle, c.extra)
			if !slices.Equal(got, c.want) {
				t.Fatalf("survivors:\n got %v\nwant %v", got, c.want)
			}
		})
	}
}

// TestRetentionSimulatedMonth: an hourly snapshot from 15 November to 31
// December 2026 (UTC) under "24 hourly, 7 daily, 4 weekly, 3 monthly".
func TestRetentionSimulatedMonth(t *testing.T) {
	start := time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC)
	count := int(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).Sub(start) / time.Hour)
	var want []string
	want = append(want, hm("20261130", "23:00")...) // monthly: November's newest
	want = append(want, hm("20261213", "23:00")...) // weekly: ISO week 50 ends Sunday 13th
	want = append(want, hm("20261220", "23:00")...) // weekly: week 51
	for d := 25; d <= 30; d++ {                     // daily: the 7 newest days (31st below); 27th is also week 52's
		want = append(want, hm(fmt.Sprintf("202612%02d", d), "23:00")...)
	}
	for h := range 24 { // hourly: the last 24 hours; 23:00 is also daily, weekly (53) and monthly
		want = append(want, hm("20261231", fmt.Sprintf("%02d:00", h))...)
	}
	got := simulate(t, mustPolicy(t, "24 hourly, 7 daily, 4 weekly, 3 monthly", nil), start, time.Hour, count, 0, nil)
	if !slices.Equal(got, want) {
		t.Fatalf("survivors (%d):\n got %v\nwant %v (%d)", len(got), got, want, len(want))
	}
	// Applied once at the end to everything, the policy keeps the same.
	var pts []retPoint
	for i := range count {
		at := start.Add(time.Duration(i) * time.Hour)
		pts = append(pts, retPoint{Time: at, ID: autoLabel(at)})
	}
	var once []string
	for i, kept := range planRetention(pts, mustPolicy(t, "24 hourly, 7 daily, 4 weekly, 3 monthly", nil), pts[len(pts)-1].Time) {
		if len(kept) > 0 {
			once = append(once, pts[i].ID)
		}
	}
	if !slices.Equal(once, want) {
		t.Fatalf("applied once: %v", once)
	}
}

// TestRetentionClasses: which classes keep which point, as list shows them.
func TestRetentionClasses(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	pts := []retPoint{
		{Time: at("2026-12-01 10:00"), ID: "a"},
		{Time: at("2026-12-02 09:00"), ID: "b"},
		{Time: at("2026-12-02 09:30"), ID: "c"},
		{Time: at("2026-12-02 10:10"), ID: "d"},
	}
	got := planRetention(pts, mustPolicy(t, "last 1, 2 hourly, 2 daily, min-age 50m", nil), at("2026-12-02 10:30"))
	want := [][]string{{KeptDaily}, nil, {KeptHourly}, {KeptLast, KeptHourly, KeptDaily, KeptMinAge}}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("%s: kept by %v, want %v", pts[i].ID, got[i], want[i])
		}
	}
	// Equal times: the larger ID is the newer.
	tie := planRetention([]retPoint{{Time: at("2026-12-02 10:00"), ID: "x1"}, {Time: at("2026-12-02 10:00"), ID: "x2"}},
		mustPolicy(t, "last 1", nil), at("2026-12-02 11:00"))
	if len(tie[0]) != 0 || !slices.Equal(tie[1], []string{KeptLast}) {
		t.Errorf("tie: %v", tie)
	}
}

// TestRetentionDaylightSaving: in Europe/Berlin the wall-clock hour 02:00
// repeats on 25 October 2026 (00:00-02:00 UTC); "hourly" buckets by the
// wall clock, so the two 02:xx hours are one bucket, and a day of 25 hours
// is one daily bucket.
func TestRetentionDaylightSaving(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	var pts []retPoint
	// Hourly from 23:30 UTC on the 24th; on Berlin's wall clock: 01:30
	// CEST, 02:30 CEST, 02:30 CET, 03:30 CET, 04:30 CET.
	for i := range 5 {
		pts = append(pts, retPoint{Time: time.Date(2026, 10, 24, 23, 30, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour), ID: fmt.Sprint(i)})
	}
	got := planRetention(pts, mustPolicy(t, "10 hourly", berlin), pts[4].Time)
	want := [][]string{{KeptHourly}, nil, {KeptHourly}, {KeptHourly}, {KeptHourly}}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("point %d (%s Berlin): kept by %v, want %v", i, pts[i].Time.In(berlin).Format("15:04 MST"), got[i], want[i])
		}
	}
	utc := planRetention(pts, mustPolicy(t, "10 hourly", nil), pts[4].Time)
	for i := range utc {
		if !slices.Equal(utc[i], []string{KeptHourly}) {
			t.Errorf("point %d in UTC: kept by %v, want hourly", i, utc[i])
		}
	}
	// 25 October has 25 hours in Berlin: one daily bucket from 22:00 UTC
	// on the 24th to 23:00 UTC on the 25th.
	day := []retPoint{
		{Time: time.Date(2026, 10, 24, 22, 30, 0, 0, time.UTC), ID: "a"}, // 00:30 CEST on the 25th
		{Time: time.Date(2026, 10, 25, 22, 30, 0, 0, time.UTC), ID: "b"}, // 23:30 CET on the 25th
		{Time: time.Date(2026, 10, 25, 23, 30, 0, 0, time.UTC), ID: "c"}, // 00:30 on the 26th
	}
	got = planRetention(day, mustPolicy(t, "5 daily", berlin), day[2].Time)
	if want := [][]string{nil, {KeptDaily}, {KeptDaily}}; !slices.Equal(got[0], want[0]) || !slices.Equal(got[1], want[1]) || !slices.Equal(got[2], want[2]) {
		t.Errorf("daily across the 25-hour day: %v, want %v", got, want)
	}
}

func TestParseKeep(t *testing.T) {
	cases := []struct {
		in     string
		want   Keep
		minAge time.Duration
		err    string
	}{
		{in: "24 hourly, 7 daily, 4 weekly", want: Keep{Hourly: 24, Daily: 7, Weekly: 4}},
		{in: "keep last 3, 12 monthly, 2 yearly, min-age 2h", want: Keep{Last: 3, Monthly: 12, Yearly: 2}, minAge: 2 * time.Hour},
		{in: "", err: "empty"},
		{in: "keep", err: "empty"},
		{in: "24 hourlies", err: `unknown class "hourlies"`},
		{in: "hourly 24", err: `unknown class "24"`},
		{in: "0 daily", err: "count from 1"},
		{in: "-1 daily", err: "count from 1"},
		{in: "24 hourly, 2 hourly", err: "hourly given twice"},
		{in: "min-age soon", err: "positive duration"},
		{in: "min-age -1h", err: "positive duration"},
		{in: "24 hourly 7 daily", err: "want \"last N\""},
	}
	for _, c := range cases {
		k, minAge, err := ParseKeep(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseKeep(%q): err %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || k != c.want || minAge != c.minAge {
			t.Errorf("ParseKeep(%q) = %+v, %v, %v; want %+v, %v", c.in, k, minAge, err, c.want, c.minAge)
		}
		if k2, _, err := ParseKeep(k.String()); err != nil || k2 != k {
			t.Errorf("round trip of %q through %q: %+v, %v", c.in, k.String(), k2, err)
		}
	}
}

func TestValidateRetention(t *testing.T) {
	vols := map[string]bool{"a": true, "b": true}
	k := Keep{Hourly: 1}
	cases := []struct {
		name string
		ps   []RetentionPolicy
		err  string
	}{
		{name: "ok", ps: []RetentionPolicy{{Keep: k}, {Volumes: []string{"a"}, Keep: k}, {Group: "g", Keep: k}}},
		{name: "two defaults", ps: []RetentionPolicy{{Keep: k}, {Keep: k}}, err: "two policies for default"},
		{name: "volume twice", ps: []RetentionPolicy{{Volumes: []string{"a"}, Keep: k}, {Volumes: []string{"b", "a"}, Keep: k}}, err: "two policies for volume a"},
		{name: "unknown volume", ps: []RetentionPolicy{{Volumes: []string{"c"}, Keep: k}}, err: `"c" is not a volume`},
		{name: "volumes and group", ps: []RetentionPolicy{{Volumes: []string{"a"}, Group: "g", Keep: k}}, err: "not both"},
		{name: "keeps nothing", ps: []RetentionPolicy{{}}, err: "keeps nothing"},
		{name: "bad match", ps: []RetentionPolicy{{Keep: k, Match: "auto-["}}, err: "match"},
		{name: "bad group", ps: []RetentionPolicy{{Group: "../x", Keep: k}}, err: "group"},
	}
	for _, c := range cases {
		err := validateRetention(c.ps, vols)
		if (c.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: err %v, want %q", c.name, err, c.err)
		}
	}
}
