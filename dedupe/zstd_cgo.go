//go:build cgo

package dedupe

import (
	"fmt"
	"runtime"

	ddzstd "github.com/DataDog/zstd"
)

// LevelMax runs the reference zstd library (libzstd, bundled and built by
// github.com/DataDog/zstd through cgo) at level maxCLevel. klauspost's
// pure-Go encoder has no optimal parser (its strongest level is about zstd
// -11): on an OS image its best level leaves 10% more bytes than zstd -19.
// Only the sending edge runs it, when the link is the bottleneck; the
// frames are plain zstd, decoded by the same klauspost decoder as the
// other levels (docs/dedupe.md, "Levels").
const haveMax = true

// maxCLevel is libzstd's level for LevelMax: its strongest regular level
// (19; the "ultra" levels 20-22 need windows beyond the decoder's 8 MiB).
const maxCLevel = 19

// compressMax compresses lits with libzstd at maxCLevel, with dict (raw
// content, may be empty) as initial history. The frame carries no
// dictionary id (raw content has none): the decoder registers the bases
// under id 0 too.
func compressMax(lits, dict []byte) ([]byte, error) {
	if len(lits) == 0 {
		return nil, nil
	}
	dst := make([]byte, 0, ddzstd.CompressBound(len(lits)))
	if len(dict) == 0 {
		out, err := ddzstd.CompressLevel(dst, lits, maxCLevel)
		if err != nil {
			return nil, fmt.Errorf("libzstd level %d: %w", maxCLevel, err)
		}
		return out, nil
	}
	bp, err := ddzstd.NewBulkProcessor(dict, maxCLevel)
	if err != nil {
		return nil, fmt.Errorf("libzstd dictionary of %d bytes: %w", len(dict), err)
	}
	out, err := bp.Compress(dst, lits)
	// The processor frees its C dictionaries in a finalizer, which may run
	// as soon as bp is unreachable: during Compress's C call (a
	// use-after-free seen here) unless bp is kept alive past it.
	runtime.KeepAlive(bp)
	if err != nil {
		return nil, fmt.Errorf("libzstd level %d with a %d-byte dictionary: %w", maxCLevel, len(dict), err)
	}
	return out, nil
}
