package proxy

import (
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// Metadata (journal header, index, footer) is compressed with zstd at the
// default level: it is small and compresses well. EncodeAll and DecodeAll are
// safe for concurrent use.
var (
	zstdEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
)

// unzstd decompresses b, which must expand to exactly want bytes.
func unzstd(b []byte, want int64) ([]byte, error) {
	out, err := zstdDecoder.DecodeAll(b, make([]byte, 0, want))
	if err != nil {
		return nil, fmt.Errorf("decompress metadata: %w", err)
	}
	if int64(len(out)) != want {
		return nil, fmt.Errorf("metadata is %d bytes, want %d", len(out), want)
	}
	return out, nil
}
