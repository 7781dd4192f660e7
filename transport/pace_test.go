package transport

import (
	"bytes"
	"context"
	"testing"
)

// pieceWriter records the writes a paced writer makes: each was charged
// to the bucket whole before it, so the largest is the most the bucket
// went into debt for it — what the other writers sharing the bucket (the
// lanes) wait out.
type pieceWriter struct {
	buf      bytes.Buffer
	writes   int
	maxWrite int
}

func (w *pieceWriter) Write(p []byte) (int, error) {
	w.writes++
	w.maxWrite = max(w.maxWrite, len(p))
	return w.buf.Write(p)
}

// TestPacedWriteChargedInPieces: a large write through a paced writer (a
// miss answer of a megabyte) is charged to the bucket a piece at a time.
// Charged whole, it put the bucket a megabyte in debt, so every lane of
// the connection pool stopped until the debt was paid back (at make demo's
// ~100 KB/s pace, 10 s of idle link per answer), and then the megabyte
// went out at once, unpaced.
func TestPacedWriteChargedInPieces(t *testing.T) {
	c := newController(200e6, nil) // fast: the test does not wait long for credit
	w := &pieceWriter{}
	pw := &pacedWriter{ctx: context.Background(), c: c, w: w}
	blob := bytes.Repeat([]byte("answer"), (1<<20)/6+1)
	n, err := pw.Write(blob)
	if err != nil || n != len(blob) {
		t.Fatalf("paced write: %d of %d bytes, %v", n, len(blob), err)
	}
	if !bytes.Equal(w.buf.Bytes(), blob) {
		t.Fatal("the paced writer changed the bytes")
	}
	if w.maxWrite > pacedPiece {
		t.Errorf("a write of %d bytes was charged and went to the stream at once, want at most %d", w.maxWrite, pacedPiece)
	}
	if want := (len(blob) + pacedPiece - 1) / pacedPiece; w.writes != want {
		t.Errorf("%d writes, want %d", w.writes, want)
	}
}

// TestPacedWriteCanceled: a paced write whose context ends returns the
// bytes written so far and the cause.
func TestPacedWriteCanceled(t *testing.T) {
	c := newController(0, NewThrottle(ThrottleConfig{})) // initial pace
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w := &pieceWriter{}
	pw := &pacedWriter{ctx: ctx, c: c, w: w}
	c.mu.Lock()
	c.tokens = -1 << 20 // in debt: the first piece waits
	c.mu.Unlock()
	n, err := pw.Write(make([]byte, 3*pacedPiece))
	if err == nil || n != 0 || w.writes != 0 {
		t.Fatalf("canceled paced write: %d bytes, %d writes, %v; want 0, 0, the cause", n, w.writes, err)
	}
}

// TestPacedWriteSmallPiecesOnASlowLine: on a slow line a piece is a few
// milliseconds of the pace, not 16 KiB: each piece goes to QUIC at once,
// and at make demo's 172 KB/s a 16 KiB one was 95 ms of line on top of the
// controller's 60 ms queue, over the line's 100 ms buffer (the optimized
// phase's small files, written through here, overflowed it several times a
// minute).
func TestPacedWriteSmallPiecesOnASlowLine(t *testing.T) {
	c := newController(180e3, nil) // the pace starts at 95 % of the hint
	w := &pieceWriter{}
	pw := &pacedWriter{ctx: context.Background(), c: c, w: w}
	blob := bytes.Repeat([]byte("small file"), 4<<10) // 40 KiB, under a striped transfer's 64 KiB
	if n, err := pw.Write(blob); err != nil || n != len(blob) || !bytes.Equal(w.buf.Bytes(), blob) {
		t.Fatalf("paced write: %d of %d bytes, %v", n, len(blob), err)
	}
	if limit := 2 * packetBytes; w.maxWrite > limit {
		t.Errorf("a piece of %d bytes went to the stream at once at %.0f B/s, want at most %d (two datagrams)", w.maxWrite, c.pace(), limit)
	}
}
