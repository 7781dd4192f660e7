package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit/nbdtest"
	"github.com/aimwan/aimwan/nbd"
)

func TestPeakRate(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	var pts []point
	// 1 MB/s for 20 s, then 5 MB/s for 12 s, then idle for 10 s.
	v := 0.0
	for i := 0; i <= 42; i++ {
		pts = append(pts, point{t: t0.Add(time.Duration(i) * time.Second), ok: true, dstLogical: v})
		switch {
		case i < 20:
			v += 1e6
		case i < 32:
			v += 5e6
		}
	}
	pts[25].ok = false // a failed scrape is skipped
	tests := []struct {
		name     string
		from, to time.Time
		w        time.Duration
		want     float64
	}{
		{"whole run", t0, t0.Add(time.Hour), 10 * time.Second, 5e6},
		{"first part", t0, t0.Add(20 * time.Second), 10 * time.Second, 1e6},
		{"window longer than the span", t0, t0.Add(5 * time.Second), 10 * time.Second, 0},
		{"idle tail", t0.Add(32 * time.Second), t0.Add(time.Hour), 5 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := peakRate(pts, tt.from, tt.to, tt.w); got != tt.want {
				t.Errorf("peak = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMetricsHelpers(t *testing.T) {
	m := scrapeValues{
		`aimwan_dst_logical_bytes_total{volume="vm1"}`: 10,
		`aimwan_dst_logical_bytes_total{volume="vm2"}`: 32,
		`aimwan_dst_logical_bytes_total_other`:         1000,
		`aimwan_link_bytes_total{direction="forward"}`: 5,
		`aimwan_link_bytes_total{direction="reverse"}`: 7,
		`aimwan_proxy_wire_bytes_total`:                3,
	}
	if got := m.sum("aimwan_dst_logical_bytes_total"); got != 42 {
		t.Errorf("sum = %v, want 42", got)
	}
	if got := m.max("aimwan_dst_logical_bytes_total"); got != 32 {
		t.Errorf("max = %v, want 32", got)
	}
	if got := m.sum("aimwan_proxy_wire_bytes_total"); got != 3 {
		t.Errorf("sum unlabelled = %v, want 3", got)
	}
	by := m.byLabel("aimwan_link_bytes_total", "direction")
	if by["forward"] != 5 || by["reverse"] != 7 || len(by) != 2 {
		t.Errorf("byLabel = %v", by)
	}
	if got := forward(by); got != 5 {
		t.Errorf("forward = %v, want 5", got)
	}
	if got := forward(map[string]float64{"up": 9, "down": 1}); got != 9 {
		t.Errorf("forward(up/down) = %v, want 9", got)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Out: "/tmp/x", Bin: "/bin/true"}
	tests := []struct {
		name string
		mod  func(*Config)
		err  bool
	}{
		{"defaults", func(*Config) {}, false},
		{"no out", func(c *Config) { c.Out = "" }, true},
		{"no bin", func(c *Config) { c.Bin = "" }, true},
		{"one image", func(c *Config) { c.Images = []string{"a"} }, true},
		{"two images", func(c *Config) { c.Images = []string{"a", "b"} }, false},
		{"unknown scale", func(c *Config) { c.Scale = "huge" }, true},
		{"cross fills the line", func(c *Config) { c.Cross = 300_000 }, true},
		{"prime images without template", func(c *Config) { c.Images = []string{"a", "b"}; c.Prime = true }, true},
		{"prime generated", func(c *Config) { c.Prime = true }, false},
		{"negative passthrough", func(c *Config) { c.Passthrough = -time.Second }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			err := c.withDefaults().validate()
			if (err != nil) != tt.err {
				t.Fatalf("validate = %v, want error %v", err, tt.err)
			}
			if err != nil && !errors.Is(err, ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
		})
	}
	d := Config{}.withDefaults()
	if d.Rate != 250_000 || d.RTT != 40*time.Millisecond || d.Cross != 70_000 || d.Scale != "small" || d.Seed != 1 {
		t.Errorf("defaults: %+v", d)
	}
	if n := (Config{Cross: -1}).withDefaults().Cross; n != 0 {
		t.Errorf("negative cross = %v, want 0 (none)", n)
	}
}

// TestCreateThroughNBD writes images (zeros included) through the project's
// NBD server and checks the bytes, the hash and the thick writes.
func TestCreateThroughNBD(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const size = 5<<20 + 4096 // not a multiple of the write size
	src := make([]byte, size)
	for i := range src[:size/2] { // second half stays zero
		src[i] = byte(i * 7)
	}
	exps := map[string]*nbdtest.MemExport{"vm1": nbdtest.NewMemExport(size), "vm2": nbdtest.NewMemExport(size)}
	addr := nbdtest.Serve(t, nbd.ExportMap{"vm1": exps["vm1"], "vm2": exps["vm2"]})
	imgs := []*image{
		{volume: "vm1", label: "a", r: bytes.NewReader(src), size: size},
		{volume: "vm2", label: "b", r: bytes.NewReader(src), size: size},
	}
	var mu sync.Mutex
	last := map[int]int64{}
	if err := create(ctx, addr, imgs, func(i int, n int64) { mu.Lock(); last[i] = n; mu.Unlock() }); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(src)
	for i, im := range imgs {
		e := exps[im.volume]
		if !bytes.Equal(e.Bytes(), src) {
			t.Errorf("%s: bytes differ", im.volume)
		}
		if im.sha != want {
			t.Errorf("%s: hash of what was written differs", im.volume)
		}
		c := e.Counts()
		if wantW := (size + writeChunk - 1) / writeChunk; c.Writes != wantW || c.Flushes != 1 || c.Zeroes+c.Trims != 0 {
			t.Errorf("%s: %+v; want %d writes (thick, zeros included: no zeroes or trims) and 1 flush", im.volume, c, wantW)
		}
		if last[i] != size {
			t.Errorf("%s: progress ended at %d", im.volume, last[i])
		}
	}
	big := []*image{{volume: "vm1", label: "big", r: bytes.NewReader(make([]byte, size+1)), size: size + 1}}
	if err := create(ctx, addr, big, func(int, int64) {}); err == nil {
		t.Error("an image larger than the export was accepted")
	}
	if err := create(ctx, addr, []*image{{volume: "nope", r: bytes.NewReader(src), size: 1}}, func(int, int64) {}); err == nil {
		t.Error("an unknown export was accepted")
	}
}

func TestResultTable(t *testing.T) {
	r := &Result{LineKBps: 250, PassthroughKBps: 170, EffectiveKBps: 3600, Speedup: 14.4, PeakSpeedup: 19,
		LogicalBytes: 700e6, WireBytes: 40e6, ElapsedS: 200, Verified: true, Drained: true, ReductionX: 17.5,
		Link:   LinkInfo{Simulated: true, RateBps: 250e3, RTTMs: 40, CrossBps: 70e3},
		Phases: []PhaseResult{{Name: "passthrough", DurationS: 100, TimeLatencyEndS: 99}, {Name: "optimize", DurationS: 200}},
		CPU:    map[string]CPU{}, Notes: []string{"n1"}}
	var b bytes.Buffer
	r.PrintTable(&b)
	for _, want := range []string{"14.4x = 3600 KB/s", "19.0x = 4750 KB/s", "1m39s (growing", "note: n1", "Verified"} {
		if !bytes.Contains(b.Bytes(), []byte(want)) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
