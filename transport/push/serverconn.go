package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// fileState is where an offered file is on the server side.
type fileState uint8

const (
	stateAccepting  fileState = iota // Handler.Accept running
	stateReceiving                   // ACCEPT sent, DATA expected
	stateCommitting                  // END received, Sink.Commit running
)

// inFile is one offered file on a server connection.
type inFile struct {
	offer    Offer
	state    fileState
	sink     Sink
	next     int64     // offset the next DATA must carry
	progress time.Time // ACCEPT sent, or the last DATA for this file arrived
	canceled bool      // CANCEL arrived while accepting
}

// serverConn is one accepted connection after the handshake: a reader loop,
// a writer loop, and one goroutine per Accept and per Commit, all owned by
// one errgroup.
type serverConn struct {
	s    *Server
	w    *wire
	peer Hello
	log  *slog.Logger

	mu    sync.Mutex
	files map[uint64]*inFile

	lastScan time.Time // reader loop only: the last check for stalled files
}

// run serves the connection until it ends; every Sink not committed is
// aborted before run returns.
func (c *serverConn) run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.w.closeOnDone(gctx) })
	g.Go(func() error { return c.w.writeLoop(gctx) })
	g.Go(func() error { return c.readLoop(gctx, g) })
	err := g.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, f := range c.files {
		if f.sink != nil {
			f.sink.Abort()
		}
		delete(c.files, id)
	}
	return err
}

// readLoop dispatches frames until the connection fails or breaks the
// protocol. It always returns a non-nil error, so the group ends.
func (c *serverConn) readLoop(ctx context.Context, g *errgroup.Group) error {
	var buf []byte
	for {
		m, err := c.w.next(ctx, &buf)
		if err != nil {
			return err
		}
		if err := c.dispatch(ctx, g, m); err != nil {
			if errors.Is(err, ErrProtocol) {
				return c.w.closeWith(ctx, err)
			}
			return err
		}
		if err := c.abortStalled(ctx, time.Now()); err != nil {
			return err
		}
	}
}

// abortStalled ends every file that has been receiving without DATA for the
// progress timeout, with a NACK naming why: an offer whose data never comes
// must not hold its volume back (the receiver waits for that file number).
// It runs in the reader loop, the owner of receiving files' sinks, after
// every frame (at most every scanEvery); PINGs wake it but do not count as
// progress, and a connection that sends nothing at all ends at the idle
// timeout.
func (c *serverConn) abortStalled(ctx context.Context, now time.Time) error {
	timeout := c.s.ProgressTimeout
	if now.Sub(c.lastScan) < min(timeout/4, time.Second) {
		return nil
	}
	c.lastScan = now
	type stalled struct {
		id uint64
		f  *inFile
	}
	var late []stalled
	c.mu.Lock()
	for id, f := range c.files {
		if f.state == stateReceiving && now.Sub(f.progress) > timeout {
			delete(c.files, id)
			late = append(late, stalled{id, f})
		}
	}
	c.mu.Unlock()
	for _, s := range late {
		s.f.sink.Abort()
		err := fmt.Errorf("%w: %s/%s: no DATA for %v at byte %d of %d; aborted, offer it again",
			ErrStalled, s.f.offer.Volume, s.f.offer.Name, timeout, s.f.next, s.f.offer.Size)
		c.log.Warn("push: file aborted: no progress", "volume", s.f.offer.Volume, "file", s.f.offer.Name, "err", err)
		if err := c.nack(ctx, s.id, err); err != nil {
			return err
		}
	}
	return nil
}

// dispatch handles one frame from the client.
func (c *serverConn) dispatch(ctx context.Context, g *errgroup.Group, m Msg) error {
	switch m.Type {
	case TypeOffer:
		return c.onOffer(ctx, g, m.ID, m.Offer)
	case TypeData:
		return c.onData(ctx, m)
	case TypeEnd:
		return c.onEnd(ctx, g, m.ID)
	case TypeCancel:
		c.onCancel(m.ID)
		return nil
	case TypePing:
		return c.reply(ctx, Msg{Type: TypePong, ID: m.ID})
	case TypePong:
		return nil
	case TypeNack:
		if m.ID == 0 {
			return fmt.Errorf("peer closes the connection: %w", ErrorOf(m.Code, m.Text))
		}
	}
	return fmt.Errorf("%w: unexpected %s frame from client", ErrProtocol, m.Type)
}

// reply queues a frame for the writer.
func (c *serverConn) reply(ctx context.Context, m Msg) error {
	return c.w.send(ctx, nil, outFrame{m: m})
}

// nack queues a NACK for file id with the code of err.
func (c *serverConn) nack(ctx context.Context, id uint64, err error) error {
	return c.reply(ctx, Msg{Type: TypeNack, ID: id, Code: CodeOf(err), Text: err.Error()})
}

// onOffer validates an offer and runs Handler.Accept off the reader loop.
func (c *serverConn) onOffer(ctx context.Context, g *errgroup.Group, id uint64, o Offer) error {
	if err := validateOffer(o, c.s.MaxFileSize); err != nil {
		c.log.Warn("push: bad offer refused", "id", id, "err", err)
		return c.nack(ctx, id, fmt.Errorf("%w: %w", ErrBadOffer, err))
	}
	c.mu.Lock()
	if _, dup := c.files[id]; dup {
		c.mu.Unlock()
		return fmt.Errorf("%w: OFFER reuses file id %d still in flight", ErrProtocol, id)
	}
	if len(c.files) >= c.s.MaxFiles {
		c.mu.Unlock()
		return c.nack(ctx, id, fmt.Errorf("%w: %d files in flight on this connection", ErrBufferFull, c.s.MaxFiles))
	}
	c.files[id] = &inFile{offer: o, state: stateAccepting}
	c.mu.Unlock()
	g.Go(func() error {
		c.accept(ctx, id, o)
		return nil
	})
	return nil
}

// accept runs Handler.Accept for file id and answers ACCEPT, ACK or NACK.
func (c *serverConn) accept(ctx context.Context, id uint64, o Offer) {
	sink, err := c.s.Handler.Accept(ctx, c.peer, o)
	if err == nil && sink == nil {
		err = fmt.Errorf("%w: handler returned no sink", ErrInternal)
	}
	var off int64
	if err == nil {
		off = sink.Offset()
		if off < 0 || off > o.Size {
			sink.Abort()
			sink, err = nil, fmt.Errorf("%w: sink resume offset %d outside 0..%d", ErrInternal, off, o.Size)
		}
	}
	c.mu.Lock()
	f := c.files[id]
	if err != nil || f.canceled {
		delete(c.files, id)
	} else {
		f.sink, f.next, f.state, f.progress = sink, off, stateReceiving, time.Now()
	}
	c.mu.Unlock()
	switch {
	case f.canceled && sink != nil:
		sink.Abort()
	case f.canceled:
	case errors.Is(err, ErrDuplicate):
		c.reply(ctx, Msg{Type: TypeAck, ID: id})
	case err != nil:
		c.log.Info("push: offer refused", "volume", o.Volume, "file", o.Name, "err", err)
		c.nack(ctx, id, err)
	default:
		c.reply(ctx, Msg{Type: TypeAccept, ID: id, Offset: off})
	}
}

// receiving returns file id if it is receiving data. Frames for unknown ids
// are ignored (late frames after a NACK or CANCEL); frames for a file in
// another state break the protocol.
func (c *serverConn) receiving(id uint64, what FrameType) (*inFile, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.files[id]
	if f == nil {
		return nil, nil
	}
	if f.state != stateReceiving {
		return nil, fmt.Errorf("%w: %s for file id %d before ACCEPT or after END", ErrProtocol, what, id)
	}
	return f, nil
}

// drop forgets file id and aborts its sink.
func (c *serverConn) drop(id uint64, f *inFile) {
	c.mu.Lock()
	delete(c.files, id)
	c.mu.Unlock()
	f.sink.Abort()
}

// onData writes one DATA frame to its sink, in order.
func (c *serverConn) onData(ctx context.Context, m Msg) error {
	f, err := c.receiving(m.ID, TypeData)
	if f == nil || err != nil {
		return err
	}
	end := m.Offset + int64(len(m.Data))
	if m.Offset != f.next || end > f.offer.Size {
		c.drop(m.ID, f)
		err := fmt.Errorf("%w: %s/%s: DATA at %d+%d, expected offset %d of %d bytes",
			ErrBadOffer, f.offer.Volume, f.offer.Name, m.Offset, len(m.Data), f.next, f.offer.Size)
		c.log.Warn("push: file refused", "err", err)
		return c.nack(ctx, m.ID, err)
	}
	if n, err := f.sink.Write(m.Data); err != nil || n != len(m.Data) {
		if err == nil {
			err = fmt.Errorf("%w: sink took %d of %d bytes", ErrInternal, n, len(m.Data))
		}
		c.drop(m.ID, f)
		c.log.Warn("push: file refused", "volume", f.offer.Volume, "file", f.offer.Name, "err", err)
		return c.nack(ctx, m.ID, fmt.Errorf("store %s/%s: %w", f.offer.Volume, f.offer.Name, err))
	}
	f.next = end
	f.progress = time.Now()
	return nil
}

// onEnd starts Commit off the reader loop; its result becomes ACK or NACK.
func (c *serverConn) onEnd(ctx context.Context, g *errgroup.Group, id uint64) error {
	f, err := c.receiving(id, TypeEnd)
	if f == nil || err != nil {
		return err
	}
	if f.next != f.offer.Size {
		c.drop(id, f)
		return c.nack(ctx, id, fmt.Errorf("%w: %s/%s: END after %d of %d bytes",
			ErrBadOffer, f.offer.Volume, f.offer.Name, f.next, f.offer.Size))
	}
	c.mu.Lock()
	f.state = stateCommitting
	c.mu.Unlock()
	g.Go(func() error {
		err := f.sink.Commit(ctx)
		c.mu.Lock()
		delete(c.files, id)
		c.mu.Unlock()
		if err == nil || errors.Is(err, ErrDuplicate) {
			c.reply(ctx, Msg{Type: TypeAck, ID: id})
			return nil
		}
		c.log.Warn("push: commit failed", "volume", f.offer.Volume, "file", f.offer.Name, "err", err)
		c.nack(ctx, id, fmt.Errorf("commit %s/%s: %w", f.offer.Volume, f.offer.Name, err))
		return nil
	})
	return nil
}

// onCancel handles the sender giving up on file id.
func (c *serverConn) onCancel(id uint64) {
	c.mu.Lock()
	f := c.files[id]
	var abort Sink
	switch {
	case f == nil:
	case f.state == stateAccepting:
		f.canceled = true
	case f.state == stateReceiving:
		delete(c.files, id)
		abort = f.sink
	}
	c.mu.Unlock()
	if abort != nil {
		abort.Abort()
	}
}
