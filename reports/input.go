package reports

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// File names LoadRun looks for in a run folder besides the *.jsonl recordings.
const (
	ResultFile = "result.json" // written by `aimwan bench`
	PhasesFile = "phases.json" // phase boundaries, see Phase
)

// ErrBadInput is wrapped by errors about a malformed result.json or phases.json.
var ErrBadInput = errors.New("bad report input")

// Phase is a named interval of a run, e.g. the bench's "passthrough" and
// "optimize" phases. phases.json holds a JSON list of them:
//
//	[{"name":"passthrough","start":"2026-11-22T06:00:00Z","end":"2026-11-22T06:05:00Z"},
//	 {"name":"optimize","start":"2026-11-22T06:05:00Z","end":"2026-11-22T06:20:00Z"}]
//
// Times are RFC 3339. End may be left out: the phase then lasts until the next
// one starts, or until the end of the run.
type Phase struct {
	Name  string    `json:"name"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end,omitzero"`
}

// BenchResult is the part of a bench's result.json the report reads. Rates are
// in KB/s (1000 bytes a second); unknown fields are ignored. A result.json may
// also carry the run's phases under "phases" (phases.json wins when both exist).
type BenchResult struct {
	LineKBps        float64 `json:"line_kbps"`        // the WAN line rate
	PassthroughKBps float64 `json:"passthrough_kbps"` // effective rate through pass-through proxies
	EffectiveKBps   float64 `json:"effective_kbps"`   // average effective rate with optimization
	Speedup         float64 `json:"speedup"`          // effective / line
	PeakSpeedup     float64 `json:"peak_speedup"`     // highest effective / line over a short window
	LogicalBytes    int64   `json:"logical_bytes"`    // bytes replicated (journal bytes destaged)
	WireBytes       int64   `json:"wire_bytes"`       // bytes put on the WAN
	ElapsedS        float64 `json:"elapsed_s"`        // duration of the optimized transfer
	Verified        bool    `json:"verified"`         // every destination volume equals its source
	Phases          []Phase `json:"phases,omitempty"`
}

// Run is everything a report is built from.
type Run struct {
	Recordings []*Recording
	Phases     []Phase      // sorted by start
	Result     *BenchResult // nil when the folder holds no result.json
}

// LoadRun reads a run folder: every *.jsonl recording, result.json and
// phases.json when present.
func LoadRun(dir string) (*Run, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("load run: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("load run: %s is not a directory", dir)
	}
	recs, err := LoadDir(dir)
	if err != nil {
		return nil, err
	}
	run := &Run{Recordings: recs}
	if b, err := readOptional(filepath.Join(dir, ResultFile)); err != nil {
		return nil, err
	} else if b != nil {
		if run.Result, err = ParseResult(b); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ResultFile), err)
		}
		run.Phases = run.Result.Phases
	}
	if b, err := readOptional(filepath.Join(dir, PhasesFile)); err != nil {
		return nil, err
	} else if b != nil {
		if run.Phases, err = ParsePhases(b); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, PhasesFile), err)
		}
	}
	if err := checkPhases(run.Phases); err != nil {
		return nil, err
	}
	return run, nil
}

// readOptional returns nil, nil when path does not exist.
func readOptional(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load run: %w", err)
	}
	return b, nil
}

// ParseResult reads a bench's result.json.
func ParseResult(b []byte) (*BenchResult, error) {
	var r BenchResult
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: result: %w", ErrBadInput, err)
	}
	for name, v := range map[string]float64{"line_kbps": r.LineKBps, "passthrough_kbps": r.PassthroughKBps,
		"effective_kbps": r.EffectiveKBps, "speedup": r.Speedup, "peak_speedup": r.PeakSpeedup, "elapsed_s": r.ElapsedS,
		"logical_bytes": float64(r.LogicalBytes), "wire_bytes": float64(r.WireBytes)} {
		if v < 0 {
			return nil, fmt.Errorf("%w: result: %s is negative (%v)", ErrBadInput, name, v)
		}
	}
	return &r, nil
}

// ParsePhases reads phases.json, sorted by start.
func ParsePhases(b []byte) ([]Phase, error) {
	var ps []Phase
	if err := json.Unmarshal(b, &ps); err != nil {
		return nil, fmt.Errorf("%w: phases: %w", ErrBadInput, err)
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Start.Before(ps[j].Start) })
	if err := checkPhases(ps); err != nil {
		return nil, err
	}
	return ps, nil
}

func checkPhases(ps []Phase) error {
	for i, p := range ps {
		switch {
		case p.Name == "":
			return fmt.Errorf("%w: phase %d has no name", ErrBadInput, i)
		case p.Start.IsZero():
			return fmt.Errorf("%w: phase %q has no start", ErrBadInput, p.Name)
		case !p.End.IsZero() && p.End.Before(p.Start):
			return fmt.Errorf("%w: phase %q ends (%v) before it starts (%v)", ErrBadInput, p.Name, p.End, p.Start)
		}
	}
	return nil
}
