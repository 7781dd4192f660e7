package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// statusLen is a part status report: the status byte, the receiver's
// clock (ns) and the bytes its connections from this sender had received
// then.
const statusLen = 1 + 8 + 8

// statusReport is a parsed status report.
type statusReport struct {
	code     byte
	peerTime time.Time
	received int64
}

func parseStatus(b [statusLen]byte) statusReport {
	return statusReport{code: b[0], peerTime: time.Unix(0, int64(binary.BigEndian.Uint64(b[1:]))),
		received: int64(binary.BigEndian.Uint64(b[9:]))}
}

func appendStatus(b []byte, code byte, peerTime time.Duration, received uint64) []byte {
	b = append(b, code)
	b = binary.BigEndian.AppendUint64(b, uint64(peerTime))
	return binary.BigEndian.AppendUint64(b, received)
}

// laneStreams is the number of part streams a connection carries parts
// on, in turn: a lost packet holds up the parts of one of them only (QUIC
// delivers each stream in order), so the other parts' round trips still
// show the queue as it is.
const laneStreams = 4

// lane sends parts on connection c until c or ctx ends. Every live
// connection runs one; the part queue decides which lanes write (see
// partQueue): the lowest ones, more of them while the connections'
// congestion windows hold the writes back.
func (p *Pool) lane(ctx context.Context, c *quic.Conn, slot int) {
	var streams [laneStreams]*laneStream
	defer func() {
		for _, ls := range streams {
			if ls != nil {
				ls.close(fmt.Errorf("connection %d closed", slot))
			}
		}
	}()
	for turn := 0; ; turn++ {
		batch := p.ctl.batchBytes()
		ps, more := p.parts.next(ctx, c.Context(), slot, batch)
		if ps == nil {
			return
		}
		p.sendBatch(ctx, c, &streams[turn%laneStreams], ps, !more)
		p.parts.done()
		if c.Context().Err() != nil || ctx.Err() != nil {
			return
		}
	}
}

// sendBatch writes parts on the lane stream *ls (opened, or opened again
// after a failure). Parts that could not be written are sent again.
func (p *Pool) sendBatch(ctx context.Context, c *quic.Conn, ls **laneStream, ps []*part, appLimited bool) {
	if *ls == nil || (*ls).failed() {
		s, err := p.openLaneStream(ctx, c)
		if err != nil {
			for _, pt := range ps {
				p.retry(pt, err)
			}
			return
		}
		*ls = s
	}
	(*ls).send(ctx, ps, appLimited)
}

// laneStream is one part stream: the records written on it wait, in
// order, for their status bytes.
type laneStream struct {
	p  *Pool
	c  *quic.Conn
	st *quic.Stream

	mu       sync.Mutex
	inflight []sentPart // in the order written
	err      error      // set when the stream failed; its parts were sent again
}

// sentPart is a part written on a lane stream, awaiting its status.
type sentPart struct {
	pt   *part
	snap sendSnap
}

func (p *Pool) openLaneStream(ctx context.Context, c *quic.Conn) (*laneStream, error) {
	st, err := c.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("open part stream: %w", err)
	}
	ls := &laneStream{p: p, c: c, st: st}
	go ls.readStatus()
	return ls, nil
}

func (ls *laneStream) failed() bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.err != nil
}

// send writes the records of parts as one write, its packets paced by
// the pool's bucket. Records written back to back fill their packets; a
// stream that fails sends its parts again.
func (ls *laneStream) send(ctx context.Context, ps []*part, appLimited bool) {
	size := 0
	for _, pt := range ps {
		size += pt.size()
	}
	buf := make([]byte, 0, size)
	for _, pt := range ps {
		payload := pt.t.bounds(pt.index)
		buf = append(buf, PartTag)
		buf = append(buf, pt.t.ID[:]...)
		buf = binary.BigEndian.AppendUint32(buf, uint32(pt.index))
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(payload)))
		buf = append(buf, payload...)
	}
	// Registered before the write: a status may come back before the
	// write returns.
	ls.mu.Lock()
	if ls.err != nil {
		err := ls.err
		ls.mu.Unlock()
		for _, pt := range ps {
			ls.p.retry(pt, err)
		}
		return
	}
	for _, pt := range ps {
		ls.inflight = append(ls.inflight, sentPart{pt: pt, snap: sendSnap{size: int64(pt.size())}})
	}
	ls.mu.Unlock()
	if err := ls.p.ctl.writeLimited(ctx, ls.st, buf); err != nil {
		ls.close(fmt.Errorf("write parts: %w", err))
		return
	}
	ls.p.ctl.onSend(int64(len(buf)), time.Now(), appLimited)
	for _, pt := range ps {
		if pt.t.OnSent != nil {
			pt.t.OnSent(pt.size())
		}
	}
}

// readStatus takes the status report of each record in turn until the
// stream ends.
func (ls *laneStream) readStatus() {
	r := bufio.NewReader(ls.st)
	var b [statusLen]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			ls.close(fmt.Errorf("part stream: %w", err))
			return
		}
		st := parseStatus(b)
		ls.p.ctl.onReport(st.peerTime, st.received)
		ls.status(st.code)
	}
}

// status applies one status to the oldest part in flight.
func (ls *laneStream) status(b byte) {
	ls.mu.Lock()
	if len(ls.inflight) == 0 {
		ls.mu.Unlock()
		ls.close(fmt.Errorf("part stream: status %d with no part in flight", b))
		return
	}
	sp := ls.inflight[0]
	ls.inflight[0] = sentPart{}
	ls.inflight = ls.inflight[1:]
	ls.mu.Unlock()
	ls.p.ctl.onDone(sp.snap)
	if b != partStored {
		ls.p.retry(sp.pt, fmt.Errorf("part refused by the peer (status %d)", b))
		return
	}
	sp.pt.t.partAcked(sp.pt.index)
}

// close ends the stream with err and sends its parts in flight again.
func (ls *laneStream) close(err error) {
	ls.mu.Lock()
	if ls.err != nil {
		ls.mu.Unlock()
		return
	}
	ls.err = err
	pending := ls.inflight
	ls.inflight = nil
	ls.mu.Unlock()
	ls.st.CancelWrite(partStreamError)
	ls.st.CancelRead(partStreamError)
	for _, sp := range pending {
		ls.p.ctl.onDone(sp.snap)
		ls.p.retry(sp.pt, err)
	}
}

// retry sends a failed part again (any lane may take it), or fails its
// transfer after maxPartAttempts.
func (p *Pool) retry(pt *part, err error) {
	t := pt.t
	t.mu.Lock()
	t.attempts[pt.index]++
	n := t.attempts[pt.index]
	done := t.finished || t.acked[pt.index]
	t.mu.Unlock()
	if done {
		return
	}
	if n >= maxPartAttempts {
		t.abort(fmt.Errorf("transfer %s part %d: %d attempts, last: %v: %w", t.ID, pt.index, n, err, ErrTransfer))
		return
	}
	p.parts.retries.Add(1)
	p.parts.pushFront(pt)
}
