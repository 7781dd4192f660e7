package e2e

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/sim/chaos"
)

// TestChaosShort is the CI version of `aimwan sim chaos`: the whole chain
// (src, both proxies, the link simulator when the binary has it, dst) on
// loopback, 3 seeded rounds with mixed faults (SIGKILLs, wiped cache,
// outages, full buffers...), every snapshot and the final volumes checked
// byte for byte. Nothing may be lost. AIMWAN_CHAOS_ROUNDS,
// AIMWAN_CHAOS_SEED, AIMWAN_CHAOS_FAULTS (comma-separated kinds),
// AIMWAN_CHAOS_DIR (a work folder that is kept) and AIMWAN_CHAOS_BIN (another
// aimwan binary for the daemons, e.g. a race-enabled build) change the run
// for local investigation.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos run skipped in -short mode")
	}
	rounds, seed := 3, uint64(7)
	if s := os.Getenv("AIMWAN_CHAOS_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("AIMWAN_CHAOS_ROUNDS=%q: %v", s, err)
		}
		rounds = n
	}
	if s := os.Getenv("AIMWAN_CHAOS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("AIMWAN_CHAOS_SEED=%q: %v", s, err)
		}
		seed = n
	}
	dir := t.TempDir()
	if d := os.Getenv("AIMWAN_CHAOS_DIR"); d != "" {
		dir = d // kept after the test, logs included
	}
	bin := aimwanBin
	if b := os.Getenv("AIMWAN_CHAOS_BIN"); b != "" {
		bin = b // e.g. a race-enabled build: go build -race -o /tmp/aimwan-race ./cmd/aimwan
	}
	var kinds []string
	if s := os.Getenv("AIMWAN_CHAOS_FAULTS"); s != "" {
		kinds = strings.Split(s, ",")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rep, err := chaos.Run(ctx, chaos.Config{
		Bin: bin, Dir: filepath.Join(dir, "chaos"), Rounds: rounds, Seed: seed,
		FaultsPerRound: 3, VolumeSize: 2 << 20, WritesPerBatch: 16, MaxWrite: 64 << 10,
		DrainTimeout: 60 * time.Second, Logger: logger, Faults: kinds,
	})
	if rep != nil {
		var b strings.Builder
		rep.WriteTable(&b)
		t.Logf("report:\n%s", b.String())
	}
	if err != nil {
		t.Fatalf("chaos run: %v", err)
	}
	if rep.BytesLost != 0 || rep.SrcMismatch != 0 {
		t.Fatalf("%d bytes lost, %d source bytes mismatched: %v", rep.BytesLost, rep.SrcMismatch, rep.Mismatches)
	}
	if rep.Rounds != rounds {
		t.Fatalf("%d of %d rounds checked", rep.Rounds, rounds)
	}
	if want := rounds * 3; rep.FaultsTotal < want {
		t.Errorf("%d faults injected, want at least %d", rep.FaultsTotal, want)
	}
	if len(kinds) == 0 && len(rep.Faults) < 3 {
		t.Errorf("faults of %d kinds (%v), want a mix of at least 3", len(rep.Faults), rep.Faults)
	}
	if want := rounds * 3; rep.Snapshots < want {
		t.Errorf("%d snapshots checked, want at least %d (one per batch)", rep.Snapshots, want)
	}
	if rep.BytesChecked == 0 {
		t.Error("no bytes checked")
	}
}

// testWriter sends output to the test log, line by line.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
