package transport

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/aimwan/aimwan/internal/units"
)

// Schedule is a weekly table of WAN rate caps in bytes per second
// (+Inf = unlimited, 0 = paused). Build one with ParseSchedule.
//
// Syntax, one rule a line ('#' starts a comment, blank lines are ignored):
//
//	timezone Europe/Berlin        # optional, first: the zone of the times (default: local)
//	default 10mbit                # optional: the cap outside every range (default: unlimited)
//	mon-fri 08:00-18:00 2mbit     # days, time range, cap
//	sat,sun 00:00-24:00 unlimited
//	* 22:00-06:00 paused          # '*' = every day; a range may wrap past midnight
//
// Days are mon tue wed thu fri sat sun (or full names), as a comma-separated
// list of single days and ranges ("mon-wed,fri"; "fri-mon" wraps); '*' or
// "daily" means all seven. Times are hh:mm, the end exclusive, "24:00" the end
// of the day; an end before the start continues into the next day (the range
// belongs to the day it starts on). Caps take any rate units.ParseRate reads
// ("2mbit", "240KB/s", "unlimited", "paused"). When ranges overlap, the line
// further down wins. Caps change at minute boundaries.
type Schedule struct {
	loc   *time.Location
	slots [minutesPerWeek]float64 // cap per minute of the week, from Monday 00:00
}

const minutesPerWeek = 7 * 24 * 60

// ScheduleError names the line of a schedule that is wrong.
type ScheduleError struct {
	Line int    // 1-based line number
	Text string // the line as written
	Err  error
}

func (e *ScheduleError) Error() string {
	return fmt.Sprintf("schedule line %d %q: %v", e.Line, e.Text, e.Err)
}

func (e *ScheduleError) Unwrap() error { return e.Err }

// ErrScheduleSyntax is wrapped by every ScheduleError caused by bad syntax.
var ErrScheduleSyntax = errors.New("bad schedule syntax")

// Unlimited returns a schedule without any cap.
func Unlimited() *Schedule {
	s := &Schedule{loc: time.Local}
	s.fill(math.Inf(1))
	return s
}

func (s *Schedule) fill(rate float64) {
	for i := range s.slots {
		s.slots[i] = rate
	}
}

// ParseSchedule reads a schedule (see Schedule for the syntax). Lines may also
// be separated by ';', so a short schedule fits in a flag.
func ParseSchedule(text string) (*Schedule, error) {
	s := &Schedule{loc: time.Local}
	s.fill(math.Inf(1))
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(text, ";", "\n")))
	n, rules := 0, 0
	for sc.Scan() {
		n++
		raw := sc.Text()
		line := raw
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		lineErr := func(format string, a ...any) error {
			return &ScheduleError{Line: n, Text: strings.TrimSpace(raw), Err: fmt.Errorf("%w: "+format, append([]any{ErrScheduleSyntax}, a...)...)}
		}
		switch strings.ToLower(f[0]) {
		case "timezone", "tz":
			if len(f) != 2 || rules > 0 {
				return nil, lineErr("want \"timezone NAME\" before any range")
			}
			loc, err := time.LoadLocation(f[1])
			if err != nil {
				return nil, lineErr("unknown time zone %q", f[1])
			}
			s.loc = loc
		case "default":
			if len(f) != 2 || rules > 0 {
				return nil, lineErr("want \"default RATE\" before any range")
			}
			r, err := units.ParseRate(f[1])
			if err != nil {
				return nil, lineErr("rate: %v", err)
			}
			s.fill(r)
		default:
			if len(f) != 3 {
				return nil, lineErr("want \"DAYS HH:MM-HH:MM RATE\", e.g. \"mon-fri 08:00-18:00 2mbit\"")
			}
			if err := s.apply(f[0], f[1], f[2]); err != nil {
				return nil, lineErr("%v", err)
			}
			rules++
		}
	}
	return s, nil
}

// apply sets the slots of one rule.
func (s *Schedule) apply(daysText, rangeText, rateText string) error {
	days, err := parseDays(daysText)
	if err != nil {
		return err
	}
	from, to, err := parseRange(rangeText)
	if err != nil {
		return err
	}
	rate, err := units.ParseRate(rateText)
	if err != nil {
		return fmt.Errorf("rate: %v", err)
	}
	length := to - from
	if length <= 0 {
		length += 24 * 60
	}
	for d := range 7 {
		if !days[d] {
			continue
		}
		start := d*24*60 + from
		for m := range length {
			s.slots[(start+m)%minutesPerWeek] = rate
		}
	}
	return nil
}

var dayNames = map[string]int{
	"mon": 0, "monday": 0, "tue": 1, "tuesday": 1, "wed": 2, "wednesday": 2, "thu": 3, "thursday": 3,
	"fri": 4, "friday": 4, "sat": 5, "saturday": 5, "sun": 6, "sunday": 6,
}

// parseDays reads "mon-fri,sun" into a set indexed from Monday.
func parseDays(text string) ([7]bool, error) {
	var days [7]bool
	t := strings.ToLower(text)
	if t == "*" || t == "daily" {
		return [7]bool{true, true, true, true, true, true, true}, nil
	}
	for part := range strings.SplitSeq(t, ",") {
		a, b, isRange := strings.Cut(part, "-")
		from, ok := dayNames[a]
		if !ok {
			return days, fmt.Errorf("day %q: want mon, tue, wed, thu, fri, sat, sun, a range like mon-fri, or *", a)
		}
		to := from
		if isRange {
			if to, ok = dayNames[b]; !ok {
				return days, fmt.Errorf("day %q: want mon, tue, wed, thu, fri, sat or sun", b)
			}
		}
		for d := from; ; d = (d + 1) % 7 {
			days[d] = true
			if d == to {
				break
			}
		}
	}
	return days, nil
}

// parseRange reads "08:00-18:00" into minutes of the day; to may be 24*60.
func parseRange(text string) (from, to int, err error) {
	a, b, ok := strings.Cut(text, "-")
	if !ok {
		return 0, 0, fmt.Errorf("time range %q: want HH:MM-HH:MM", text)
	}
	if from, err = parseClock(a); err != nil {
		return 0, 0, err
	}
	if to, err = parseClock(b); err != nil {
		return 0, 0, err
	}
	if from == 24*60 {
		return 0, 0, fmt.Errorf("time range %q: a range cannot start at 24:00", text)
	}
	if from == to {
		return 0, 0, fmt.Errorf("time range %q is empty (use 00:00-24:00 for a whole day)", text)
	}
	return from, to, nil
}

func parseClock(text string) (int, error) {
	h, m, ok := strings.Cut(text, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || len(h) < 1 || len(h) > 2 ||
		hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("time %q: want HH:MM between 00:00 and 24:00", text)
	}
	return hh*60 + mm, nil
}

// slot returns the minute of the week of t in the schedule's zone.
func (s *Schedule) slot(t time.Time) int {
	t = t.In(s.loc)
	wd := (int(t.Weekday()) + 6) % 7 // Monday = 0
	return wd*24*60 + t.Hour()*60 + t.Minute()
}

// RateAt returns the cap in bytes per second at t (+Inf = unlimited,
// 0 = paused).
func (s *Schedule) RateAt(t time.Time) float64 { return s.slots[s.slot(t)] }

// NextChange returns the first minute boundary after t where the cap
// differs from the cap at t, and false when the cap never changes.
func (s *Schedule) NextChange(t time.Time) (time.Time, bool) {
	cur := s.slot(t)
	lt := t.In(s.loc)
	base := lt.Truncate(time.Minute)
	if base.After(lt) { // Truncate works on absolute time; zones with odd offsets
		base = base.Add(-time.Minute)
	}
	for i := 1; i <= minutesPerWeek; i++ {
		if s.slots[(cur+i)%minutesPerWeek] != s.slots[cur] {
			return base.Add(time.Duration(i) * time.Minute), true
		}
	}
	return time.Time{}, false
}
