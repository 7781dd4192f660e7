package transport

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// monday is a Monday 00:00 UTC.
var monday = time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)

func at(day, hh, mm int) time.Time {
	return monday.Add(time.Duration(day)*24*time.Hour + time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute)
}

func TestParseSchedule(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name  string
		text  string
		check map[time.Time]float64
	}{
		{"empty is unlimited", "", map[time.Time]float64{at(0, 0, 0): inf, at(6, 23, 59): inf}},
		{"office hours", "timezone UTC\nmon-fri 08:00-18:00 2mbit # office", map[time.Time]float64{
			at(0, 7, 59): inf, at(0, 8, 0): 250e3, at(4, 17, 59): 250e3, at(4, 18, 0): inf, at(5, 12, 0): inf}},
		{"default and override", "tz UTC; default 10mbit; * 00:00-24:00 paused; sat,sun 00:00-24:00 unlimited", map[time.Time]float64{
			at(0, 12, 0): 0, at(5, 0, 0): inf, at(6, 23, 59): inf}},
		{"wrap past midnight", "tz UTC\ndefault paused\nfri 22:00-06:00 1MB/s", map[time.Time]float64{
			at(4, 21, 59): 0, at(4, 22, 0): 1e6, at(5, 5, 59): 1e6, at(5, 6, 0): 0}},
		{"day range wraps the week", "tz UTC\nsat-mon 00:00-24:00 paused", map[time.Time]float64{
			at(5, 1, 0): 0, at(6, 1, 0): 0, at(0, 1, 0): 0, at(1, 1, 0): inf}},
		{"sunday night into monday", "tz UTC\nsun 23:00-01:00 paused", map[time.Time]float64{
			at(6, 23, 30): 0, at(0, 0, 30): 0, at(0, 1, 0): inf}},
		{"full day names and lists", "tz UTC\nmonday,wednesday-thursday 09:30-10:00 240KB/s", map[time.Time]float64{
			at(0, 9, 30): 240e3, at(1, 9, 30): inf, at(2, 9, 45): 240e3, at(3, 9, 59): 240e3, at(3, 10, 0): inf}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSchedule(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			for when, want := range tc.check {
				if got := s.RateAt(when); got != want {
					t.Errorf("RateAt(%s) = %v, want %v", when.Format("Mon 15:04"), got, want)
				}
			}
		})
	}
}

func TestParseScheduleErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		line int
	}{
		{"unknown day", "mon-fri 08:00-18:00 2mbit\nfunday 08:00-09:00 1mbit", 2},
		{"bad time", "mon 8-18 2mbit", 1},
		{"minute out of range", "mon 08:60-09:00 2mbit", 1},
		{"hour out of range", "mon 08:00-25:00 2mbit", 1},
		{"empty range", "# c\n\nmon 08:00-08:00 2mbit", 3},
		{"bad rate", "mon 08:00-09:00 fast", 1},
		{"missing field", "mon 08:00-09:00", 1},
		{"default after range", "mon 08:00-09:00 1mbit\ndefault paused", 2},
		{"bad zone", "timezone Mars/Olympus", 1},
		{"start at 24", "mon 24:00-01:00 1mbit", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSchedule(tc.text)
			var se *ScheduleError
			if !errors.As(err, &se) {
				t.Fatalf("error %v, want a *ScheduleError", err)
			}
			if se.Line != tc.line {
				t.Errorf("error names line %d, want %d: %v", se.Line, tc.line, err)
			}
			if !errors.Is(err, ErrScheduleSyntax) {
				t.Errorf("error %v does not wrap ErrScheduleSyntax", err)
			}
		})
	}
}

func TestNextChange(t *testing.T) {
	s, err := ParseSchedule("tz UTC\nmon-fri 08:00-18:00 2mbit")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		from, want time.Time
	}{
		{at(0, 0, 0), at(0, 8, 0)},
		{at(0, 7, 59).Add(30 * time.Second), at(0, 8, 0)},
		{at(0, 8, 0), at(0, 18, 0)},
		{at(4, 18, 0), at(7, 8, 0)}, // Friday evening -> next Monday
	}
	for _, tc := range tests {
		got, ok := s.NextChange(tc.from)
		if !ok || !got.Equal(tc.want) {
			t.Errorf("NextChange(%s) = %s %v, want %s", tc.from, got, ok, tc.want)
		}
	}
	if _, ok := Unlimited().NextChange(monday); ok {
		t.Error("unlimited schedule reports a change")
	}
}

func FuzzSchedule(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.schedule")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(string(b))
		}
	}
	f.Add("mon-fri 08:00-18:00 2mbit")
	f.Add("default paused; sun 23:00-01:00 1MB/s")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseSchedule(text)
		if err != nil {
			return
		}
		r := s.RateAt(monday)
		if math.IsNaN(r) || r < 0 {
			t.Fatalf("rate %v", r)
		}
		if next, ok := s.NextChange(monday); ok && s.RateAt(next) == r {
			t.Fatalf("NextChange %s keeps the rate %v", next, r)
		}
	})
}
