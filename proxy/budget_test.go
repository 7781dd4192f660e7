package proxy

import (
	"testing"

	"github.com/aimwan/aimwan/dedupe"
)

// The source edge's memory at its defaults adds up to MemoryBudget at
// most, counting what lives outside the Go heap: libzstd's level-max
// context (C memory, which GOMEMLIMIT does not see) and the binary and C
// runtime. The former GOMEMLIMIT, the held files plus 192 MiB, left
// neither out, nor the zstd encoder and the two stores' caches: the Go
// heap alone could take 448 MiB beside libzstd's contexts (707 MiB peak in
// make demo).
func TestMemoryBudget(t *testing.T) {
	c := SourceConfig{}.withDefaults()
	goHeap := c.MaxMemory + dedupe.EncoderMemory() + 2*dedupe.StoreMemory(0) + encodeWorkMemory + runtimeMemory
	outside := nonGoMemory + dedupe.MaxLevelMemory()
	t.Logf("source edge: held %d MiB + encoder %d MiB + stores 2 x %d MiB + encode %d MiB + runtime %d MiB = %d MiB Go heap; "+
		"libzstd %d MiB + %d MiB outside it; GOMEMLIMIT %d MiB",
		c.MaxMemory>>20, dedupe.EncoderMemory()>>20, dedupe.StoreMemory(0)>>20, encodeWorkMemory>>20, runtimeMemory>>20,
		goHeap>>20, dedupe.MaxLevelMemory()>>20, nonGoMemory>>20, MemoryLimit(true, 0)>>20)
	if goHeap+outside > MemoryBudget {
		t.Errorf("source edge at defaults: %d bytes of Go heap and %d outside it, over the %d budget", goHeap, outside, MemoryBudget)
	}
	if lim := MemoryLimit(true, 0); lim+outside > MemoryBudget || lim < goHeap {
		t.Errorf("source edge GOMEMLIMIT %d: want room for the Go heap's %d bytes and, with the %d outside it, within %d",
			lim, goHeap, outside, MemoryBudget)
	}
	if dedupe.MaxAvailable() && dedupe.MaxLevelMemory() < 64<<20 {
		t.Errorf("libzstd's level-19 context counted as %d bytes; it takes ~81 MiB", dedupe.MaxLevelMemory())
	}
	// A larger --max-memory raises the limit by as much: the files are
	// held whatever the budget.
	if got, want := MemoryLimit(true, 1<<30), int64(1<<30)+sourceFixedMemory(); got != want {
		t.Errorf("GOMEMLIMIT with 1 GiB of files = %d, want the files plus the fixed heap, %d", got, want)
	}
	if c.MaxFileSize > c.MaxMemory {
		t.Errorf("default max file size %d over the held-file bound %d: such a file could never be accepted", c.MaxFileSize, c.MaxMemory)
	}
	d := DestConfig{}.withDefaults()
	if d.MaxMemory != DefaultDestMaxMemory || MemoryLimit(false, 0)+nonGoMemory > MemoryBudget {
		t.Errorf("destination edge: held %d (want %d), GOMEMLIMIT %d", d.MaxMemory, DefaultDestMaxMemory, MemoryLimit(false, 0))
	}
}
