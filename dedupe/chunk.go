package dedupe

import (
	"encoding/binary"
)

// piece is one element of a split payload: a chunk or a zero run.
type piece struct {
	off, n int
	zero   bool
}

// splitter cuts a payload into zero runs and content-defined chunks.
type splitter struct {
	p    Params
	r    *rabin
	mask uint64
}

func newSplitter(p Params) *splitter {
	return &splitter{p: p, r: rabinFor(p.Pol), mask: uint64(p.AvgSize) - 1}
}

// split appends the pieces of b (in order, covering b exactly) to dst.
// Zero runs of at least ZeroRun bytes become zero pieces; the bytes between
// them are chunked, the chunker starting afresh after every zero run, so
// boundaries depend on content only.
func (s *splitter) split(dst []piece, b []byte) ([]piece, error) {
	pos := 0
	for pos < len(b) {
		zs, ze := nextZeroRun(b, pos, s.p.ZeroRun)
		var err error
		if dst, err = s.chunkSegment(dst, b, pos, zs); err != nil {
			return dst, err
		}
		if ze > zs {
			dst = append(dst, piece{off: zs, n: ze - zs, zero: true})
		}
		pos = ze
	}
	return dst, nil
}

// chunkSegment appends the chunks of b[from:to].
func (s *splitter) chunkSegment(dst []piece, b []byte, from, to int) ([]piece, error) {
	for from < to {
		n := s.r.cut(b[from:to], s.p.MinSize, s.p.MaxSize, s.mask)
		dst = append(dst, piece{off: from, n: n})
		from += n
	}
	return dst, nil
}

// nextZeroRun finds the first maximal run of zero bytes in b[from:] that is
// at least min bytes long (min >= 64) and returns its bounds, or
// (len(b), len(b)) when there is none. It probes one 8-byte word every
// min-8 bytes: any qualifying run contains a probe, so runs are found
// exactly, independent of where probing starts.
func nextZeroRun(b []byte, from, min int) (start, end int) {
	stride := min - 8
	for p := from; p+8 <= len(b); p += stride {
		if binary.LittleEndian.Uint64(b[p:]) != 0 {
			continue
		}
		s, e := p, p+8
		for s > from && b[s-1] == 0 {
			s--
		}
		for e+8 <= len(b) && binary.LittleEndian.Uint64(b[e:]) == 0 {
			e += 8
		}
		for e < len(b) && b[e] == 0 {
			e++
		}
		if e-s >= min {
			return s, e
		}
		// Too short: continue with the first probe past this run.
		p = e - stride
	}
	return len(b), len(b)
}
