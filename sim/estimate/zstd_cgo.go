//go:build cgo

package estimate

import ddzstd "github.com/DataDog/zstd"

// compressorName says what compresses the unique chunks: the reference
// library, as the zstd command line's -3.
const compressorName = "libzstd level 3 (as zstd -3; github.com/DataDog/zstd), one frame per chunk"

// compressor compresses chunks one by one; one per worker.
type compressor struct{ c ddzstd.Ctx }

func newCompressor() (*compressor, error) { return &compressor{c: ddzstd.NewCtx()}, nil }

func (c *compressor) compress(dst, src []byte) ([]byte, error) {
	return c.c.CompressLevel(dst, src, 3)
}
