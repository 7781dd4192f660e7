package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"golang.org/x/sync/errgroup"
)

// ErrRefused marks a Setup failure that will not go away by redialling at
// once (mismatched settings): the pool waits its longest backoff.
var ErrRefused = errors.New("refused by peer")

// Pool keeps Config.Conns QUIC connections open to one peer and redials lost
// ones with exponential backoff. Fill in the fields, then run Serve.
type Pool struct {
	// Addr is the peer's UDP address (host:port).
	Addr string
	// Identity is presented to the peer.
	Identity *Identity
	// Pins are the fingerprints accepted for the peer.
	Pins Pins
	// Config tunes the connections.
	Config Config
	// Setup, if set, runs on each new connection before it is handed out (the
	// application handshake). An error closes the connection and backs off;
	// an error wrapping ErrRefused backs off the longest delay.
	Setup func(ctx context.Context, c *quic.Conn) error
	// Logger receives connect/disconnect lines; nil means slog.Default().
	Logger *slog.Logger

	mu      sync.Mutex
	conns   []*quic.Conn // index = slot; nil when down
	changed chan struct{}
	next    int
}

func (p *Pool) init() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.changed == nil {
		p.changed = make(chan struct{})
		p.conns = make([]*quic.Conn, p.Config.WithDefaults().Conns)
	}
}

// Serve keeps the connections up until ctx ends, then closes them.
func (p *Pool) Serve(ctx context.Context) error {
	if p.Identity == nil {
		return errors.New("transport pool: no identity")
	}
	if err := p.Config.Validate(); err != nil {
		return err
	}
	p.init()
	g, ctx := errgroup.WithContext(ctx)
	for slot := range p.conns {
		g.Go(func() error { p.keep(ctx, slot); return nil })
	}
	return g.Wait()
}

// keep maintains the connection in one slot.
func (p *Pool) keep(ctx context.Context, slot int) {
	cfg := p.Config.WithDefaults()
	log := orDefault(p.Logger).With("peer", p.Addr, "conn", slot)
	backoff := cfg.MinBackoff
	for ctx.Err() == nil {
		c, err := p.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait := backoff
			if errors.Is(err, ErrRefused) {
				wait = cfg.MaxBackoff
			}
			log.Warn("WAN connect failed", "err", err, "retry_in", wait.Round(time.Millisecond))
			if !sleepCtx(ctx, jitter(wait)) {
				return
			}
			backoff = min(2*backoff, cfg.MaxBackoff)
			continue
		}
		log.Info("WAN connection up", "remote", c.RemoteAddr().String())
		up := time.Now()
		p.set(slot, c)
		select {
		case <-ctx.Done():
			_ = c.CloseWithError(CloseShutdown, "shutting down")
		case <-c.Context().Done():
			log.Warn("WAN connection lost", "err", context.Cause(c.Context()))
		}
		p.set(slot, nil)
		// A connection that lived long was healthy: redial at once. One that
		// died young counts as a failure, so a peer that drops every
		// connection is not hammered.
		if time.Since(up) >= stableAfter {
			backoff = cfg.MinBackoff
			continue
		}
		if !sleepCtx(ctx, jitter(backoff)) {
			return
		}
		backoff = min(2*backoff, cfg.MaxBackoff)
	}
}

// stableAfter is how long a connection must live to reset the backoff.
const stableAfter = 10 * time.Second

func (p *Pool) connect(ctx context.Context) (*quic.Conn, error) {
	c, err := Dial(ctx, p.Addr, p.Identity, p.Pins, p.Config, p.Logger)
	if err != nil {
		return nil, err
	}
	if p.Setup != nil {
		if err := p.Setup(ctx, c); err != nil {
			code := CloseProtocol
			if errors.Is(err, ErrRefused) {
				code = CloseRefused
			}
			_ = c.CloseWithError(code, err.Error())
			return nil, fmt.Errorf("setup: %w", err)
		}
	}
	return c, nil
}

func (p *Pool) set(slot int, c *quic.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns[slot] = c
	close(p.changed)
	p.changed = make(chan struct{})
}

// Get returns a live connection, round-robin over the slots, waiting until
// one is up or ctx ends.
func (p *Pool) Get(ctx context.Context) (*quic.Conn, error) {
	p.init()
	for {
		p.mu.Lock()
		n := len(p.conns)
		for i := range n {
			c := p.conns[(p.next+i)%n]
			if c != nil && c.Context().Err() == nil {
				p.next = (p.next + i + 1) % n
				p.mu.Unlock()
				return c, nil
			}
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("no WAN connection to %s: %w", p.Addr, context.Cause(ctx))
		}
	}
}

// Conns returns the live connections (for statistics).
func (p *Pool) Conns() []*quic.Conn {
	p.init()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*quic.Conn
	for _, c := range p.conns {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// sleepCtx waits d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
