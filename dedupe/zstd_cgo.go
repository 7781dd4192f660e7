//go:build cgo

package dedupe

import (
	"bytes"
	"fmt"

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
//
// With a dictionary it uses the library's streaming Writer, whose C context
// (and the level-19 tables built from the dictionary, ~90 MB for 4 MiB) is
// freed by Close. The bulk API was tried first: its C dictionaries are only
// freed by a Go finalizer, which the Go GC, blind to C memory, may run long
// after (resident memory grew ~90 MB a file), and which could even run
// during its own Compress call (a use-after-free crash seen here).
func compressMax(lits, dict []byte) ([]byte, error) {
	if len(lits) == 0 {
		return nil, nil
	}
	if len(dict) == 0 {
		out, err := ddzstd.CompressLevel(make([]byte, 0, ddzstd.CompressBound(len(lits))), lits, maxCLevel)
		if err != nil {
			return nil, fmt.Errorf("libzstd level %d: %w", maxCLevel, err)
		}
		return out, nil
	}
	if isZstdDict(dict) {
		// libzstd would parse a dictionary starting with the zstd
		// dictionary magic as a formatted dictionary, the decoder takes
		// raw content: compress at the strongest klauspost level instead.
		return compressDict(lits, dict, LevelBest)
	}
	var out bytes.Buffer
	out.Grow(len(lits)/2 + 64)
	w := ddzstd.NewWriterLevelDict(&out, maxCLevel, dict)
	_, err := w.Write(lits)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("libzstd level %d with a %d-byte dictionary: %w", maxCLevel, len(dict), err)
	}
	return out.Bytes(), nil
}
