package proxy

import "github.com/aimwan/aimwan/dedupe"

// MemoryBudget is the resident memory a proxy stays within at its
// defaults (issue 13: 512 MiB, whatever its store's capacity). Every large
// consumer has a bound, and their sum is checked in TestMemoryBudget:
//
//   - outside the Go heap: the binary's mapped code and data and the C
//     runtime (nonGoMemory), and at the source edge libzstd's one context
//     for level max (dedupe.MaxLevelMemory);
//   - in the Go heap, bounded by GOMEMLIMIT (MemoryLimit): the held files
//     (MaxMemory), the zstd encoder (dedupe.EncoderMemory), the chunk store
//     and the peer index (dedupe.StoreMemory each), the working buffers of
//     the file being encoded (encodeWorkMemory) and the rest: connections,
//     metrics, goroutines (runtimeMemory).
const MemoryBudget = 512 << 20

const (
	// nonGoMemory is what a proxy holds resident outside the Go runtime's
	// accounting besides libzstd: ~22 MiB of mapped binary, thread stacks
	// and C allocator state.
	nonGoMemory = 32 << 20
	// encodeWorkMemory bounds the source edge's buffers for the file being
	// encoded besides the file: its literals, the zstd output, the
	// fingerprints and ops (about 2.5 times a 4 MiB journal file, with
	// room for the 4 MiB dictionary).
	encodeWorkMemory = 16 << 20
	// runtimeMemory is the rest of the Go heap: QUIC connections and their
	// buffers at the windows of a WAN line, the metrics registry and
	// recorder, goroutine stacks, the garbage collector's metadata.
	runtimeMemory = 32 << 20
)

// sourceFixedMemory is the source edge's Go heap besides the held files.
func sourceFixedMemory() int64 {
	return dedupe.EncoderMemory() + 2*dedupe.StoreMemory(0) + encodeWorkMemory + runtimeMemory
}

// MemoryLimit is the Go runtime's soft memory limit (GOMEMLIMIT) for a proxy
// holding up to maxMemory bytes of files (0: the role's default): the
// source edge's held files and its fixed Go heap (sourceFixedMemory), at
// least what MemoryBudget leaves once libzstd and the rest outside the Go
// heap are counted; 384 MiB at the destination edge. The garbage collector
// then keeps the heap near what is live instead of letting it double.
func MemoryLimit(source bool, maxMemory int64) int64 {
	if !source {
		return 384 << 20
	}
	if maxMemory <= 0 {
		maxMemory = DefaultMaxMemory
	}
	return max(MemoryBudget-nonGoMemory-dedupe.MaxLevelMemory(), maxMemory+sourceFixedMemory())
}
