package dedupe

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/restic/chunker"
)

const benchPayload = 4 << 20

// benchImage is a cached template for the ingest benchmarks.
var benchImage []byte

func benchTemplate() []byte {
	if benchImage == nil {
		benchImage = newImageGen(42).template(32 << 20)
	}
	return benchImage
}

// BenchmarkIngest measures Encode throughput (report cpuMB/s, run with
// GOMAXPROCS=1 for one core): "novel" payloads never seen by the peer
// index (compressible template data: chunking, hashing and zstd), "dup"
// payloads it already holds. With local=true the encoder also keeps its
// own store (delta literals), as the source proxy does.
func BenchmarkIngest(b *testing.B) {
	img := benchTemplate()
	for _, avg := range []int{4 << 10, 8 << 10, 16 << 10} {
		levels := []Level{LevelDefault}
		if avg == 8<<10 {
			levels = []Level{LevelFastest, LevelDefault, LevelBetter, LevelBest}
			if MaxAvailable() {
				levels = append(levels, LevelMax)
			}
		}
		for _, lvl := range levels {
			b.Run(fmt.Sprintf("novel/avg=%dk/level=%v", avg>>10, lvl), func(b *testing.B) {
				var wire, in int
				cpuLoop(b, benchPayload, func(i int) {
					e, _ := NewEncoder(EncoderConfig{Params: Params{AvgSize: avg}, Level: lvl})
					off := (i * benchPayload) % len(img)
					out, _, err := e.Encode(nil, img[off:off+benchPayload])
					if err != nil {
						b.Fatal(err)
					}
					wire += len(out)
					in += benchPayload
				})
				b.ReportMetric(float64(wire)/float64(in)*100, "wire%")
			})
		}
		for _, local := range []bool{false, true} {
			b.Run(fmt.Sprintf("dup/avg=%dk/local=%v", avg>>10, local), func(b *testing.B) {
				cfg := EncoderConfig{Params: Params{AvgSize: avg}}
				if local {
					cfg.Local, _ = OpenStore(StoreConfig{MaxBytes: 2 * int64(len(img))})
				}
				e, _ := NewEncoder(cfg)
				for off := 0; off < len(img); off += benchPayload {
					if _, _, err := e.Encode(nil, img[off:off+benchPayload]); err != nil {
						b.Fatal(err)
					}
				}
				var wire, in int
				cpuLoop(b, benchPayload, func(i int) {
					off := (i * benchPayload) % len(img)
					out, _, err := e.Encode(nil, img[off:off+benchPayload])
					if err != nil {
						b.Fatal(err)
					}
					wire += len(out)
					in += benchPayload
				})
				b.ReportMetric(float64(wire)/float64(in)*100, "wire%")
			})
		}
	}
}

// BenchmarkZstd3 is the reference: single-thread zstd -3 (klauspost
// SpeedDefault) over the same payloads.
func BenchmarkZstd3(b *testing.B) {
	img := benchTemplate()
	z, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	var wire, in int
	cpuLoop(b, benchPayload, func(i int) {
		off := (i * benchPayload) % len(img)
		out := z.EncodeAll(img[off:off+benchPayload], nil)
		wire += len(out)
		in += benchPayload
	})
	b.ReportMetric(float64(wire)/float64(in)*100, "wire%")
}

// BenchmarkChunking compares the cut finders on 4 MiB of the template:
// restic/chunker itself and the in-place cut; and SHA-256 for scale.
func BenchmarkChunking(b *testing.B) {
	img := benchTemplate()[:benchPayload]
	p, _ := Params{}.Normalize()
	s := newSplitter(p)
	b.Run("library", func(b *testing.B) {
		buf := make([]byte, 0, p.MaxSize)
		cpuLoop(b, benchPayload, func(int) {
			c := chunker.NewWithBoundaries(bytes.NewReader(img), p.Pol, uint(p.MinSize), uint(p.MaxSize))
			c.SetAverageBits(p.avgBits())
			for {
				if _, err := c.Next(buf); err != nil {
					break
				}
			}
		})
	})
	b.Run("inplace", func(b *testing.B) {
		var pieces []piece
		cpuLoop(b, benchPayload, func(int) {
			pieces, _ = s.chunkSegment(pieces[:0], img, 0, len(img))
		})
	})
	b.Run("sha256", func(b *testing.B) {
		cpuLoop(b, benchPayload, func(int) {
			for off := 0; off < len(img); off += 8192 {
				Sum(img[off : off+8192])
			}
		})
	})
}
