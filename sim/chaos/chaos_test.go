package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit/nbdtest"
	"github.com/aimwan/aimwan/nbd"
)

// TestWriterAgainstModel: a seeded batch written through the NBD client
// leaves the export equal to the model; flush reaches every volume.
func TestWriterAgainstModel(t *testing.T) {
	cfg := Config{Bin: "x", VolumeSize: 1 << 20, WritesPerBatch: 40, MaxWrite: 64 << 10}.withDefaults()
	exports := nbd.ExportMap{}
	mem := map[string]*nbdtest.MemExport{}
	for _, v := range volumeNames {
		mem[v] = nbdtest.NewMemExport(cfg.VolumeSize)
		exports[v] = mem[v]
	}
	addr := nbdtest.Serve(t, exports)
	w := newWriter(addr)
	defer w.close()
	m := newModel(cfg.VolumeSize)
	rng := rand.New(rand.NewPCG(1, 2))
	pool := newContentPool(1)
	ctx := context.Background()
	for range 3 {
		ops := genBatch(rng, cfg, pool, 0)
		for _, o := range ops {
			if err := w.do(ctx, o); err != nil {
				t.Fatal(err)
			}
			m.apply(o)
		}
		if err := w.flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range volumeNames {
		if n := diffBytes(mem[v].Bytes(), m.vols[v]); n != 0 {
			t.Errorf("volume %s: %d bytes differ from the model", v, n)
		}
		if f := mem[v].Counts().Flushes; f != 3 {
			t.Errorf("volume %s: %d flushes, want 3", v, f)
		}
	}
	c, err := w.conn(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8192)
	if err := c.ReadAt(got, 4096); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, m.vols["a"][4096:4096+8192]) {
		t.Error("read back differs from the model")
	}
	if err := c.WriteAt(make([]byte, 4096), cfg.VolumeSize); !errors.Is(err, nbd.ErrRange) {
		t.Errorf("write past the end: %v, want nbd.ErrRange (refused before sending)", err)
	}
}

// TestGenBatchDeterministicAndBounded: the same seed gives the same batch;
// every request is 4 KiB aligned, inside the volume, within MaxWrite; a
// minimum of written bytes is honoured.
func TestGenBatchDeterministicAndBounded(t *testing.T) {
	cfg := Config{Bin: "x", VolumeSize: 2 << 20, WritesPerBatch: 30, MaxWrite: 128 << 10}.withDefaults()
	pool := newContentPool(9)
	a := genBatch(rand.New(rand.NewPCG(9, 1)), cfg, pool, 0)
	b := genBatch(rand.New(rand.NewPCG(9, 1)), cfg, pool, 0)
	if len(a) != len(b) {
		t.Fatalf("lengths %d and %d", len(a), len(b))
	}
	kinds := map[opKind]int{}
	for i := range a {
		if a[i].vol != b[i].vol || a[i].off != b[i].off || a[i].n != b[i].n || !bytes.Equal(a[i].data, b[i].data) {
			t.Fatalf("request %d differs between runs of the same seed", i)
		}
		o := a[i]
		kinds[o.kind]++
		if o.off%blockSize != 0 || o.n%blockSize != 0 || o.n <= 0 || o.n > cfg.MaxWrite || o.off+int64(o.n) > cfg.VolumeSize {
			t.Errorf("request %d out of bounds: %+v", i, o)
		}
		if o.kind == opWrite && len(o.data) != o.n {
			t.Errorf("request %d: %d data bytes for length %d", i, len(o.data), o.n)
		}
	}
	if kinds[opWrite] == 0 {
		t.Error("no writes in a batch")
	}
	big := genBatch(rand.New(rand.NewPCG(9, 2)), cfg, pool, 3<<20)
	n := 0
	for _, o := range big {
		if o.kind == opWrite {
			n += o.n
		}
	}
	if n < 3<<20 {
		t.Errorf("batch with a minimum of 3 MiB wrote %d bytes", n)
	}
}

func TestPlanFault(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	seen := map[string]bool{}
	for range 500 {
		f := planFault(rng, AllFaults, 20)
		seen[f.Kind] = true
		if f.At < -1 || f.At >= 20 {
			t.Fatalf("trigger %d out of range: %v", f.At, f)
		}
		if (f.Kind == SrcBufferFull || f.Kind == DstBufferFull) && f.At != 0 {
			t.Errorf("%s must start before the batch: %v", f.Kind, f)
		}
		if killsSrc(f.Kind) && f.At < 0 {
			t.Errorf("kill-src must hit the batch: %v", f)
		}
		if f.Down < 0 || f.Down > 3*time.Second {
			t.Errorf("down %v out of range", f.Down)
		}
	}
	if len(seen) != len(AllFaults) {
		t.Errorf("500 plans drew %d of %d kinds", len(seen), len(AllFaults))
	}
}

func TestAvailable(t *testing.T) {
	full := map[string]bool{"listen": true, "to": true, "loss": true, "reorder": true, "duplicate": true}
	tests := []struct {
		name   string
		kinds  []string
		link   map[string]bool
		chattr bool
		tmpfs  bool
		want   int
	}{
		{"everything", nil, full, true, true, len(AllFaults)},
		{"no link", nil, nil, true, true, len(AllFaults) - 3},
		{"no chattr", nil, full, false, true, len(AllFaults) - 1},
		{"no tmpfs", nil, full, true, false, len(AllFaults) - 1},
		{"link without reorder", nil, map[string]bool{"listen": true, "to": true, "loss": true, "duplicate": true}, true, true, len(AllFaults) - 1},
		{"chosen", []string{KillDst, LinkLoss}, nil, false, false, 1},
	}
	direct := available(Config{Direct: true}, full, true, true)
	for _, k := range direct {
		if slices.Contains(proxyFaults, k) || slices.Contains(linkFaults, k) {
			t.Errorf("direct chain offers %s", k)
		}
	}
	if len(direct) != len(AllFaults)-len(proxyFaults)-len(linkFaults) {
		t.Errorf("direct chain kinds %v", direct)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := available(Config{Faults: tt.kinds}, tt.link, tt.chattr, tt.tmpfs)
			if len(got) != tt.want {
				t.Errorf("available = %v, want %d kinds", got, tt.want)
			}
		})
	}
}

func TestHelpFlags(t *testing.T) {
	help := "Usage: aimwan sim link [flags]\n  -listen ADDR\n    \tlisten here\n  -loss string\n  --to ADDR\n"
	got := helpFlags(help)
	for _, f := range []string{"listen", "loss", "to"} {
		if !got[f] {
			t.Errorf("flag %s not found in %v", f, got)
		}
	}
	if got["Usage:"] || len(got) != 3 {
		t.Errorf("flags %v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{Bin: "aimwan"}, true},
		{"no binary", Config{}, false},
		{"negative rounds", Config{Bin: "a", Rounds: -1}, false},
		{"odd volume size", Config{Bin: "a", VolumeSize: 1<<20 + 1}, false},
		{"tiny volume", Config{Bin: "a", VolumeSize: 4096}, false},
		{"write over volume", Config{Bin: "a", VolumeSize: 1 << 20, MaxWrite: 2 << 20}, false},
		{"unknown fault", Config{Bin: "a", Faults: []string{"meteor"}}, false},
		{"bad mode", Config{Bin: "a", Mode: "fast"}, false},
		{"bad link", Config{Bin: "a", Link: "maybe"}, false},
		{"short drain", Config{Bin: "a", DrainTimeout: time.Millisecond}, false},
		{"negative coalesce", Config{Bin: "a", Coalesce: -time.Second}, false},
		{"coalesce window", Config{Bin: "a", Coalesce: time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.withDefaults().validate()
			if (err == nil) != tt.ok {
				t.Fatalf("validate = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
		})
	}
	if _, err := Run(context.Background(), Config{}); !errors.Is(err, ErrConfig) {
		t.Errorf("Run without a binary: %v", err)
	}
}

func TestDiffBytes(t *testing.T) {
	want := bytes.Repeat([]byte{7}, 200<<10)
	got := append([]byte(nil), want...)
	if n := diffBytes(got, want); n != 0 {
		t.Errorf("equal: %d", n)
	}
	got[5], got[150<<10] = 0, 0
	if n := diffBytes(got, want); n != 2 {
		t.Errorf("two differ: %d", n)
	}
	if n := diffBytes(want[:100], want); n != int64(len(want)-100) {
		t.Errorf("short file: %d", n)
	}
	dir := t.TempDir()
	if n, err := compareFile(filepath.Join(dir, "missing"), want); err != nil || n != int64(len(want)) {
		t.Errorf("missing file: %d %v", n, err)
	}
}

func TestReport(t *testing.T) {
	r := newReport(Config{Seed: 5, Rounds: 2}, "/tmp/x", false, []string{KillDst})
	r.addRound(RoundReport{Round: 1, Faults: []fault{{Kind: KillDst}, {Kind: WipeCache}}, Snapshots: 4, BytesChecked: 100})
	r.addRound(RoundReport{Round: 2, Faults: []fault{{Kind: KillDst}}, Snapshots: 2, BytesChecked: 50, BytesLost: 3,
		Mismatches: []string{"snapshot a/x: 3 bytes differ"}})
	if r.FaultsTotal != 3 || r.Faults[KillDst] != 2 || r.BytesChecked != 150 || r.BytesLost != 3 || r.Rounds != 2 {
		t.Fatalf("totals: %+v", r)
	}
	if r.OK() {
		t.Error("a report with lost bytes is OK")
	}
	clean := newReport(Config{Seed: 1, Rounds: 1}, "/tmp/y", false, nil)
	clean.addRound(RoundReport{Round: 1, Snapshots: 1, BytesChecked: 10, Anomalies: []string{"dst volume a: buffer bytes -4096"}})
	var cb strings.Builder
	clean.WriteTable(&cb)
	if clean.OK() || !strings.Contains(cb.String(), "anomalies") || !strings.Contains(cb.String(), "ANOMALY: round 1") {
		t.Errorf("anomaly not reported:\n%s", cb.String())
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"FAIL", "kill-dst", "bytes lost", "round 2: snapshot a/x"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, b.String())
		}
	}
	js, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if back["bytes_lost"].(float64) != 3 || back["faults"].(float64) != 3 {
		t.Errorf("JSON: %s", js)
	}
}
