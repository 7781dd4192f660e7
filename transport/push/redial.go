package push

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Redialer pushes files to one next hop over a connection it dials on
// demand and dials again once that connection is lost. aimsrc pushes its
// sealed files with one, and so does the destination-edge proxy to dst.
// Safe for concurrent use: pushes share the connection.
//
// Liveness rule: a connection is used until it has ended (Client.Done), and
// a push that fails without a verdict from the receiver (not a
// *RemoteError) and not because the caller's context ended drops it: the
// connection is presumed dead. That push is then tried once more at once on
// a new connection, because a connection that died while idle (the receiver
// restarted) is only found out when a push uses it; a second failure is
// returned to the caller, whose own retry policy (backoff) takes over. A
// verdict (NACK) or a canceled push keeps the connection: it is still good
// for the other files in flight on it.
//
// Lock order: mu is a leaf, held only for short bookkeeping, never across
// a dial or a push (a dial may take DialConfig.Timeout): Link, which
// status and metrics read, must not wait for a next hop that is slow to
// answer. One dial runs at a time; other callers wait for it on dialing,
// with their context.
type Redialer struct {
	Addr  string     // the next hop's push address
	Hello Hello      // what this node tells it
	Dial  DialConfig // tunes each connection

	mu      sync.Mutex
	c       *Client
	link    link          // see Link
	dialing chan struct{} // non-nil while a dial runs; closed when it ends
	gen     uint64        // incremented by Close: a dial begun before it does not install its connection
}

// Push pushes one file (see Client.Push) under the liveness rule above. A
// duplicate (ErrDuplicate: the receiver holds the file already) is success.
func (r *Redialer) Push(ctx context.Context, o Offer, rd io.ReaderAt) error {
	if err := o.Validate(); err != nil { // a bad offer says nothing about the connection
		return fmt.Errorf("%w: %w", ErrBadOffer, err)
	}
	var err error
	for range 2 {
		var c *Client
		if c, err = r.client(ctx); err != nil {
			return err
		}
		err = c.Push(ctx, o, rd)
		var remote *RemoteError
		switch {
		case err == nil || errors.Is(err, ErrDuplicate):
			r.verdict(c, nil)
			return nil
		case errors.As(err, &remote):
			r.verdict(c, err)
			return err
		case ctx.Err() != nil:
			return err
		}
		r.drop(c, err)
	}
	return err
}

// client returns the live connection, dialing one when there is none or
// the last one has ended. The dial runs without mu held; a caller that
// finds a dial under way waits for it (or for its ctx) and looks again.
func (r *Redialer) client(ctx context.Context) (*Client, error) {
	for {
		r.mu.Lock()
		r.reap()
		if r.c != nil {
			c := r.c
			r.mu.Unlock()
			return c, nil
		}
		if wait := r.dialing; wait != nil {
			r.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("push dial %s: %w: %w", r.Addr, ErrUnavailable, ctx.Err())
			}
		}
		done := make(chan struct{})
		r.dialing = done
		gen := r.gen
		r.mu.Unlock()
		c, err := r.Dial.Dial(ctx, r.Addr, r.Hello)
		return r.dialed(done, gen, c, err)
	}
}

// dialed ends the dial that client began (done, at Close generation gen):
// it installs the connection, or records the failure.
func (r *Redialer) dialed(done chan struct{}, gen uint64, c *Client, err error) (*Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dialing = nil
	close(done)
	switch {
	case err != nil:
		if !errors.Is(err, context.Canceled) { // not the caller giving up
			r.link.set(LinkDown, err, time.Now())
		}
		return nil, err
	case r.gen != gen: // closed while dialing
		c.Close()
		return nil, fmt.Errorf("push dial %s: %w: %w", r.Addr, ErrUnavailable, net.ErrClosed)
	}
	c.log.Info("push connection up")
	r.c = c
	r.link.set(LinkUp, nil, time.Now())
	return c, nil
}

// drop closes c, which failed a push with err, if it is still the live
// connection: the link is down until a dial succeeds.
func (r *Redialer) drop(c *Client, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.c == c {
		c.Close()
		r.c = nil
		r.link.set(LinkDown, err, time.Now())
	}
}

// Close closes the connection; pushes in flight fail with ErrUnavailable.
// A later Push dials again.
func (r *Redialer) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	if r.c != nil {
		r.c.Close()
		r.c = nil
	}
	return nil
}
