package dedupe

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/aimwan/aimwan/sim/workload"
	"github.com/klauspost/compress/zstd"
)

// The wire benchmark: a template volume and three clones of it (1% of
// their 4 KiB blocks rewritten; from sim/workload and from gen_test.go), sent one after the other as 4 MiB
// journal payloads through an encoder/decoder pair, side by side with
// stream compressors over the same bytes. AIMWAN_DEDUPE_BENCH_MIB sets
// the template size (default 32 MiB; the stream is four times that).

type wireSet struct {
	vols  [][]byte // template, clone 1..3
	fresh []byte   // the rewritten blocks of clone 1
	size  int64    // total bytes

	gzip6, zstd3, zstdLong int64 // baseline sizes (zstdLong -1 when the binary is absent)
}

var (
	wireMu   sync.Mutex
	wireData = map[string]*wireSet{}
)

func benchMiB() int {
	if v, err := strconv.Atoi(os.Getenv("AIMWAN_DEDUPE_BENCH_MIB")); err == nil && v > 0 {
		return v
	}
	return 32
}

// loadWireSet builds (once per data source) the four volumes: "gen" is
// this package's generator, "sim" the sim/workload template and clones
// (ChangeFraction 1%).
func loadWireSet(b *testing.B, data string) *wireSet {
	wireMu.Lock()
	defer wireMu.Unlock()
	if ws := wireData[data]; ws != nil {
		return ws
	}
	ws := &wireSet{}
	switch data {
	case "sim":
		t, err := workload.NewTemplate(workload.Config{Size: int64(benchMiB()) << 20, Seed: 2026, ChangeFraction: 0.01})
		if err != nil {
			b.Fatal(err)
		}
		ws.vols = append(ws.vols, readImage(b, t.Image()))
		for i := 1; i <= 3; i++ {
			im := t.Clone(i)
			v := readImage(b, im)
			ws.vols = append(ws.vols, v)
			if i == 1 {
				for _, r := range im.Changed() {
					ws.fresh = append(ws.fresh, v[r.Start*workload.BlockSize:(r.Start+r.Count)*workload.BlockSize]...)
				}
			}
		}
	default:
		g := newImageGen(2026)
		tpl := g.template(benchMiB() << 20)
		ws.vols = [][]byte{tpl}
		for i := 0; i < 3; i++ {
			c, fresh := g.clone(tpl, 0.01)
			if i == 0 {
				ws.fresh = fresh
			}
			ws.vols = append(ws.vols, c)
		}
	}
	for _, v := range ws.vols {
		ws.size += int64(len(v))
	}
	ws.gzip6 = gzipSize(ws.vols)
	ws.zstd3 = zstd3Size(ws.vols)
	ws.zstdLong = zstdLongSize(b, ws.vols)
	wireData[data] = ws
	return ws
}

func readImage(b *testing.B, im *workload.Image) []byte {
	v := make([]byte, im.Size())
	if _, err := im.ReadAt(v, 0); err != nil && !errors.Is(err, io.EOF) {
		b.Fatal(err)
	}
	return v
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func gzipSize(vols [][]byte) int64 {
	var cw countWriter
	z, _ := gzip.NewWriterLevel(&cw, 6)
	for _, v := range vols {
		_, _ = z.Write(v)
	}
	_ = z.Close()
	return cw.n
}

func zstd3Size(vols [][]byte) int64 {
	var cw countWriter
	z, _ := zstd.NewWriter(&cw, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	for _, v := range vols {
		_, _ = z.Write(v)
	}
	_ = z.Close()
	return cw.n
}

// zstdLongSize runs the offline reference `zstd --long=31 -19` (one
// thread) over the stream; -1 when the zstd binary is absent. It takes
// minutes, so the result is cached by the stream's SHA-256 in the user
// cache directory (aimwan-dedupe-bench/).
func zstdLongSize(b *testing.B, vols [][]byte) (size int64) {
	bin, err := exec.LookPath("zstd")
	if err != nil {
		b.Log("zstd binary absent: skipping the zstd --long=31 -19 column")
		return -1
	}
	h := sha256.New()
	for _, v := range vols {
		h.Write(v)
	}
	var cache string
	if dir, err := os.UserCacheDir(); err == nil {
		cache = filepath.Join(dir, "aimwan-dedupe-bench", fmt.Sprintf("%x.zstd19long", h.Sum(nil)))
		if s, err := os.ReadFile(cache); err == nil {
			if n, err := strconv.ParseInt(string(s), 10, 64); err == nil {
				return n
			}
		}
	}
	defer func() {
		if cache != "" && err == nil {
			_ = os.MkdirAll(filepath.Dir(cache), 0o755)
			_ = os.WriteFile(cache, []byte(strconv.FormatInt(size, 10)), 0o644)
		}
	}()
	dir := b.TempDir()
	in := filepath.Join(dir, "stream")
	f, err := os.Create(in)
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range vols {
		if _, err := f.Write(v); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(dir, "stream.zst")
	cmd := exec.Command(bin, "-q", "-f", "-T1", "--long=31", "-19", in, "-o", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("zstd: %v: %s", err, msg)
	}
	fi, err := os.Stat(out)
	if err != nil {
		b.Fatal(err)
	}
	size = fi.Size()
	return size
}

// sendVolume sends a volume as 4 MiB payloads and returns the wire bytes
// (streams, miss lists and answers). Every payload is decoded and checked.
func sendVolume(b *testing.B, e *Encoder, d *Decoder, vol []byte) int64 {
	var wire int64
	for off := 0; off < len(vol); off += benchPayload {
		payload := vol[off:min(off+benchPayload, len(vol))]
		s, _, err := e.Encode(nil, payload)
		if err != nil {
			b.Fatal(err)
		}
		wire += int64(len(s))
		p, err := d.Decode(s)
		if err != nil {
			b.Fatal(err)
		}
		if !p.Complete() {
			ml := p.AppendMissList(nil)
			ans, err := e.Answer(nil, payload, ml)
			if err != nil {
				b.Fatal(err)
			}
			if err := p.Resolve(ans); err != nil {
				b.Fatal(err)
			}
			wire += int64(len(ml) + len(ans))
		}
		got, err := p.Payload()
		if err != nil || !bytes.Equal(got, payload) {
			b.Fatalf("payload at %d: %v", off, err)
		}
	}
	return wire
}

// BenchmarkWire reports, per setting, the wire bytes of the four-volume
// stream next to gzip -6, zstd -3 and zstd --long=31 -19, and the cost of
// a duplicate volume and of one 1%-rewritten clone. "local" gives the
// encoder its own store (delta literals). Each setting runs once however
// large b.N is (the metrics are per run). AIMWAN_DEDUPE_BENCH_ALL=1 adds
// the 4 KiB / 16 KiB averages and the other levels.
func BenchmarkWire(b *testing.B) {
	type setting struct {
		avg   int
		level Level
		local bool
	}
	set := []setting{{8 << 10, LevelDefault, true}, {8 << 10, LevelBest, true}, {8 << 10, LevelDefault, false}}
	if MaxAvailable() {
		set = append(set, setting{8 << 10, LevelMax, true})
	}
	if os.Getenv("AIMWAN_DEDUPE_BENCH_ALL") == "1" {
		set = append(set, setting{4 << 10, LevelDefault, true}, setting{16 << 10, LevelDefault, true},
			setting{8 << 10, LevelFastest, true}, setting{8 << 10, LevelBetter, true},
			setting{4 << 10, LevelBest, true}, setting{16 << 10, LevelBest, true})
	}
	for _, data := range []string{"sim", "gen"} {
		for _, c := range set {
			name := fmt.Sprintf("data=%s/avg=%dk/level=%v/local=%v", data, c.avg>>10, c.level, c.local)
			b.Run(name, func(b *testing.B) {
				ws := loadWireSet(b, data)
				for i := 0; b.Loop(); i++ {
					if i == 0 {
						runWire(b, ws, Params{AvgSize: c.avg}, c.level, c.local)
					}
				}
			})
		}
	}
}

func runWire(b *testing.B, ws *wireSet, p Params, level Level, local bool) {
	st, err := OpenStore(StoreConfig{MaxBytes: 2 * ws.size})
	if err != nil {
		b.Fatal(err)
	}
	cfg := EncoderConfig{Params: p, Level: level}
	if local {
		if cfg.Local, err = OpenStore(StoreConfig{MaxBytes: 2 * ws.size}); err != nil {
			b.Fatal(err)
		}
	}
	e, err := NewEncoder(cfg)
	if err != nil {
		b.Fatal(err)
	}
	d, err := NewDecoder(DecoderConfig{Params: p, Store: st})
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	t0 := cpuNow()
	tplWire := sendVolume(b, e, d, ws.vols[0])
	tplCPU := cpuNow() - t0
	total += tplWire
	cloneWire := sendVolume(b, e, d, ws.vols[1])
	total += cloneWire
	for _, v := range ws.vols[2:] {
		total += sendVolume(b, e, d, v)
	}
	dupWire := sendVolume(b, e, d, ws.vols[0]) // not part of the four-volume total
	vol := float64(len(ws.vols[0]))
	freshZ := int64(len(zstd3All(ws.fresh)))
	b.ReportMetric(float64(total), "wire_B")
	b.ReportMetric(float64(ws.gzip6), "gzip6_B")
	b.ReportMetric(float64(ws.zstd3), "zstd3_B")
	if ws.zstdLong > 0 {
		b.ReportMetric(float64(ws.zstdLong), "zstd19long_B")
		b.ReportMetric(float64(total)/float64(ws.zstdLong), "x_vs_long")
	}
	b.ReportMetric(float64(dupWire)/vol*100, "dup_%")
	b.ReportMetric(float64(cloneWire)/vol*100, "clone_%")
	b.ReportMetric(float64(cloneWire-freshZ)/vol*100, "clone_minus_new_%")
	b.ReportMetric(vol/tplCPU.Seconds()/1e6, "tpl_send_cpuMB/s")
	b.Logf("stream %d B: dedupe %d, gzip-6 %d, zstd-3 %d, zstd --long=31 -19 %d; template %d, clone %d (new blocks %d B, zstd-3 %d B), duplicate %d",
		ws.size, total, ws.gzip6, ws.zstd3, ws.zstdLong, tplWire, cloneWire, len(ws.fresh), freshZ, dupWire)
}

func zstd3All(b []byte) []byte {
	z, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	return z.EncodeAll(b, nil)
}

var _ io.Writer = (*countWriter)(nil)
