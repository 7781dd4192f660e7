package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/internal/testkit/procs"
)

// TestBenchTiny runs `aimwan bench --scale tiny`: the whole seed experiment
// (src, pass-through proxies, link simulator, optimizing proxies, dst) on a
// small workload, the same code path as `make demo`. It must verify every
// volume and show a speed-up above 1; the run folder has what
// `aimwan report` needs.
func TestBenchTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("the tiny bench takes about a minute (-short)")
	}
	out := filepath.Join(t.TempDir(), "bench")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, aimwanBin, "bench", "--out", out, "--scale", "tiny")
	cmd.WaitDelay = 10 * time.Second
	b, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("aimwan bench --scale tiny did not finish in 2 minutes:\n%s", procs.Tail(string(b), 40))
	}
	if err != nil {
		t.Fatalf("aimwan bench --scale tiny: %v\n%s", err, procs.Tail(string(b), 40))
	}
	t.Logf("aimwan bench --scale tiny:\n%s", procs.Tail(string(b), 25))
	var res struct {
		LineKBps        float64 `json:"line_kbps"`
		PassthroughKBps float64 `json:"passthrough_kbps"`
		EffectiveKBps   float64 `json:"effective_kbps"`
		Speedup         float64 `json:"speedup"`
		PeakSpeedup     float64 `json:"peak_speedup"`
		LogicalBytes    int64   `json:"logical_bytes"`
		WireBytes       int64   `json:"wire_bytes"`
		ElapsedS        float64 `json:"elapsed_s"`
		Verified        bool    `json:"verified"`
		Drained         bool    `json:"drained"`
		Primed          bool    `json:"primed"`
		Volumes         []struct {
			Name  string `json:"name"`
			Equal bool   `json:"equal"`
		} `json:"volumes"`
	}
	if err := json.Unmarshal(testkit.ReadFile(t, filepath.Join(out, "result.json")), &res); err != nil {
		t.Fatalf("result.json: %v", err)
	}
	if !res.Verified || !res.Drained || len(res.Volumes) != 3 {
		t.Errorf("verified=%v drained=%v volumes=%d, want true, true, 3", res.Verified, res.Drained, len(res.Volumes))
	}
	if res.Speedup <= 1 {
		t.Errorf("speedup %.2f, want > 1", res.Speedup)
	}
	if res.LineKBps != 250 || res.Primed {
		t.Errorf("line %v KB/s primed=%v, want the default 250 KB/s (2mbit) unprimed", res.LineKBps, res.Primed)
	}
	if res.LogicalBytes <= res.WireBytes || res.WireBytes <= 0 || res.ElapsedS <= 0 || res.PeakSpeedup < res.Speedup*0.9 {
		t.Errorf("figures do not add up: logical %d wire %d elapsed %.1f peak %.1f speedup %.1f",
			res.LogicalBytes, res.WireBytes, res.ElapsedS, res.PeakSpeedup, res.Speedup)
	}
	for _, f := range []string{"phases.json", "src.jsonl", "dst.jsonl", "proxy-src.jsonl", "proxy-dst.jsonl", "link.jsonl", "report.html"} {
		if !FileExists(filepath.Join(out, f)) {
			t.Errorf("run folder lacks %s", f)
		}
	}
}
