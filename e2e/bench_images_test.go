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

// TestBenchImagesUnlimited runs `aimwan bench` as issue 13 measures a store:
// the user's own images given as README writes them (--images A B C,
// space-separated), all created one after another in the optimized phase
// (--passthrough none), thin, over an unlimited line. Every volume must
// verify, and result.json must hold the offline estimate (the same as
// `aimwan sim estimate` of the same images), its ratio to the wire bytes
// and the proxies' peak RSS.
func TestBenchImagesUnlimited(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole chain (-short)")
	}
	dir := t.TempDir()
	imgs := filepath.Join(dir, "imgs")
	MustAimwan(t, "sim", "workload", "--out", imgs, "--template-size", "8MiB", "--clones", "3", "--seed", "4")
	clones := []string{filepath.Join(imgs, "clone-1.img"), filepath.Join(imgs, "clone-2.img"), filepath.Join(imgs, "clone-3.img")}
	out := filepath.Join(dir, "bench")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"bench", "--out", out, "--scale", "tiny", "--images"}, clones...)
	cmd := exec.CommandContext(ctx, aimwanBin, append(args, "--passthrough", "none", "--rate", "unlimited", "--thin", "--no-report")...)
	cmd.WaitDelay = 10 * time.Second
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("aimwan %v: %v\n%s", args, err, procs.Tail(string(b), 40))
	}
	t.Logf("aimwan bench:\n%s", procs.Tail(string(b), 22))
	var res struct {
		Verified       bool             `json:"verified"`
		Drained        bool             `json:"drained"`
		Workload       string           `json:"workload"`
		WireBytes      int64            `json:"wire_bytes"`
		LogicalBytes   int64            `json:"logical_bytes"`
		WrittenBytes   int64            `json:"written_bytes"`
		ZeroedBytes    int64            `json:"zeroed_bytes"`
		EstimateBytes  int64            `json:"estimate_bytes"`
		WireVsEstimate float64          `json:"wire_vs_estimate"`
		PeakRSS        map[string]int64 `json:"peak_rss_bytes"`
		Link           struct {
			Unlimited bool `json:"unlimited"`
		} `json:"link"`
		Phases []struct {
			Name    string   `json:"name"`
			Created []string `json:"created"`
		} `json:"phase_details"`
		Volumes []struct {
			Image string `json:"image"`
			Equal bool   `json:"equal"`
		} `json:"volumes"`
	}
	if err := json.Unmarshal(testkit.ReadFile(t, filepath.Join(out, "result.json")), &res); err != nil {
		t.Fatalf("result.json: %v", err)
	}
	if !res.Verified || !res.Drained || res.Workload != "images" || len(res.Volumes) != 3 || res.Volumes[2].Image != clones[2] {
		t.Errorf("verified=%v drained=%v workload=%s volumes=%+v", res.Verified, res.Drained, res.Workload, res.Volumes)
	}
	if len(res.Phases) != 1 || res.Phases[0].Name != "optimize" || len(res.Phases[0].Created) != 3 || !res.Link.Unlimited {
		t.Errorf("phases %+v, unlimited %v: want one optimized phase creating all three clones", res.Phases, res.Link.Unlimited)
	}
	const size = 3 * 8 << 20
	if res.ZeroedBytes <= 0 || res.WrittenBytes+res.ZeroedBytes != size || res.LogicalBytes != res.WrittenBytes {
		t.Errorf("thin creation: written %d, zeroed %d, destaged %d of %d bytes", res.WrittenBytes, res.ZeroedBytes, res.LogicalBytes, size)
	}
	if res.WireBytes <= 0 || res.EstimateBytes <= 0 || res.WireVsEstimate != float64(res.WireBytes)/float64(res.EstimateBytes) {
		t.Errorf("wire %d, estimate %d, ratio %v", res.WireBytes, res.EstimateBytes, res.WireVsEstimate)
	}
	for _, d := range []string{"src", "dst", "link", "proxy-src/optimize", "proxy-dst/optimize"} {
		if res.PeakRSS[d] < 1<<20 {
			t.Errorf("peak RSS of %s: %d bytes", d, res.PeakRSS[d])
		}
	}
	var est struct {
		EstimateBytes int64 `json:"estimate_bytes"`
		Images        []struct {
			Name string `json:"name"`
		} `json:"images"`
	}
	if err := json.Unmarshal([]byte(MustAimwan(t, append([]string{"sim", "estimate", "--json", "--quiet"}, clones...)...)), &est); err != nil {
		t.Fatalf("sim estimate --json: %v", err)
	}
	if est.EstimateBytes != res.EstimateBytes || len(est.Images) != 3 || est.Images[0].Name != clones[0] {
		t.Errorf("aimwan sim estimate: %+v; the bench's estimate was %d", est, res.EstimateBytes)
	}
}
