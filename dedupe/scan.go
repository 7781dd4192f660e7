package dedupe

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// scanBuf is the read size of Scan; much larger than MaxChunkLimit.
const scanBuf = 8 << 20

// ScanPiece is one piece of a scanned stream: a chunk or a zero run.
type ScanPiece struct {
	// Data is the chunk's bytes, nil for a zero run. It aliases Scan's
	// buffer: valid only during the call.
	Data []byte
	// Zero is the length of a zero run (at least Params.ZeroRun bytes),
	// 0 for a chunk.
	Zero int
}

// ScanStats counts what Scan read and cut.
type ScanStats struct {
	Bytes     int64 // bytes read
	Chunks    int   // chunks cut
	ZeroBytes int64 // bytes in zero runs
}

// Scan reads r to EOF and cuts it into the pieces one continuous payload
// would get from the proxies (the same content-defined chunk boundaries
// and zero runs), calling fn for each in order, with bounded memory: an
// image of any size is streamed through one buffer. fn's error ends the
// scan and is returned.
func Scan(ctx context.Context, r io.Reader, p Params, fn func(ScanPiece) error) (ScanStats, error) {
	return ScanWith(ctx, r, ScanOptions{Params: p}, fn)
}

// ScanOptions are the settings of ScanWith.
type ScanOptions struct {
	// Params are the chunking parameters (zero = defaults).
	Params Params
	// Progress, when set, is called after every read (8 MiB) with the
	// figures so far.
	Progress func(ScanStats)
}

// ScanWith is Scan with progress reports.
func ScanWith(ctx context.Context, r io.Reader, o ScanOptions, fn func(ScanPiece) error) (ScanStats, error) {
	var st ScanStats
	p, err := o.Params.Normalize()
	if err != nil {
		return st, err
	}
	s := newSplitter(p)
	buf := make([]byte, scanBuf)
	n := 0 // bytes held in buf
	eof := false
	zero := 0 // length of the zero run not yet handed out
	var pieces []piece
	for !eof || n > 0 {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if !eof {
			m, err := io.ReadFull(r, buf[n:])
			n += m
			st.Bytes += int64(m)
			switch {
			case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
				eof = true
			case err != nil:
				return st, fmt.Errorf("scan: read: %w", err)
			}
		}
		if pieces, err = s.split(pieces[:0], buf[:n]); err != nil {
			return st, err
		}
		keep := finalPieces(pieces, buf[:n], eof, p.ZeroRun)
		done := 0
		for _, pc := range pieces[:keep] {
			done = pc.off + pc.n
			if pc.zero { // a run across buffers comes in parts: join them
				zero += pc.n
				st.ZeroBytes += int64(pc.n)
				continue
			}
			if zero > 0 {
				if err := fn(ScanPiece{Zero: zero}); err != nil {
					return st, err
				}
				zero = 0
			}
			st.Chunks++
			if err := fn(ScanPiece{Data: buf[pc.off : pc.off+pc.n]}); err != nil {
				return st, err
			}
		}
		n = copy(buf, buf[done:n])
		if o.Progress != nil {
			o.Progress(st)
		}
	}
	if zero > 0 {
		return st, fn(ScanPiece{Zero: zero})
	}
	return st, nil
}

// finalPieces returns how many leading pieces of a buffer are final, i.e.
// would be cut identically with more data after the buffer. Past the
// trailing zero bytes nothing is final (a longer zero run may swallow
// them); a trailing zero run that already qualifies is kept minus ZeroRun
// bytes, so the next buffer starts with a qualifying run again.
func finalPieces(pieces []piece, b []byte, eof bool, zeroRun int) int {
	if eof {
		return len(pieces)
	}
	t := len(b)
	for t > 0 && b[t-1] == 0 {
		t--
	}
	keep := 0
	for i, pc := range pieces {
		end := pc.off + pc.n
		switch {
		case pc.zero && end == len(b) && pc.n > zeroRun:
			pieces[i].n -= zeroRun
			return i + 1
		case end < t || (end == t && t < len(b)):
			keep = i + 1
		default:
			return keep
		}
	}
	return keep
}
