package push

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Push sends one file and blocks until the server acks it as durably stored
// (nil), refuses it (*RemoteError, errors.Is with ErrBufferFull etc.; the
// connection stays usable), the connection fails (errors.Is(err,
// ErrUnavailable), not a *RemoteError: dial again), or ctx ends. Sending
// starts at the resume offset the server accepts; r must hold o.Size bytes.
// Safe for concurrent use.
func (c *Client) Push(ctx context.Context, o Offer, r io.ReaderAt) error {
	if err := c.push(ctx, o, r); err != nil {
		return fmt.Errorf("push %s/%s to %s: %w", o.Volume, o.Name, c.addr, err)
	}
	return nil
}

func (c *Client) push(ctx context.Context, o Offer, r io.ReaderAt) error {
	if err := validateOffer(o, 0); err != nil {
		return fmt.Errorf("%w: %w", ErrBadOffer, err)
	}
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return c.err
	}
	id, replies := c.register()
	defer c.unregister(id)
	p := &pushing{c: c, ctx: ctx, id: id, replies: replies}
	if err := p.send(Msg{Type: TypeOffer, ID: id, Offer: o}, nil); err != nil {
		return err
	}
	m, err := p.wait()
	if err != nil {
		return err
	}
	switch m.Type {
	case TypeAck:
		return nil // duplicate: already stored
	case TypeNack:
		return ErrorOf(m.Code, m.Text)
	case TypeAccept:
	default: // a SUMS for a file id
		p.cancel()
		return fmt.Errorf("%w: %s answers OFFER", ErrProtocol, m.Type)
	}
	if m.Offset > o.Size {
		p.cancel()
		return fmt.Errorf("%w: server resumes at %d beyond size %d", ErrProtocol, m.Offset, o.Size)
	}
	if err := p.sendData(r, m.Offset, o.Size); err != nil {
		return err
	}
	if err := p.send(Msg{Type: TypeEnd, ID: id}, nil); err != nil {
		return err
	}
	m, err = p.wait()
	switch {
	case err != nil:
		return err
	case m.Type == TypeAck:
		return nil
	case m.Type == TypeNack:
		return ErrorOf(m.Code, m.Text)
	}
	return fmt.Errorf("%w: %s after END", ErrProtocol, m.Type)
}

// pushing is the state of one Push call.
type pushing struct {
	c       *Client
	ctx     context.Context
	id      uint64
	replies chan Msg
}

// send queues one frame; a reply arriving meanwhile (an early NACK) or the
// end of ctx or of the connection stops it.
func (p *pushing) send(m Msg, release func()) error {
	f := outFrame{m: m, release: release}
	select {
	case p.c.w.out <- f:
		return nil
	case r := <-p.replies:
		f.done()
		if r.Type == TypeNack {
			return ErrorOf(r.Code, r.Text)
		}
		return fmt.Errorf("%w: %s while sending file id %d", ErrProtocol, r.Type, p.id)
	case <-p.ctx.Done():
		f.done()
		p.cancel()
		return p.ctx.Err()
	case <-p.c.done:
		f.done()
		return p.c.err
	}
}

// wait returns the next reply for this file.
func (p *pushing) wait() (Msg, error) {
	select {
	case m := <-p.replies:
		return m, nil
	case <-p.ctx.Done():
		p.cancel()
		return Msg{}, p.ctx.Err()
	case <-p.c.done:
		return Msg{}, p.c.err
	}
}

// cancel tells the server this file is given up (see Client.giveUp).
func (p *pushing) cancel() { p.c.giveUp(p.id) }

// sendData sends bytes [off, size) of r in DATA frames, double-buffered so
// reading the next chunk overlaps writing the previous one.
func (p *pushing) sendData(r io.ReaderAt, off, size int64) error {
	free := make(chan []byte, 2)
	n := min(int64(MaxData), size-off)
	if n <= 0 {
		return nil
	}
	free <- make([]byte, n)
	free <- make([]byte, n)
	for off < size {
		var buf []byte
		select { // both buffers queued: wait for the writer, or give up
		case buf = <-free:
		case <-p.ctx.Done():
			p.cancel()
			return p.ctx.Err()
		case <-p.c.done:
			return p.c.err
		}
		n := min(int64(len(buf)), size-off)
		got, err := r.ReadAt(buf[:n], off)
		if int64(got) < n {
			p.cancel()
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read source at %d: %w", off, err)
		}
		m := Msg{Type: TypeData, ID: p.id, Offset: off, Data: buf[:n]}
		if err := p.send(m, func() { free <- buf }); err != nil {
			return err
		}
		off += n
	}
	return nil
}
