package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Metadata (journal header, index, footer) is compressed with zstd at the
// default level: it is small and compresses well. EncodeAll is safe for
// concurrent use.
var zstdEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))

// maxMetaWindow bounds the zstd window a peer may make us allocate for
// metadata (the encoder's default level uses far less).
const maxMetaWindow = 8 << 20

// unzstd decompresses b, which must expand to exactly want bytes. It decodes
// as a stream into a buffer of want bytes and stops there, so a hostile frame
// that claims or expands to more (a decompression bomb) costs at most want
// bytes and a bounded window before it is refused; DecodeAll would expand it
// fully before the length could be checked.
func unzstd(b []byte, want int64) ([]byte, error) {
	if want < 0 {
		return nil, fmt.Errorf("decompress metadata: negative length %d", want)
	}
	// The memory limit must leave room for the frame's window (the decoder
	// refuses a window above it, and even a 41-byte frame declares at least
	// 1 KiB); the read below stops at want bytes anyway.
	d, err := zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(maxMetaWindow), zstd.WithDecoderMaxMemory(uint64(want)+maxMetaWindow))
	if err != nil {
		return nil, fmt.Errorf("decompress metadata: %w", err)
	}
	defer d.Close()
	out := make([]byte, want)
	if _, err := io.ReadFull(d, out); err != nil {
		return nil, fmt.Errorf("decompress metadata: want %d bytes: %w", want, err)
	}
	var extra [1]byte
	if n, err := d.Read(extra[:]); n > 0 || (err != nil && !errors.Is(err, io.EOF)) {
		return nil, fmt.Errorf("decompress metadata: expands beyond the %d bytes the file header allows", want)
	}
	return out, nil
}
