package dedupe

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// primeBuf is the read size of Prime; much larger than MaxChunkLimit.
const primeBuf = 8 << 20

// PrimeStats describes one priming pass.
type PrimeStats struct {
	Bytes     int64 // bytes read
	Chunks    int   // chunks cut
	ZeroBytes int64 // bytes in zero runs (not stored)
}

// primeTarget learns chunks in image order.
type primeTarget interface {
	// put stores (or records) one chunk.
	put(fp Fingerprint, data []byte)
	// link records that b followed a (unless a already has a successor).
	link(a, b Fingerprint)
}

var (
	_ primeTarget = (*Store)(nil)
	_ primeTarget = (*PeerIndex)(nil)
)

func (s *Store) put(fp Fingerprint, data []byte) { s.Put(fp, data) }
func (s *Store) link(a, b Fingerprint)           { s.Link(a, b) }

func (x *PeerIndex) put(fp Fingerprint, data []byte) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.addLocked(fp.short(), len(data))
}

func (x *PeerIndex) link(a, b Fingerprint) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.linkLocked(a.short(), b.short())
}

// Prime chunks a local image (read to EOF) into the store with the same
// boundaries a continuous payload would get, and links the chunks in image
// order so clones of it travel as run references. Data the DR site already
// holds is then never sent; the peer learns it from Store.AppendHeld.
// Priming starts a new store epoch: a peer whose index describes the store
// as it was would otherwise never ask for the held list again, and never
// reference the primed chunks.
func Prime(ctx context.Context, s *Store, r io.Reader, p Params) (PrimeStats, error) {
	return PrimeWith(ctx, s, r, PrimeOptions{Params: p})
}

// PrimeOptions are the settings of PrimeWith.
type PrimeOptions struct {
	// Params are the chunking parameters (zero = defaults).
	Params Params
	// Progress, when set, is called after every read (8 MiB) with the
	// figures so far.
	Progress func(PrimeStats)
}

// PrimeTarget is a Store (Prime) or a PeerIndex (PrimePeer).
type PrimeTarget interface{ primeTarget }

// PrimeWith primes a Store (as Prime does: a new epoch) or a PeerIndex
// (as PrimePeer) with progress reports.
func PrimeWith(ctx context.Context, t PrimeTarget, r io.Reader, o PrimeOptions) (PrimeStats, error) {
	if s, ok := t.(*Store); ok {
		s.newGeneration()
	}
	return prime(ctx, t, r, o)
}

// PrimePeer records in the peer index the chunks of an image the peer is
// known to hold (a template or shipped disk present at both sites), without
// any exchange.
func PrimePeer(ctx context.Context, x *PeerIndex, r io.Reader, p Params) (PrimeStats, error) {
	return prime(ctx, x, r, PrimeOptions{Params: p})
}

func prime(ctx context.Context, t primeTarget, r io.Reader, o PrimeOptions) (PrimeStats, error) {
	var st PrimeStats
	p, err := o.Params.Normalize()
	if err != nil {
		return st, err
	}
	s := newSplitter(p)
	buf := make([]byte, primeBuf)
	n := 0 // bytes held in buf
	var prev Fingerprint
	hasPrev, eof := false, false
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
				return st, fmt.Errorf("prime: read image: %w", err)
			}
		}
		if pieces, err = s.split(pieces[:0], buf[:n]); err != nil {
			return st, err
		}
		keep := finalPieces(pieces, buf[:n], eof, p.ZeroRun)
		done := 0
		for _, pc := range pieces[:keep] {
			done = pc.off + pc.n
			if pc.zero {
				st.ZeroBytes += int64(pc.n)
				hasPrev = false
				continue
			}
			data := buf[pc.off : pc.off+pc.n]
			fp := Sum(data)
			t.put(fp, data)
			if hasPrev {
				t.link(prev, fp)
			}
			prev, hasPrev = fp, true
			st.Chunks++
		}
		n = copy(buf, buf[done:n])
		if o.Progress != nil {
			o.Progress(st)
		}
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
