package aimdst

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

var _ push.Summer = (*Node)(nil)

// sumsAtOnce bounds the checksum requests a node answers at once (all
// connections): each reads its volume.
const sumsAtOnce = 2

// Sums answers a checksum request of a delta initialize: the SHA-256 of each
// range of the volume as destaged (bytes past the volume's end read as
// zeros; a volume file not created yet reads as zeros). It answers only
// once the volume is bound to the request's stream: the initialize's first
// file rebinds the volume, after every held file of the old stream was
// destaged or quarantined, so nothing older than the new stream can change
// the volume after the answer; files of the new stream may, and the source
// copes (see docs/source-node.md, delta initialize). Until then it answers
// push.ErrUnavailable and the source retries.
func (n *Node) Sums(ctx context.Context, peer push.Hello, q push.SumRequest) ([][push.SumSize]byte, error) {
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", push.ErrBadOffer, err)
	}
	v, ok := n.vols[q.Volume]
	if !ok {
		return nil, fmt.Errorf("%w: %s", push.ErrUnknownVolume, q.Volume)
	}
	want := journal.StreamID(q.Stream)
	v.mu.Lock()
	bound, rebinding := v.cursor.stream(), v.rebinding
	v.mu.Unlock()
	if bound != want || rebinding {
		return nil, fmt.Errorf("%w: volume %s is not bound to stream %s yet (it replicates %s): checksums are answered once the initialize's first file has rebound it",
			push.ErrUnavailable, v.name, want, streamName(bound))
	}
	select {
	case n.sumSem <- struct{}{}:
		defer func() { <-n.sumSem }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	sums, read, err := hashRanges(ctx, v.cfg.Path, q)
	n.metrics.sumBytes.WithLabelValues(v.name).Add(float64(read))
	if err != nil {
		return nil, fmt.Errorf("%w: volume %s: checksums: %w", push.ErrUnavailable, v.name, err)
	}
	return sums, nil
}

// hashRanges hashes the ranges of q in the file at path and returns the
// checksums and the bytes read.
func hashRanges(ctx context.Context, path string, q push.SumRequest) ([][push.SumSize]byte, int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		f = nil // not created yet: zeros
	} else if err != nil {
		return nil, 0, err
	}
	if f != nil {
		defer f.Close()
	}
	buf := make([]byte, min(q.Range, 4<<20))
	out := make([][push.SumSize]byte, q.Count)
	var read int64
	for i := range out {
		if err := ctx.Err(); err != nil {
			return nil, read, err
		}
		h := sha256.New()
		start := q.Offset + int64(i)*q.Range
		end := min(start+q.Range, q.End)
		for off := start; off < end; {
			b := buf[:min(int64(len(buf)), end-off)]
			n := 0
			if f != nil {
				n, err = f.ReadAt(b, off)
				if err != nil && !errors.Is(err, io.EOF) {
					return nil, read, err
				}
			}
			clear(b[n:]) // past the end of the volume file: zeros
			h.Write(b)
			off += int64(len(b))
			read += int64(n)
		}
		h.Sum(out[i][:0])
	}
	return out, read, nil
}
