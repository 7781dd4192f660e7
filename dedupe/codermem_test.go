package dedupe

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"testing"
)

// memStats is the allocation total and the live heap after a full
// collection.
func memStats() (total, live int64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.TotalAlloc), int64(m.HeapAlloc)
}

// An encode allocates at most encoderMemory besides its output, at every
// level, with or without a MaxDict dictionary and past a full window of
// input, and keeps nothing once done: a proxy's memory budget
// (CoderMemory) counts one encoder. Encoders used to be kept per level (a
// pool with dictionaries, a shared one per CPU without), so the memory
// grew with the levels the adaptive rule visited: ~200 MiB were still held
// here after the four levels. A klauspost release with larger tables fails
// here too.
func TestCoderMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a few hundred MiB")
	}
	r := rand.New(rand.NewPCG(1, 2))
	// Compressible but not trivial input: letters from a small alphabet.
	input := make([]byte, zstdWindow+MaxDict+(1<<20))
	for i := range input {
		input[i] = byte('a' + r.IntN(16))
	}
	dict, lits := input[:MaxDict], input[MaxDict:]
	_, start := memStats()
	for l := LevelFastest; l <= LevelBest; l++ {
		for _, d := range [][]byte{nil, dict} {
			total0, _ := memStats()
			z, err := compressDict(lits, d, l)
			if err != nil {
				t.Fatal(err)
			}
			total1, _ := memStats()
			used := total1 - total0 - int64(cap(z))
			t.Logf("level %v, %d-byte dictionary: the encoder allocated %.1f MiB besides its output (bound %d MiB)",
				l, len(d), float64(used)/(1<<20), encoderMemory>>20)
			if used > encoderMemory {
				t.Errorf("level %v, %d-byte dictionary: the encoder allocated %d bytes, encoderMemory says at most %d", l, len(d), used, encoderMemory)
			}
			got, err := unzstdDict(z, d, len(lits), "test")
			if err != nil || !bytes.Equal(got, lits) {
				t.Fatalf("level %v, %d-byte dictionary: round trip failed (%v)", l, len(d), err)
			}
		}
	}
	if _, end := memStats(); end-start > encoderMemory/4 {
		t.Errorf("after every level the heap holds %d bytes more than before: encoders kept", end-start)
	}
}
