package dedupe

import (
	"context"
	"io"
)

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
// holds is then never sent: priming raises the store's mark, and a peer
// whose index describes an earlier mark learns the containers the pass
// wrote at its next handshake (Store.HeldFor).
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

// PrimeWith primes a Store (as Prime does: a priming pass) or a PeerIndex
// (as PrimePeer) with progress reports.
func PrimeWith(ctx context.Context, t PrimeTarget, r io.Reader, o PrimeOptions) (PrimeStats, error) {
	if s, ok := t.(*Store); ok {
		defer s.endPrime(s.beginPrime())
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
	var prev Fingerprint
	hasPrev := false
	so := ScanOptions{Params: o.Params}
	if o.Progress != nil {
		so.Progress = func(st ScanStats) { o.Progress(PrimeStats(st)) }
	}
	st, err := ScanWith(ctx, r, so, func(pc ScanPiece) error {
		if pc.Data == nil { // a zero run breaks the successor chain
			hasPrev = false
			return nil
		}
		fp := Sum(pc.Data)
		t.put(fp, pc.Data)
		if hasPrev {
			t.link(prev, fp)
		}
		prev, hasPrev = fp, true
		return nil
	})
	return PrimeStats(st), err
}
