//go:build !cgo

package dedupe

import "errors"

// Without cgo there is no libzstd: LevelMax is refused (Level.validate)
// and the proxy's adaptive rule stops at LevelBest.
const haveMax = false

func compressMax(lits, dict []byte) ([]byte, error) {
	return nil, errors.New("dedupe: level max needs a cgo build (libzstd)")
}

// MaxLevelMemory is 0: without cgo there is no libzstd context.
func MaxLevelMemory() int64 { return 0 }
