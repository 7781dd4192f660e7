package transport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"
)

// A transfer is a blob (a file's bytes) cut into parts that travel over
// whichever of the pool's connections is free to send: a connection whose
// congestion window a random loss just halved sends fewer parts, the
// others more. Each connection carries parts on a few long-lived part
// streams (laneStreams of them, parts in turn, so a lost packet holds up
// only the parts of one stream), as records (docs/wire-protocol.md):
//
//	tag     u8   0xA7 (PartTag)
//	id      16   the transfer's random ID
//	index   u32  the part's number (offset = index × part size)
//	length  u32  the part's length
//	payload      length bytes
//
// The receiver answers each record, in order, with one status byte on the
// same stream: 0 the part is stored, 1 refused (send it again). A part
// whose stream fails is sent again, on another connection when its own is
// gone. Records follow each other with no stream opened or closed between
// them, so a slow line carries full packets.

// PartTag opens every part record, so it is also the first byte of a part
// stream. It is not a frame type of the proxy protocol (1..15), so a
// receiver can tell the streams apart.
const PartTag byte = 0xA7

// partHeaderLen is a part record's header.
const partHeaderLen = 1 + 16 + 4 + 4

// Part status bytes, the receiver's answer to each record.
const (
	partStored  byte = 0
	partRefused byte = 1
)

// Part sizes a receiver accepts.
const (
	MinPartSize = 4 << 10
	MaxPartSize = 4 << 20
)

// maxPartAttempts bounds how often one part is sent before its transfer
// fails.
const maxPartAttempts = 8

// ErrTransfer wraps the failure of a transfer (a part failed too often).
var ErrTransfer = errors.New("transfer failed")

// TransferID names a transfer between its sender and its receiver.
type TransferID [16]byte

func (id TransferID) String() string { return hex.EncodeToString(id[:]) }

// Transfer is one blob to send striped (Pool.NewTransfer).
type Transfer struct {
	// ID is random; the receiver matches parts to its Receive by it.
	ID TransferID
	// PartSize is the size of every part but the last.
	PartSize int
	// OnSent, if set, is told the bytes of each part (header included) as
	// it is handed to QUIC (a part sent again counts again).
	OnSent func(n int)

	p     *Pool
	data  []byte
	parts int

	mu       sync.Mutex
	acked    []bool
	nacked   int
	err      error
	done     chan struct{}
	attempts []int
	finished bool
}

// NewTransfer prepares data for Send; the part size follows the current
// pace. data must not change until Send returns.
func (p *Pool) NewTransfer(data []byte) *Transfer {
	p.init()
	t := &Transfer{p: p, data: data, PartSize: p.ctl.partSize(), done: make(chan struct{})}
	_, _ = rand.Read(t.ID[:])
	t.parts = max(1, (len(data)+t.PartSize-1)/t.PartSize)
	t.attempts = make([]int, t.parts)
	t.acked = make([]bool, t.parts)
	return t
}

// Size is the transfer's length in bytes.
func (t *Transfer) Size() int { return len(t.data) }

// Send queues every part and waits until the peer acknowledged them all,
// a part failed maxPartAttempts times, or ctx ends (then parts still
// queued are dropped; those in flight finish unheeded).
func (t *Transfer) Send(ctx context.Context) error {
	items := make([]*part, t.parts)
	for i := range items {
		items[i] = &part{t: t, index: i}
	}
	t.p.parts.push(items...)
	select {
	case <-t.done:
		t.mu.Lock()
		defer t.mu.Unlock()
		return t.err
	case <-ctx.Done():
		t.abort(context.Cause(ctx))
		return fmt.Errorf("transfer %s: %w", t.ID, context.Cause(ctx))
	}
}

// abort ends the transfer with err: its queued parts are dropped when a
// lane meets them.
func (t *Transfer) abort(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.finished {
		return
	}
	t.finished, t.err = true, err
	close(t.done)
}

func (t *Transfer) isFinished() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.finished
}

// partAcked counts part i as acknowledged (a copy sent again may be
// acknowledged twice); the last one finishes the transfer.
func (t *Transfer) partAcked(i int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.finished || t.acked[i] {
		return
	}
	t.acked[i] = true
	t.nacked++
	if t.nacked == t.parts {
		t.finished = true
		close(t.done)
	}
}

// bounds returns part i's slice of the data.
func (t *Transfer) bounds(i int) []byte {
	lo := i * t.PartSize
	return t.data[lo:min(lo+t.PartSize, len(t.data))]
}

// partStreamError is the code a part stream is reset with (malformed
// record, shutting down).
const partStreamError quic.StreamErrorCode = 0x71

// part is one part of a transfer waiting to be sent.
type part struct {
	t     *Transfer
	index int
}

func (p *part) size() int { return len(p.t.bounds(p.index)) + partHeaderLen }

// partQueue holds the parts waiting for a lane, oldest transfer first; a
// part sent again goes to the front.
//
// Lanes take parts in the order of their slots: a lane leaves parts to an
// idle lane of a lower slot, so the traffic keeps to the fewest
// connections that carry it (their ACKs ride on data, and a connection's
// window stays open). And only so many lanes write at once (active): few
// while they take all the credit the pace allows, more while credit goes
// unused with parts waiting (see adjust). So a part goes
// out whole at the pace instead of every lane trickling its own part, and
// the load spills onto more connections exactly when the ones in use
// cannot carry it.
type partQueue struct {
	mu      sync.Mutex
	items   []*part
	idle    []bool        // by lane slot: waiting for parts
	busy    int           // lanes writing
	active  int           // lanes allowed to write at once
	fast    int           // writes in a row that kept up with the pace
	changed chan struct{} // closed and replaced when parts or lanes change
	empty   bool          // the queue was empty at some point since takeStats
	retries atomic.Int64
}

// fastRun is the number of adaptEvery periods in a row in which the lanes
// took all the pace's credit after which one lane fewer writes.
const fastRun = 8

func (q *partQueue) init(slots int) {
	q.changed = make(chan struct{})
	q.idle = make([]bool, slots)
	q.active = 1
}

// signal wakes the waiting lanes (q.mu held).
func (q *partQueue) signal() {
	close(q.changed)
	q.changed = make(chan struct{})
}

func (q *partQueue) push(ps ...*part) {
	q.mu.Lock()
	q.items = append(q.items, ps...)
	q.signal()
	q.mu.Unlock()
}

func (q *partQueue) pushFront(p *part) {
	q.mu.Lock()
	q.items = append([]*part{p}, q.items...)
	q.signal()
	q.mu.Unlock()
}

// next returns the next parts of live transfers for the lane of slot, up
// to maxBytes (at least one part), waiting while there are none, all the
// active lanes are writing, or an idle lane of a lower slot should take
// them; nil when ctx or conn ends. more says whether other parts wait.
// The caller reports the write with done.
func (q *partQueue) next(ctx, conn context.Context, slot, maxBytes int) (ps []*part, more bool) {
	q.mu.Lock()
	defer func() {
		q.idle[slot] = false
		q.signal()
		q.mu.Unlock()
	}()
	q.idle[slot] = true
	q.signal()
	for {
		for len(q.items) > 0 && q.items[0].t.isFinished() {
			q.items[0] = nil
			q.items = q.items[1:]
		}
		if len(q.items) > 0 && q.busy < q.active && !slices.Contains(q.idle[:slot], true) {
			n := 0
			for len(q.items) > 0 && (len(ps) == 0 || n+q.items[0].size() <= maxBytes) {
				p := q.items[0]
				q.items[0] = nil
				q.items = q.items[1:]
				if !p.t.isFinished() {
					ps = append(ps, p)
					n += p.size()
				}
			}
			if len(ps) == 0 {
				continue
			}
			q.busy++
			more = len(q.items) > 0
			if !more {
				q.empty = true
			}
			return ps, more
		}
		if len(q.items) == 0 {
			q.empty = true
		}
		ch := q.changed
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		case <-conn.Done():
		}
		q.mu.Lock()
		if ctx.Err() != nil || conn.Err() != nil {
			return nil, false
		}
	}
}

// done ends a lane's write of parts taken with next.
func (q *partQueue) done() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.busy--
	q.signal()
}

// adjust widens or narrows the lanes writing at once, every adaptEvery:
// wider (by a quarter) while parts waited and the pace's credit went
// unused (the lanes writing could not take it: their connections'
// congestion windows held them back), narrower by one after fastRun
// periods in a row in which the lanes took all the credit. It returns the
// lanes allowed.
func (q *partQueue) adjust(starved, keptUp bool, lanes int) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case starved:
		q.fast = 0
		q.active = min(q.active+max(1, q.active/4), max(lanes, 1))
	case keptUp:
		if q.fast++; q.fast >= fastRun && q.active > 1 {
			q.active--
			q.fast = 0
		}
	}
	q.active = min(q.active, max(lanes, 1))
	q.signal()
	return q.active
}

// lanesActive returns how many lanes may write at once and how many do.
func (q *partQueue) lanesActive() (active, busy int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active, q.busy
}

// takeStats returns whether parts waited all along since the last call.
func (q *partQueue) takeStats() (backlogged bool) {
	q.mu.Lock()
	backlogged = !q.empty && len(q.items) > 0
	q.empty = len(q.items) == 0
	q.mu.Unlock()
	return backlogged
}
