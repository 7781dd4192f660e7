package dedupe

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	if fab := os.Getenv("AIMWAN_STORE_FABRICATE"); fab != "" && dir != "" {
		n, err := strconv.ParseInt(fab, 10, 64)
		if err != nil {
			b.Fatal("AIMWAN_STORE_FABRICATE: the bytes of containers to make")
		}
		t0 := time.Now()
		if err := fabricateContainers(dir, n); err != nil {
			b.Fatal(err)
		}
		b.Logf("fabricated %d bytes of containers in %v", n, time.Since(t0))
	}
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
	first := time.Since(start) // a rebuild for a fabricated store
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	if st, err = OpenStore(StoreConfig{Dir: dir, MaxBytes: capacity}); err != nil {
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
			b.ReportMetric(first.Seconds(), "first-open-s")
			b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
			b.ReportMetric(float64(st.Stats().Bytes)/(1<<30), "store-GiB")
		})
	}
}

// fabricateContainers writes containers of 16 MiB holding 2048 chunks of 8
// KiB each, with random fingerprints, their data regions left as holes of
// a sparse file: a store of n bytes whose index and tables are real (as
// many entries as a full store of real data) without the disk for its data.
// Lookups (Has) work on it, Get fails (the bytes are zeros). The first open
// builds the fingerprint table from the containers' tables (a rebuild).
func fabricateContainers(dir string, n int64) error {
	cdir := filepath.Join(dir, storeContainerDir)
	if err := os.MkdirAll(cdir, 0o755); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(uint64(n), 3))
	files := &dirFiles{dir: cdir, open: map[uint32]*os.File{}}
	for id := uint32(1); int64(id)*maxContainerBytes <= n; id++ {
		c := &container{id: id}
		for i := 0; i < maxContainerBytes/DefaultAvgSize; i++ {
			var fp Fingerprint
			for k := 0; k < len(fp); k += 8 {
				binary.LittleEndian.PutUint64(fp[k:], rng.Uint64())
			}
			e := chunkEntry{fp: fp, off: uint32(i * DefaultAvgSize), n: DefaultAvgSize}
			if i > 0 {
				e.flags = flagFollows
			}
			c.chunks = append(c.chunks, e)
		}
		f, err := os.Create(files.path(id))
		if err != nil {
			return err
		}
		_, err = f.WriteAt(c.appendTable(nil, maxContainerBytes), maxContainerBytes)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// peakRSS is this process's peak resident memory (VmHWM), 0 if unknown.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
