package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/internal/testkit/nbdtest"
	"github.com/aimwan/aimwan/nbd"
	"github.com/aimwan/aimwan/sim/estimate"
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
		{"no passthrough", func(c *Config) { c.Passthrough = -1 }, false},
		{"unlimited line", func(c *Config) { c.Rate = math.Inf(1) }, false},
		{"unlimited line with cross traffic", func(c *Config) { c.Rate = math.Inf(1); c.Cross = 70e3 }, false},
		{"zero rate", func(c *Config) { c.Rate = -1 }, true},
		{"NaN rate", func(c *Config) { c.Rate = math.NaN() }, true},
		{"infinite cross", func(c *Config) { c.Rate = math.Inf(1); c.Cross = math.Inf(1) }, true},
		{"negative limit", func(c *Config) { c.Limit = -time.Second }, true},
		{"seed scale", func(c *Config) { c.Scale = "seed" }, false},
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
	if d := (Config{Rate: math.Inf(1)}).withDefaults(); d.Cross != 0 || !d.unlimited() {
		t.Errorf("unlimited line: %+v, want no cross traffic", d)
	}
	seed := Config{Scale: "seed"}.withDefaults()
	sc := seed.scale()
	if seed.Rate != 2_500_000 || seed.Cross != 700_000 || !sc.Thin || !sc.OneByOne || sc.TemplateSize != 12<<30 || sc.lineScale() != 10 {
		t.Errorf("seed scale: %+v %+v, want a 20 Mbit/s line with 700 KB/s cross traffic, thin, one by one, 12 GiB", seed, sc)
	}
	small := Config{Passthrough: -1, Thin: true, Limit: time.Hour}.withDefaults().scale()
	if !small.noPassthrough() || !small.OneByOne || !small.Thin || small.OptimizeLimit != time.Hour || small.lineScale() != 1 {
		t.Errorf("overrides: %+v", small)
	}
	if d := (Config{}).withDefaults().scale(); d.Thin || d.OneByOne || d.noPassthrough() {
		t.Errorf("make demo's scale changed: %+v", d)
	}
}

// TestCreateThroughNBD writes images (zeros included) through the project's
// NBD server, thick and thin, side by side and one after another, and
// checks the bytes, the hash and the requests.
func TestCreateThroughNBD(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const size = 5<<20 + 4096 + 100 // not a multiple of the write size, nor of a block
	src := make([]byte, size)
	for i := range src[:size/2] { // second half zero but for a few bytes
		src[i] = byte(i * 7)
	}
	clear(src[12288:20480]) // two zero blocks inside data
	src[3<<20+5] = 1        // a lone data block among zeros
	src[size-1] = 9         // the short last block holds data
	var dataBlocks int64
	for off := 0; off < size; off += zeroBlock {
		if b := src[off:min(off+zeroBlock, size)]; !isZero(b) {
			dataBlocks += int64(len(b))
		}
	}
	for _, mode := range []createMode{{}, {oneByOne: true}, {thin: true}, {thin: true, oneByOne: true}} {
		t.Run(strings.TrimSpace(mode.how(2)), func(t *testing.T) {
			exps := map[string]*nbdtest.MemExport{"vm1": nbdtest.NewMemExport(size), "vm2": nbdtest.NewMemExport(size)}
			exps["vm2"].WriteAt(bytes.Repeat([]byte{0xff}, size), 0, false) // not empty: thin zeroes must land too
			addr := nbdtest.Serve(t, nbd.ExportMap{"vm1": exps["vm1"], "vm2": exps["vm2"]})
			before := map[string]nbdtest.Counts{"vm1": exps["vm1"].Counts(), "vm2": exps["vm2"].Counts()}
			imgs := []*image{
				{volume: "vm1", label: "a", r: bytes.NewReader(src), size: size},
				{volume: "vm2", label: "b", r: bytes.NewReader(src), size: size},
			}
			var mu sync.Mutex
			last := map[int]int64{}
			if err := create(ctx, addr, imgs, mode, func(i int, n int64) { mu.Lock(); last[i] = n; mu.Unlock() }); err != nil {
				t.Fatal(err)
			}
			want := sha256.Sum256(src)
			for i, im := range imgs {
				e := exps[im.volume]
				if got := e.Bytes(); !bytes.Equal(got, src) {
					t.Errorf("%s: bytes differ: %s", im.volume, testkit.FirstDiff(src, got))
				}
				if im.sha != want || last[i] != size {
					t.Errorf("%s: hash of what was written differs, or progress ended at %d", im.volume, last[i])
				}
				c, b := e.Counts(), before[im.volume]
				c.Writes, c.Zeroes, c.Flushes = c.Writes-b.Writes, c.Zeroes-b.Zeroes, c.Flushes-b.Flushes
				switch {
				case c.Flushes != 1 || c.Trims != 0:
					t.Errorf("%s: %+v, want 1 flush and no trims", im.volume, c)
				case !mode.thin && (c.Writes != (size+writeChunk-1)/writeChunk || c.Zeroes != 0 || im.sent != written{data: size}):
					t.Errorf("%s thick: %+v, sent %+v; want every block as data", im.volume, c, im.sent)
				case mode.thin && (im.sent.data != dataBlocks || im.sent.data+im.sent.zeros != size || c.Zeroes < 3):
					t.Errorf("%s thin: sent %+v in %+v; want %d data bytes and the rest zeroes", im.volume, im.sent, c, dataBlocks)
				}
			}
			big := []*image{{volume: "vm1", label: "big", r: bytes.NewReader(make([]byte, size+1)), size: size + 1}}
			if err := create(ctx, addr, big, mode, func(int, int64) {}); err == nil {
				t.Error("an image larger than the export was accepted")
			}
			if err := create(ctx, addr, []*image{{volume: "nope", r: bytes.NewReader(src), size: 1}}, mode, func(int, int64) {}); err == nil {
				t.Error("an unknown export was accepted")
			}
		})
	}
}

func TestThinZeroRequests(t *testing.T) {
	// A long zero run crosses write buffers: it goes as few requests of at
	// most maxZeroRequest bytes, not one per buffer.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const size = 2*maxZeroRequest + 3*writeChunk
	src := make([]byte, size)
	src[0], src[size-1] = 1, 1
	e := nbdtest.NewMemExport(size)
	addr := nbdtest.Serve(t, nbd.ExportMap{"v": e})
	im := &image{volume: "v", r: bytes.NewReader(src), size: size}
	if err := create(ctx, addr, []*image{im}, createMode{thin: true}, func(int, int64) {}); err != nil {
		t.Fatal(err)
	}
	if c := e.Counts(); !bytes.Equal(e.Bytes(), src) || c.Writes != 2 || c.Zeroes != 3 || im.sent.data != 2*zeroBlock {
		t.Errorf("%+v, sent %+v; want 2 writes of a block and 3 zero requests", c, im.sent)
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
	for _, want := range []string{"14.4x = 3600 KB/s", "19.0x = 4750 KB/s", "1m39s (growing", "note: n1", "Verified", "(0.68x line)",
		"Offline estimate", "not computed", "Proxy peak RSS", "— / —"} {
		if !bytes.Contains(b.Bytes(), []byte(want)) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	// An unlimited line without a pass-through phase, with the estimate
	// and the proxies' peak RSS: no speed-ups over a line, an ingest rate.
	u := &Result{EffectiveKBps: 45_000, LogicalBytes: 3.5e9, WireBytes: 1.1e9, ElapsedS: 80, ReductionX: 3.2,
		Link:   LinkInfo{Simulated: true, Unlimited: true, RTTMs: 40},
		Phases: []PhaseResult{{Name: "optimize", DurationS: 80, PeakKBps: 60_000}}, CPU: map[string]CPU{},
		PeakRSS:  map[string]int64{"proxy-src/optimize": 800 << 20, "proxy-dst/optimize": 300 << 20},
		Estimate: &estimate.Result{Bytes: 9.6e9}, EstimateBytes: 786e6, WireVsEstimate: 1.1e9 / 786e6}
	b.Reset()
	u.PrintTable(&b)
	for _, want := range []string{"unlimited, RTT 40 ms", "none: every clone created", "45.0 MB/s over 1m20s (best minute 60.0 MB/s)",
		"786.0 MB for the clones'", "wire / estimate = 1.40", "800 MiB / 300 MiB"} {
		if !bytes.Contains(b.Bytes(), []byte(want)) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	for _, unwanted := range []string{"Inf", "NaN", "Peak speed-up", "Line use"} {
		if bytes.Contains(b.Bytes(), []byte(unwanted)) {
			t.Errorf("table has %q:\n%s", unwanted, b.String())
		}
	}
}

func TestSeedUnits(t *testing.T) {
	res := &Result{LineKBps: 2500, PassthroughKBps: 1800, EffectiveKBps: 20_000, LineScale: 10,
		Link: LinkInfo{Simulated: true}, Projection: Projection{PassthroughH: 5.5, EffectiveH: 0.5},
		Phases: []PhaseResult{{Name: phasePass, DurationS: 240, TimeLatencyEndS: 200}, {Name: phaseOpt, DurationS: 900, PeakKBps: 30_000}}}
	r := &run{res: res}
	got := r.seedUnits()
	want := SeedUnits{LineKBps: 250, PassthroughKBps: 180, EffectiveKBps: 2000, PeakKBps: 3000, PassthroughMin: 40, OptimizedMin: 150,
		TimeLatencyEndPassMin: 2000.0 / 60, Projection: Projection{PassthroughH: 55, EffectiveH: 5}}
	if got == nil || *got != want {
		t.Fatalf("seed units %+v, want %+v", got, want)
	}
	var b bytes.Buffer
	res.SeedUnits = got
	res.PrintTable(&b)
	if !bytes.Contains(b.Bytes(), []byte("In seed units (rates ÷ 10, times × 10)")) || !bytes.Contains(b.Bytes(), []byte("effective 2000 KB/s over 150 min")) {
		t.Errorf("table lacks the seed units:\n%s", b.String())
	}
	for _, r := range []*Result{{LineScale: 1, Link: LinkInfo{Simulated: true}}, {LineScale: 10, Link: LinkInfo{Simulated: true, Unlimited: true}}} {
		if u := (&run{res: r}).seedUnits(); u != nil {
			t.Errorf("seed units for %+v: %+v, want none", r, u)
		}
	}
}

func TestOptimizeLimit(t *testing.T) {
	imgs := &workloadSet{images: []*image{{size: 900e6}, {size: 900e6}}}
	tests := []struct {
		name string
		cfg  Config
		want time.Duration
	}{
		{"generated: the scale's", Config{}, 6 * time.Minute},
		{"images on 2 Mbit/s: the line's time for every byte", Config{Images: []string{"a", "b"}}, 10000 * time.Second},
		{"images, unlimited: at 10 MB/s, at least the scale's", Config{Images: []string{"a", "b"}, Rate: math.Inf(1)}, 6 * time.Minute},
		{"images, --limit", Config{Images: []string{"a", "b"}, Limit: time.Hour}, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Out, cfg.Bin = "x", "y"
			cfg = cfg.withDefaults()
			r := &run{cfg: cfg, sc: cfg.scale(), ws: imgs}
			if got := r.limit(); got != tt.want {
				t.Errorf("limit %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLinkAndWindowArgs(t *testing.T) {
	tests := []struct {
		name        string
		cfg         Config
		link, proxy string
	}{
		{"make demo", Config{}, "--rate 250KB/s --rtt 40ms --metrics m --cross 70KB/s", "--link-rate 250KB/s --rtt 40ms"},
		{"seed: 10x line, 10x cross packets", Config{Scale: "seed"}, "--rate 2500KB/s --rtt 40ms --metrics m --cross 700KB/s --cross-packet 2000",
			"--link-rate 2500KB/s --rtt 40ms"},
		{"unlimited: no cross traffic, default windows", Config{Rate: math.Inf(1)}, "--rate unlimited --rtt 40ms --metrics m", "--rtt 40ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &chain{cfg: tt.cfg.withDefaults(), a: addrs{link: "l", wan: "w", linkMetrics: "m"}}
			if got := strings.Join(c.linkArgs(), " "); got != "sim link --listen l --to w "+tt.link {
				t.Errorf("link: %s", got)
			}
			if got := strings.Join(c.windowArgs(), " "); got != tt.proxy {
				t.Errorf("proxies: %s", got)
			}
		})
	}
}
