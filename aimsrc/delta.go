package aimsrc

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/aimwan/aimwan/transport/push"
)

// Delta initialize geometry: a descent of five levels. The top level
// hashes 256 MiB ranges; a range that differs is asked again as 16 ranges
// of a sixteenth of its size (16 MiB, 1 MiB, 64 KiB), down to 4 KiB leaves
// (the file system block); only differing leaves are journaled. See
// docs/source-node.md for the exchange sizes this gives.
const (
	deltaLeaf     = 4 << 10
	deltaFanout   = 16
	deltaTop      = deltaLeaf * deltaFanout * deltaFanout * deltaFanout * deltaFanout // 256 MiB
	deltaTopBatch = 16                                                                // top ranges per pass and checkpoint (4 GiB)
	deltaParallel = 8                                                                 // checksum requests in flight
	deltaRetryMax = 5 * time.Second                                                   // longest wait between checksum retries
)

// sumAsker asks the next hop for checksums (push.Redialer).
type sumAsker interface {
	Sums(ctx context.Context, q push.SumRequest) ([][push.SumSize]byte, error)
}

// deltaRun is one delta initialize's pass over the volume.
type deltaRun struct {
	v     *volume
	ask   sumAsker
	exch  atomic.Int64 // checksum exchange bytes
	comp  atomic.Int64 // volume bytes compared
	journ atomic.Int64 // data bytes journaled
}

// runDelta compares the volume with the destination from offset from (a
// multiple of deltaTop) and journals the leaves that differ. It is
// runInit's counterpart for an initialize by checksum comparison: the
// stream is started (kind StartDelta) and its first file sealed at once,
// so the destination rebinds and answers; then top batches are compared
// one after the other, checkpointed after each.
func (v *volume) runDelta(ctx context.Context, from int64) error {
	if v.sums == nil {
		return fmt.Errorf("volume %s: delta initialize: no next hop to compare with", v.name)
	}
	v.log.Info("delta initialize started", "size", v.size, "from", from)
	if err := v.startStream(); err != nil {
		return err
	}
	d := &deltaRun{v: v, ask: v.sums}
	if from == 0 {
		// The stream's first file must leave now: the far end answers
		// checksums only once that file has rebound the volume. It holds
		// the first leaf, journaled whatever the far end has there.
		if err := d.journal(0, min(deltaLeaf, v.size), false); err != nil {
			return err
		}
		v.mu.Lock()
		err := v.jw.Seal()
		v.mu.Unlock()
		if err != nil {
			return fmt.Errorf("volume %s: delta initialize: seal the stream's first file: %w", v.name, err)
		}
	}
	d.comp.Store(from)
	for off := from; off < v.size; {
		n := min(int64(deltaTopBatch), (v.size-off+deltaTop-1)/deltaTop)
		if err := d.compareTop(ctx, off, int(n)); err != nil {
			return errors.Join(err, v.checkpointInit(off))
		}
		off = min(v.size, off+n*deltaTop)
		if err := v.checkpointInit(off); err != nil {
			return err
		}
		d.report()
	}
	v.log.Info("delta initialize done", "size", v.size, "journaled", d.journ.Load(), "checksum_bytes", d.exch.Load())
	return nil
}

// report publishes progress.
func (d *deltaRun) report() {
	d.v.initJob.update(func(s *InitStatus) {
		s.DoneBytes = d.comp.Load()
		s.Journaled = d.journ.Load()
		s.ChecksumBytes = d.exch.Load()
		s.SavedBytes = max(0, s.DoneBytes-s.Journaled)
	})
}

// sumSpan is one checksum request: n ranges from off.
type sumSpan struct {
	off int64
	n   int
}

// compareTop compares n top ranges from off level by level: the ranges that
// differ at one level are asked again as deltaFanout ranges each at the
// next, deltaParallel requests at once; differing leaves are journaled.
func (d *deltaRun) compareTop(ctx context.Context, off int64, n int) error {
	spans := []sumSpan{{off, n}}
	for rng := int64(deltaTop); ; rng /= deltaFanout {
		diff, err := d.compareAll(ctx, spans, rng)
		if err != nil {
			return err
		}
		if rng == deltaLeaf {
			for _, o := range diff {
				if err := d.v.waitRoom(ctx); err != nil {
					return err
				}
				if err := d.journal(o, min(deltaLeaf, d.v.size-o), true); err != nil {
					return err
				}
			}
			return nil
		}
		spans = spans[:0]
		child := rng / deltaFanout
		for _, o := range diff {
			spans = append(spans, sumSpan{o, int(min(int64(deltaFanout), (d.v.size-o+child-1)/child))})
		}
	}
}

// compareAll compares every span in ranges of rng bytes and returns the
// offsets of the ranges that differ, in order.
func (d *deltaRun) compareAll(ctx context.Context, spans []sumSpan, rng int64) ([]int64, error) {
	diffs := make([][]int64, len(spans))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(deltaParallel)
	for i, sp := range spans {
		g.Go(func() error {
			var err error
			diffs[i], err = d.compare(gctx, sp.off, rng, sp.n)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []int64
	for _, df := range diffs {
		out = append(out, df...)
	}
	return out, nil
}

// compare asks the far end for the checksums of n ranges of rng bytes from
// off, hashes the same ranges of the image, and returns the offsets of the
// ranges that differ. Matching leaves count as compared.
func (d *deltaRun) compare(ctx context.Context, off, rng int64, n int) ([]int64, error) {
	v := d.v
	q := push.SumRequest{Volume: v.name, Stream: v.initStream, End: v.size, Offset: off, Range: rng, Count: n}
	theirs, err := d.askRetry(ctx, q)
	if err != nil {
		return nil, err
	}
	// Hashed after the answer: see docs/source-node.md (delta initialize)
	// for why this order keeps the result exact under live writes.
	buf := make([]byte, min(rng, 4<<20))
	var diff []int64
	for i := range n {
		start := off + int64(i)*rng
		end := min(start+rng, v.size)
		h := sha256.New()
		for p := start; p < end; {
			b := buf[:min(int64(len(buf)), end-p)]
			if err := v.img.readAt(b, p); err != nil {
				return nil, fmt.Errorf("volume %s: delta initialize: %w", v.name, err)
			}
			h.Write(b)
			p += int64(len(b))
		}
		var mine [push.SumSize]byte
		h.Sum(mine[:0])
		if mine != theirs[i] {
			diff = append(diff, start)
		} else {
			d.comp.Add(end - start)
		}
	}
	d.report()
	return diff, nil
}

// askRetry asks for checksums until answered: a far end that is not bound
// to the stream yet (its first file is on its way), busy, or unreachable
// is asked again with backoff; a refusal that retrying cannot cure ends the
// initialize.
func (d *deltaRun) askRetry(ctx context.Context, q push.SumRequest) ([][push.SumSize]byte, error) {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		sums, err := d.ask.Sums(ctx, q)
		d.exch.Add(sumRequestBytes(q) + int64(len(sums))*push.SumSize + 15)
		if err == nil {
			if attempt > 1 {
				d.v.initJob.update(func(s *InitStatus) { s.Waiting = "" })
			}
			return sums, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("delta initialize of volume %s interrupted: %w", d.v.name, ctx.Err())
		}
		if !errors.Is(err, push.ErrUnavailable) && !errors.Is(err, push.ErrBufferFull) {
			return nil, fmt.Errorf("volume %s: delta initialize: checksums of %d+%d×%d: %w", d.v.name, q.Offset, q.Count, q.Range, err)
		}
		if attempt == 1 || attempt%20 == 0 {
			d.v.log.Info("delta initialize waits for the far end's checksums", "err", err, "attempt", attempt)
		}
		d.v.initJob.update(func(s *InitStatus) { s.Waiting = err.Error() })
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("delta initialize of volume %s interrupted: %w", d.v.name, ctx.Err())
		case <-t.C:
		}
		backoff = min(backoff*2, deltaRetryMax)
	}
}

// sumRequestBytes is the wire size of a SUM frame.
func sumRequestBytes(q push.SumRequest) int64 {
	return int64(5 + 8 + 2 + len(q.Volume) + 16 + 8 + 8 + 4 + 2)
}

// journal journals [off, off+n) with the image's current content (as an
// initialize does: data, or a zero record), and counts it (as compared too
// when compared is set).
func (d *deltaRun) journal(off, n int64, compared bool) error {
	buf := make([]byte, n)
	for done := int64(0); done < n; {
		k, j, err := d.v.initBlock(off+done, buf[done:])
		if err != nil {
			return err
		}
		done += k
		d.journ.Add(j)
	}
	if compared {
		d.comp.Add(n)
	}
	d.report()
	return nil
}
