package dedupe

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// BenchmarkStoreLookup measures lookups (Has) in a store in a folder: in
// stream order (the chunks of whole containers one after another, as a
// clone's references come) and in random order (nearly every lookup reads a
// fingerprint-table bucket and a container table). AIMWAN_STORE_DIR and
// AIMWAN_STORE_BYTES point it at an existing store (for example a 64 GiB
// one filled with aimwan proxy prime; docs/dedupe.md); otherwise it fills a
// 256 MiB one. It reports lookups per second and the open time.
func BenchmarkStoreLookup(b *testing.B) {
	dir, capacity := os.Getenv("AIMWAN_STORE_DIR"), int64(512<<20)
	if dir != "" {
		n, err := strconv.ParseInt(os.Getenv("AIMWAN_STORE_BYTES"), 10, 64)
		if err != nil {
			b.Fatal("AIMWAN_STORE_BYTES: the store's capacity in bytes")
		}
		capacity = n
	} else {
		dir = b.TempDir()
		st, err := OpenStore(StoreConfig{Dir: dir, MaxBytes: capacity})
		if err != nil {
			b.Fatal(err)
		}
		putChain(st, chunkSeq(5, 32<<10, 8<<10))
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	st, err := OpenStore(StoreConfig{Dir: dir, MaxBytes: capacity})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	opened := time.Since(start)
	// Sample the fingerprints of up to 256 containers spread over the store.
	var stream []Fingerprint
	ids := append([]uint32(nil), st.ids...)
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	for _, id := range ids[:min(len(ids), 256)] {
		c, err := readContainer(st.files, id, st.info[id].file)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range c.chunks {
			stream = append(stream, e.fp)
		}
	}
	random := append([]Fingerprint(nil), stream...)
	rng.Shuffle(len(random), func(i, j int) { random[i], random[j] = random[j], random[i] })
	for _, c := range []struct {
		name string
		fps  []Fingerprint
	}{{"random", random}, {"stream", stream}} {
		b.Run(c.name, func(b *testing.B) {
			st.cache.clear()
			t0 := time.Now()
			for i := 0; b.Loop(); i++ {
				if !st.Has(c.fps[i%len(c.fps)]) {
					b.Fatal("a stored chunk was not found")
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "lookups/s")
			b.ReportMetric(opened.Seconds(), "open-s")
			b.ReportMetric(float64(st.Stats().Bytes)/(1<<30), "store-GiB")
		})
	}
}
