package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a chaos run did and found.
type Report struct {
	Seed           uint64         `json:"seed"`
	RoundsPlanned  int            `json:"rounds_planned"`
	Rounds         int            `json:"rounds"`             // rounds that ran to their check
	Link           bool           `json:"link"`               // the link simulator was in the chain
	Direct         bool           `json:"direct"`             // src pushed straight to dst (no proxies)
	Coalesce       string         `json:"coalesce,omitempty"` // src's --coalesce window, when set
	Kinds          []string       `json:"fault_kinds"`        // kinds that could be injected
	Faults         map[string]int `json:"faults_by_kind"`     // injected, by kind
	FaultsTotal    int            `json:"faults"`
	Rewrites       int            `json:"batches_rewritten"` // batches written again after src died under them
	Requests       int            `json:"requests"`          // NBD requests acknowledged
	BytesWritten   int64          `json:"bytes_written"`
	Snapshots      int            `json:"snapshots_checked"`
	BytesChecked   int64          `json:"bytes_checked"`
	BytesLost      int64          `json:"bytes_lost"`
	SrcMismatch    int64          `json:"src_bytes_mismatch"` // source images that differ from what was acked
	DstRefusals    int64          `json:"dst_buffer_full_refusals"`
	PullAheads     int            `json:"src_pull_aheads"`
	ElapsedS       float64        `json:"elapsed_s"`
	Dir            string         `json:"dir"`
	MaxDrainS      float64        `json:"max_drain_s"` // slowest recovery: last batch to an empty chain
	Error          string         `json:"error,omitempty"`
	Mismatches     []string       `json:"mismatches,omitempty"`
	Anomalies      []string       `json:"anomalies,omitempty"`
	RoundsDetailed []RoundReport  `json:"round_details"`
}

// RoundReport is one round.
type RoundReport struct {
	Round        int      `json:"round"`
	Faults       []fault  `json:"faults"`
	Rewrites     int      `json:"batches_rewritten"`
	Requests     int      `json:"requests"`
	BytesWritten int64    `json:"bytes_written"`
	Snapshots    int      `json:"snapshots_checked"`
	BytesChecked int64    `json:"bytes_checked"`
	BytesLost    int64    `json:"bytes_lost"`
	SrcMismatch  int64    `json:"src_bytes_mismatch"`
	Mismatches   []string `json:"mismatches,omitempty"`
	Anomalies    []string `json:"anomalies,omitempty"` // wrong figures from a daemon (data intact)
	DrainS       float64  `json:"drain_s"`             // time from the last batch to an empty chain
	ElapsedS     float64  `json:"elapsed_s"`
}

func newReport(cfg Config, dir string, link bool, kinds []string) *Report {
	return &Report{Seed: cfg.Seed, RoundsPlanned: cfg.Rounds, Link: link, Direct: cfg.Direct, Coalesce: durOrEmpty(cfg.Coalesce), Kinds: kinds, Faults: map[string]int{}, Dir: dir}
}

func (r *Report) addRound(rr RoundReport) {
	r.RoundsDetailed = append(r.RoundsDetailed, rr)
	for _, f := range rr.Faults {
		r.Faults[f.Kind]++
		r.FaultsTotal++
	}
	r.Rewrites += rr.Rewrites
	r.Requests += rr.Requests
	r.BytesWritten += rr.BytesWritten
	r.Snapshots += rr.Snapshots
	r.BytesChecked += rr.BytesChecked
	r.BytesLost += rr.BytesLost
	r.SrcMismatch += rr.SrcMismatch
	r.MaxDrainS = max(r.MaxDrainS, rr.DrainS)
	for _, m := range rr.Mismatches {
		r.Mismatches = append(r.Mismatches, fmt.Sprintf("round %d: %s", rr.Round, m))
	}
	for _, a := range rr.Anomalies {
		r.Anomalies = append(r.Anomalies, fmt.Sprintf("round %d: %s", rr.Round, a))
	}
	if rr.Snapshots > 0 || rr.BytesChecked > 0 {
		r.Rounds++
	}
}

func (r *Report) finish(start time.Time, h *harness) {
	r.ElapsedS = time.Since(start).Seconds()
	r.DstRefusals = h.stats.DstRefusals
	r.PullAheads = h.stats.PullAheads
}

// OK reports whether the run completed with nothing lost or mismatched and
// no anomaly.
func (r *Report) OK() bool {
	return r.Error == "" && r.BytesLost == 0 && r.SrcMismatch == 0 && len(r.Anomalies) == 0 &&
		r.Rounds == len(r.RoundsDetailed)
}

// JSON is the report as indented JSON.
func (r *Report) JSON() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

// WriteTable prints the report for people.
func (r *Report) WriteTable(w io.Writer) error {
	verdict := "PASS: nothing lost"
	switch {
	case !r.OK() && r.Error == "" && r.BytesLost == 0 && r.SrcMismatch == 0:
		verdict = "FAIL: nothing lost, but anomalies"
	case !r.OK():
		verdict = "FAIL"
	}
	chain := "src → proxy → link simulator → proxy → dst"
	switch {
	case r.Direct:
		chain = "src → dst (direct)"
	case !r.Link:
		chain = "src → proxy → proxy → dst"
	}
	fmt.Fprintf(w, "aimwan chaos: seed %d, %d/%d rounds, %s — %s\n", r.Seed, r.Rounds, r.RoundsPlanned, chain, verdict)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "FAULT KIND\tINJECTED\t")
	for _, k := range slices.Sorted(maps.Keys(r.Faults)) {
		fmt.Fprintf(tw, "%s\t%d\t\n", k, r.Faults[k])
	}
	fmt.Fprintf(tw, "total\t%d\t\n", r.FaultsTotal)
	if err := tw.Flush(); err != nil {
		return err
	}
	rows := [][2]string{
		{"rounds checked", fmt.Sprint(r.Rounds)},
		{"NBD requests acknowledged", fmt.Sprint(r.Requests)},
		{"bytes written", fmt.Sprint(r.BytesWritten)},
		{"batches rewritten (src killed under them)", fmt.Sprint(r.Rewrites)},
		{"snapshots checked", fmt.Sprint(r.Snapshots)},
		{"bytes checked", fmt.Sprint(r.BytesChecked)},
		{"bytes lost", fmt.Sprint(r.BytesLost)},
		{"source bytes mismatched", fmt.Sprint(r.SrcMismatch)},
		{"dst buffer-full refusals seen (buffer or disk full)", fmt.Sprint(r.DstRefusals)},
		{"src pull-aheads seen", fmt.Sprint(r.PullAheads)},
		{"slowest drain after a round", fmt.Sprintf("%.1fs", r.MaxDrainS)},
		{"elapsed", (time.Duration(r.ElapsedS * float64(time.Second))).Round(time.Millisecond).String()},
		{"work folder", r.Dir},
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, m := range r.Mismatches {
		fmt.Fprintln(w, "MISMATCH:", m)
	}
	for _, a := range r.Anomalies {
		fmt.Fprintln(w, "ANOMALY:", a)
	}
	if r.Error != "" {
		fmt.Fprintln(w, "ERROR:", strings.TrimSpace(r.Error))
	}
	return nil
}

// durOrEmpty is d as text, "" when 0.
func durOrEmpty(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}
