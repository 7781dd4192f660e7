package push

import (
	"context"
	"errors"
	"time"
)

// Link states of a Redialer (LinkState.State).
const (
	LinkUnknown = "unknown" // never dialed yet
	LinkUp      = "up"      // a connection is live
	LinkDown    = "down"    // the last dial failed, or the connection ended and no new one is up
)

// LinkState is what a Redialer knows of its next hop: whether a connection
// is up, since when, and the newest failure.
type LinkState struct {
	State string    `json:"state"`           // LinkUp, LinkDown or LinkUnknown
	Since time.Time `json:"since,omitzero"`  // when State last changed
	Error string    `json:"error,omitempty"` // the newest dial or connection failure (kept after recovery)
	// ErrorTime is when Error happened; Failures counts the failed dials
	// and lost connections since the link was last up.
	ErrorTime time.Time `json:"error_time,omitzero"`
	Failures  int       `json:"failures"`
}

// link is a Redialer's LinkState, under Redialer.mu.
type link struct {
	st LinkState
}

// set moves the link to state at now, recording err (nil: none).
func (l *link) set(state string, err error, now time.Time) {
	if l.st.State != state {
		l.st.State, l.st.Since = state, now
	}
	switch {
	case state == LinkUp:
		l.st.Failures = 0
	case err != nil:
		l.st.Error, l.st.ErrorTime = err.Error(), now
		l.st.Failures++
	}
}

// Link returns the state of the link to the next hop. A connection that has
// ended since it was last used counts as down at once (its error is the
// reason), without waiting for the next push.
func (r *Redialer) Link() LinkState {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reap()
	st := r.link.st
	if st.State == "" {
		st.State = LinkUnknown
	}
	return st
}

// reap forgets the connection once it has ended, marking the link down.
// Called with r.mu held.
func (r *Redialer) reap() {
	if r.c == nil {
		return
	}
	select {
	case <-r.c.Done():
		err := r.c.Err()
		r.c.Close()
		r.c = nil
		r.link.set(LinkDown, err, time.Now())
	default:
	}
}

// Keep keeps a connection up until ctx ends: every interval it dials one
// when none is live, so the link's state (Link) is known, and a next hop
// that went away is seen, even while nothing is pushed. It always returns
// nil.
func (r *Redialer) Keep(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		dctx, cancel := context.WithTimeout(ctx, every)
		r.client(dctx) // the outcome is in the link state
		cancel()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// verdict records what the next hop answered a push on c: an ack puts the
// link up; an unavailable verdict (the next hop, or a hop beyond it,
// cannot take files now) puts it down with that reason, although the
// connection itself is kept.
func (r *Redialer) verdict(c *Client, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.c != c {
		return
	}
	switch {
	case err == nil:
		r.link.set(LinkUp, nil, time.Now())
	case errors.Is(err, ErrUnavailable):
		r.link.set(LinkDown, err, time.Now())
	}
}
