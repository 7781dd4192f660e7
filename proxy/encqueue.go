package proxy

import (
	"context"
	"slices"
	"sync"
)

// encodeQueue is the encoder slot: one file is encoded at a time, and the
// slot is held until the file's FILE frame is on its stream, so the
// destination sees files in encode order (see NewSource).
//
// Waiting files are served in arrival order, with one exception: the file
// served is the lowest-numbered waiting journal file of the volume of the
// first file in line. Files that a restart or a retry sent out of order
// (every one of a volume's in-flight files retried at once) thus leave in
// file order, and the destination, which destages each volume strictly in
// order, can apply each as it lands instead of holding them until the
// first one arrives last.
type encodeQueue struct {
	mu      sync.Mutex
	busy    bool
	waiters []*encodeWaiter // arrival order
}

type encodeWaiter struct {
	volume string
	seq    uint64 // journal file seq (push.Offer.Seq); 0: no order within the volume
	ready  chan struct{}
}

// acquire waits for the slot for file seq of volume. On an error (ctx ended
// first) the caller does not hold it.
func (q *encodeQueue) acquire(ctx context.Context, volume string, seq uint64) error {
	q.mu.Lock()
	if !q.busy && len(q.waiters) == 0 {
		q.busy = true
		q.mu.Unlock()
		return nil
	}
	w := &encodeWaiter{volume: volume, seq: seq, ready: make(chan struct{})}
	q.waiters = append(q.waiters, w)
	q.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	if i := slices.Index(q.waiters, w); i >= 0 {
		q.waiters = slices.Delete(q.waiters, i, i+1)
		q.mu.Unlock()
		return context.Cause(ctx)
	}
	q.mu.Unlock()
	// The slot was handed over as ctx ended: pass it on.
	q.release()
	return context.Cause(ctx)
}

// release gives the slot to the next waiter, or frees it.
func (q *encodeQueue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiters) == 0 {
		q.busy = false
		return
	}
	i := q.next()
	w := q.waiters[i]
	q.waiters = slices.Delete(q.waiters, i, i+1)
	close(w.ready) // the slot stays busy: w holds it now
}

// next is the index of the waiter to serve (see encodeQueue).
func (q *encodeQueue) next() int {
	first := q.waiters[0]
	best := 0
	if first.seq == 0 {
		return 0
	}
	for i, w := range q.waiters {
		if w.volume == first.volume && w.seq != 0 && w.seq < q.waiters[best].seq {
			best = i
		}
	}
	return best
}

// waiting is the number of files waiting for the slot.
func (q *encodeQueue) waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiters)
}
