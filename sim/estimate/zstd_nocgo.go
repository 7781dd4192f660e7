//go:build !cgo

package estimate

import "github.com/klauspost/compress/zstd"

// compressorName says what compresses the unique chunks: without cgo there
// is no libzstd, and klauspost's SpeedDefault is its level-3 equivalent.
const compressorName = "klauspost/compress zstd SpeedDefault (≈ zstd -3; no cgo), one frame per chunk"

// compressor compresses chunks one by one; one per worker.
type compressor struct{ e *zstd.Encoder }

func newCompressor() (*compressor, error) {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(false), zstd.WithZeroFrames(true))
	if err != nil {
		return nil, err
	}
	return &compressor{e: e}, nil
}

func (c *compressor) compress(dst, src []byte) ([]byte, error) {
	return c.e.EncodeAll(src, dst[:0]), nil
}
