package sizing

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aimwan/aimwan/internal/units"
	"github.com/aimwan/aimwan/transport"
)

// File is the YAML form of a sizing study (docs/sizing.md has an example).
// Sizes and rates are strings in internal/units syntax, durations Go
// durations or whole days ("7d").
type File struct {
	Start     string  `yaml:"start"`     // RFC 3339; default Monday 2026-01-05T00:00:00Z
	Duration  string  `yaml:"duration"`  // default 7d
	Step      string  `yaml:"step"`      // default 1m
	Samples   int     `yaml:"samples"`   // curve points, default 2016
	Buffer    string  `yaml:"buffer"`    // source buffer size; empty = unlimited
	Reduction float64 `yaml:"reduction"` // data reduction; default 1, or from bench_result
	// BenchResult is a bench result.json (relative to the config file);
	// its logical_bytes / wire_bytes is the data reduction.
	BenchResult string     `yaml:"bench_result"`
	Line        FileLine   `yaml:"line"`
	Schedule    string     `yaml:"schedule"` // transport schedule syntax; empty = no cap
	Volumes     []FileVol  `yaml:"volumes"`
	Sweep       *FileSweep `yaml:"sweep"`
	// Files, when given, selects the file-granular model (Model.FileSize).
	Files *FileFiles `yaml:"files"`
}

// FileFiles sets the file-granular model: journal files of Size payload
// bytes (required), sealed at Age (default 2s), Window in flight per volume
// (default 4).
type FileFiles struct {
	Size   string `yaml:"size"`
	Age    string `yaml:"age"`
	Window int    `yaml:"window"`
}

// FileLine is the line and its cross traffic.
type FileLine struct {
	Rate        string   `yaml:"rate"`         // e.g. 2mbit
	Cross       string   `yaml:"cross"`        // constant cross traffic, e.g. 70KB/s
	CrossHourly []string `yaml:"cross_hourly"` // or 24 rates, one per hour of day
}

// FileVol is a volume's change profile: Daily spread by Profile (24
// relative weights, default flat), or Hourly (24 sizes).
type FileVol struct {
	Name    string      `yaml:"name"`
	Daily   string      `yaml:"daily"`
	Profile []float64   `yaml:"profile"`
	Hourly  []string    `yaml:"hourly"`
	Weekend *float64    `yaml:"weekend"` // factor on Saturday and Sunday, default 1
	Initial string      `yaml:"initial"`
	Bursts  []FileBurst `yaml:"bursts"`
}

// FileBurst is a one-off write.
type FileBurst struct {
	At   string `yaml:"at"`
	Size string `yaml:"size"`
}

// FileSweep asks for the line needed for an RPO.
type FileSweep struct {
	RPO       string            `yaml:"rpo"`
	Rates     []string          `yaml:"rates"`     // default StandardRates
	Schedules map[string]string `yaml:"schedules"` // extra schedules by name; the study's own is always tried
}

// Study is a parsed File.
type Study struct {
	Model     Model
	Sweep     bool
	RPO       time.Duration
	Rates     []float64
	Schedules []NamedSchedule
}

// ParseDuration reads a Go duration or a whole number of days ("7d").
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if d, ok := strings.CutSuffix(t, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err != nil || !(n >= 0 && n <= 3650) {
			return 0, fmt.Errorf("%w: duration %q: want e.g. 7d or 36h", ErrBadModel, s)
		}
		return time.Duration(n * 24 * float64(time.Hour)), nil
	}
	d, err := time.ParseDuration(t)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%w: duration %q: want e.g. 7d, 36h or 15m", ErrBadModel, s)
	}
	return d, nil
}

// Study turns the file into a model; dir resolves bench_result.
func (f *File) Study(dir string) (*Study, error) {
	st := &Study{}
	m := &st.Model
	var err error
	if f.Start != "" {
		if m.Start, err = time.Parse(time.RFC3339, f.Start); err != nil {
			return nil, fmt.Errorf("%w: start %q: want RFC 3339 (2026-01-05T00:00:00Z)", ErrBadModel, f.Start)
		}
	}
	for _, d := range []struct {
		s   string
		dst *time.Duration
	}{{f.Duration, &m.Duration}, {f.Step, &m.Step}} {
		if d.s != "" {
			if *d.dst, err = ParseDuration(d.s); err != nil {
				return nil, err
			}
		}
	}
	m.Samples = f.Samples
	if m.Buffer, err = size(f.Buffer, "buffer"); err != nil {
		return nil, err
	}
	if m.Reduction, err = f.reduction(dir); err != nil {
		return nil, err
	}
	if err := f.Line.apply(m); err != nil {
		return nil, err
	}
	if f.Schedule != "" {
		s, err := transport.ParseSchedule(f.Schedule)
		if err != nil {
			return nil, fmt.Errorf("%w: schedule: %w", ErrBadModel, err)
		}
		m.Schedule = s
	}
	for _, v := range f.Volumes {
		vol, err := v.volume()
		if err != nil {
			return nil, err
		}
		m.Volumes = append(m.Volumes, vol)
	}
	if f.Sweep != nil {
		if err := f.Sweep.apply(st); err != nil {
			return nil, err
		}
	}
	if f.Files != nil {
		if err := f.Files.apply(m); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func (ff *FileFiles) apply(m *Model) error {
	var err error
	if m.FileSize, err = size(ff.Size, "files.size"); err != nil {
		return err
	}
	if m.FileSize <= 0 {
		return fmt.Errorf("%w: files.size %q: want a size such as 4MiB", ErrBadModel, ff.Size)
	}
	if ff.Age != "" {
		if m.FileAge, err = ParseDuration(ff.Age); err != nil {
			return err
		}
	}
	if ff.Window < 0 {
		return fmt.Errorf("%w: files.window %d must not be negative", ErrBadModel, ff.Window)
	}
	m.Window = ff.Window
	return nil
}

func size(s, what string) (float64, error) {
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	n, err := units.ParseSize(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s %q: want a size such as 12GiB", ErrBadModel, what, s)
	}
	return float64(n), nil
}

func rate(s, what string) (float64, error) {
	r, err := units.ParseRate(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q: want a rate such as 2mbit or 70KB/s", ErrBadModel, what, s)
	}
	return r, nil
}

func (f *File) reduction(dir string) (float64, error) {
	if f.BenchResult == "" {
		return f.Reduction, nil
	}
	if f.Reduction != 0 {
		return 0, fmt.Errorf("%w: give reduction or bench_result, not both", ErrBadModel)
	}
	p := f.BenchResult
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, fmt.Errorf("%w: bench_result: %w", ErrBadModel, err)
	}
	var r struct {
		Logical float64 `json:"logical_bytes"`
		Wire    float64 `json:"wire_bytes"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, fmt.Errorf("%w: bench_result %s: %w", ErrBadModel, p, err)
	}
	if !(r.Logical > 0 && r.Wire > 0) {
		return 0, fmt.Errorf("%w: bench_result %s has no positive logical_bytes and wire_bytes", ErrBadModel, p)
	}
	return r.Logical / r.Wire, nil
}

func (l FileLine) apply(m *Model) error {
	var err error
	if m.Rate, err = rate(l.Rate, "line rate"); err != nil {
		return err
	}
	switch {
	case l.Cross != "" && len(l.CrossHourly) > 0:
		return fmt.Errorf("%w: give line.cross or line.cross_hourly, not both", ErrBadModel)
	case l.Cross != "":
		c, err := rate(l.Cross, "cross traffic")
		if err != nil {
			return err
		}
		for h := range m.CrossHourly {
			m.CrossHourly[h] = c
		}
	case len(l.CrossHourly) > 0:
		if len(l.CrossHourly) != 24 {
			return fmt.Errorf("%w: line.cross_hourly has %d values, want 24", ErrBadModel, len(l.CrossHourly))
		}
		for h, s := range l.CrossHourly {
			if m.CrossHourly[h], err = rate(s, "cross traffic"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (v FileVol) volume() (Volume, error) {
	vol := Volume{Name: v.Name, Weekend: 1}
	if v.Weekend != nil {
		vol.Weekend, vol.WeekendOff = *v.Weekend, *v.Weekend == 0
	}
	var err error
	if vol.Initial, err = size(v.Initial, "volume "+v.Name+" initial"); err != nil {
		return vol, err
	}
	switch {
	case v.Daily != "" && len(v.Hourly) > 0:
		return vol, fmt.Errorf("%w: volume %s: give daily (with profile) or hourly, not both", ErrBadModel, v.Name)
	case len(v.Hourly) > 0:
		if len(v.Hourly) != 24 {
			return vol, fmt.Errorf("%w: volume %s: hourly has %d values, want 24", ErrBadModel, v.Name, len(v.Hourly))
		}
		for h, s := range v.Hourly {
			if vol.Hourly[h], err = size(s, "volume "+v.Name+" hourly"); err != nil {
				return vol, err
			}
		}
	case v.Daily != "":
		daily, err := size(v.Daily, "volume "+v.Name+" daily")
		if err != nil {
			return vol, err
		}
		if err := spread(&vol, daily, v.Profile); err != nil {
			return vol, err
		}
	}
	for _, b := range v.Bursts {
		at, err := ParseDuration(b.At)
		if err != nil {
			return vol, err
		}
		n, err := size(b.Size, "volume "+v.Name+" burst")
		if err != nil {
			return vol, err
		}
		vol.Bursts = append(vol.Bursts, Burst{At: at, Bytes: n})
	}
	return vol, nil
}

// spread distributes daily bytes over the hours by profile weights.
func spread(vol *Volume, daily float64, profile []float64) error {
	w := profile
	if len(w) == 0 {
		w = make([]float64, 24)
		for i := range w {
			w[i] = 1
		}
	}
	if len(w) != 24 {
		return fmt.Errorf("%w: volume %s: profile has %d weights, want 24", ErrBadModel, vol.Name, len(w))
	}
	sum := 0.0
	for _, x := range w {
		if !(x >= 0) {
			return fmt.Errorf("%w: volume %s: profile weight %v is negative", ErrBadModel, vol.Name, x)
		}
		sum += x
	}
	if sum <= 0 {
		return fmt.Errorf("%w: volume %s: profile weights add up to 0", ErrBadModel, vol.Name)
	}
	for h := range vol.Hourly {
		vol.Hourly[h] = daily * w[h] / sum
	}
	return nil
}

func (s *FileSweep) apply(st *Study) error {
	st.Sweep = true
	var err error
	if st.RPO, err = ParseDuration(s.RPO); err != nil || st.RPO <= 0 {
		return fmt.Errorf("%w: sweep.rpo %q: want a duration such as 15m", ErrBadModel, s.RPO)
	}
	for _, r := range s.Rates {
		v, err := rate(r, "sweep rate")
		if err != nil {
			return err
		}
		st.Rates = append(st.Rates, v)
	}
	if len(st.Rates) == 0 {
		st.Rates = StandardRates
	}
	st.Schedules = []NamedSchedule{{Name: "as configured", Schedule: st.Model.Schedule}}
	names := make([]string, 0, len(s.Schedules))
	for n := range s.Schedules {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sch, err := transport.ParseSchedule(s.Schedules[n])
		if err != nil {
			return fmt.Errorf("%w: sweep schedule %s: %w", ErrBadModel, n, err)
		}
		st.Schedules = append(st.Schedules, NamedSchedule{Name: n, Schedule: sch})
	}
	return nil
}
