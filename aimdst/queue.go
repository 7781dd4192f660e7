package aimdst

import (
	"fmt"
	"sort"
)

// fileQueue is the reorder buffer of one volume: which journal files are held
// in the destination buffer, and which one destage needs next. Files are
// discrete units numbered 1, 2, 3...; they may arrive in any order and more
// than once (a resend after a lost ack). Destage only ever takes the file
// whose sequence is next, so a gap (a file not yet received) holds back every
// file after it, exactly as quic-go's frame sorter holds back stream data
// after a hole.
//
// Duplicate rule: a file is a duplicate when its sequence is below next
// (already destaged, per the persisted cursor) or it is already held. A
// duplicate is acknowledged and dropped, never stored or applied again.
//
// fileQueue is not safe for concurrent use; its owner locks around it.
type fileQueue struct {
	next uint64           // file sequence destage needs next (cursor file + 1)
	held map[uint64]int64 // file sequence -> size in bytes, every key >= next
	size int64            // sum of held sizes
}

// newFileQueue returns an empty queue whose next file is next (>= 1).
func newFileQueue(next uint64) *fileQueue {
	if next == 0 {
		next = 1
	}
	return &fileQueue{next: next, held: make(map[uint64]int64)}
}

// Duplicate reports whether file seq was already destaged or is held.
func (q *fileQueue) Duplicate(seq uint64) bool {
	if seq < q.next {
		return true
	}
	_, ok := q.held[seq]
	return ok
}

// Add records that file seq (size bytes) is now held durably. It returns
// false, and changes nothing, when the file is a duplicate.
func (q *fileQueue) Add(seq uint64, size int64) bool {
	if seq == 0 || q.Duplicate(seq) {
		return false
	}
	q.held[seq] = size
	q.size += size
	return true
}

// Holds reports whether file seq is held (received, not yet destaged).
func (q *fileQueue) Holds(seq uint64) bool {
	_, ok := q.held[seq]
	return ok
}

// Remove takes held file seq out of the queue without destaging it (it was
// quarantined) and returns its size; next does not move.
func (q *fileQueue) Remove(seq uint64) (int64, bool) {
	size, ok := q.held[seq]
	if ok {
		delete(q.held, seq)
		q.size -= size
	}
	return size, ok
}

// Ready returns the file destage should apply now: next, when it is held.
func (q *fileQueue) Ready() (uint64, bool) {
	_, ok := q.held[q.next]
	return q.next, ok
}

// Done marks file seq fully destaged (its cursor persisted) and advances
// next. seq must be the file Ready returned.
func (q *fileQueue) Done(seq uint64) error {
	size, ok := q.held[seq]
	if seq != q.next || !ok {
		return fmt.Errorf("reorder buffer: file %d done out of order (next is %d, held %t)", seq, q.next, ok)
	}
	delete(q.held, seq)
	q.size -= size
	q.next++
	return nil
}

// Next is the file sequence destage needs next.
func (q *fileQueue) Next() uint64 { return q.next }

// Len is the number of files held (waiting for destage).
func (q *fileQueue) Len() int { return len(q.held) }

// Bytes is the total size of the files held.
func (q *fileQueue) Bytes() int64 { return q.size }

// Gap is a run of missing file sequences [First, Last] that holds back the
// files held after it.
type Gap struct {
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
}

// Gaps lists up to max runs of missing files between next and the highest
// held file, lowest first.
func (q *fileQueue) Gaps(max int) []Gap {
	seqs := make([]uint64, 0, len(q.held))
	for s := range q.held {
		seqs = append(seqs, s)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	var gaps []Gap
	want := q.next
	for _, s := range seqs {
		if len(gaps) >= max {
			break
		}
		if s > want {
			gaps = append(gaps, Gap{First: want, Last: s - 1})
		}
		want = s + 1
	}
	return gaps
}
