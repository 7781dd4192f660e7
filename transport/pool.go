package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"golang.org/x/sync/errgroup"
)

// ErrRefused marks a Setup failure that will not go away by redialling at
// once (mismatched settings): the pool waits its longest backoff.
var ErrRefused = errors.New("refused by peer")

// Pool keeps QUIC connections open to one peer, redials lost ones with
// exponential backoff, and carries transfers (NewTransfer) striped over
// them, paced by its rate controller and the Throttle. The number of
// connections is Config.Conns, or adapts between Config.MinConns and
// MaxConns: another connection is opened while the pace is held back by
// the connections' congestion windows (each loses half its window at a
// random loss; many of them keep the aggregate at the pace). Fill in the
// fields, then run Serve.
type Pool struct {
	// Addr is the peer's UDP address (host:port).
	Addr string
	// Identity is presented to the peer.
	Identity *Identity
	// Pins are the fingerprints accepted for the peer.
	Pins Pins
	// Config tunes the connections.
	Config Config
	// Endpoint, if set, carries every connection over its one socket;
	// nil means one UDP socket per connection.
	Endpoint *Endpoint
	// Throttle, if set, caps the pace (the schedule).
	Throttle *Throttle
	// Setup, if set, runs on each new connection before it is handed out (the
	// application handshake). An error closes the connection and backs off;
	// an error wrapping ErrRefused backs off the longest delay.
	Setup func(ctx context.Context, c *quic.Conn) error
	// Logger receives connect/disconnect lines; nil means slog.Default().
	Logger *slog.Logger

	initOnce sync.Once
	mu       sync.Mutex
	conns    []*quic.Conn // index = slot; nil when down
	want     int          // slots kept up
	started  int          // slots whose keeper runs
	changed  chan struct{}

	ctl   *controller
	parts partQueue

	shares  [][2]int64            // QUIC and stream bytes sent, every adaptEvery (measureShare)
	rttSent map[*quic.Conn]uint64 // bytes sent by each connection at the last RTT sample
}

func (p *Pool) init() {
	p.initOnce.Do(func() {
		cfg := p.Config.WithDefaults()
		p.changed = make(chan struct{})
		p.conns = make([]*quic.Conn, cfg.MaxConns)
		p.want = cfg.MinConns
		hint := 0.0
		if p.Config.LinkRate > 0 {
			hint = cfg.LinkRate
			if p.Config.Conns == 0 && p.Config.MinConns == 0 {
				// Start with a connection per 128 KiB of the hinted
				// bandwidth-delay product (a loss-halved congestion window
				// carries about that on a long line), up to 16.
				p.want = min(max(p.want, int(cfg.BDP()/(128<<10))), 16, cfg.MaxConns)
			}
		}
		p.ctl = newController(hint, p.Throttle)
		p.parts.init(cfg.MaxConns)
	})
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
	p.mu.Lock()
	for ; p.started < p.want; p.started++ {
		slot := p.started
		g.Go(func() error { p.keep(ctx, slot); return nil })
	}
	p.mu.Unlock()
	g.Go(func() error { p.adapt(ctx, g); return nil })
	return g.Wait()
}

// keep maintains the connection in one slot and runs its lane.
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
		laneDone := make(chan struct{})
		go func() { defer close(laneDone); p.lane(ctx, c, slot) }()
		select {
		case <-ctx.Done():
			_ = c.CloseWithError(CloseShutdown, "shutting down")
		case <-c.Context().Done():
			log.Warn("WAN connection lost", "err", context.Cause(c.Context()))
		}
		p.set(slot, nil)
		<-laneDone
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
	var c *quic.Conn
	var err error
	if p.Endpoint != nil {
		var addr *net.UDPAddr
		if addr, err = net.ResolveUDPAddr("udp", p.Addr); err != nil {
			return nil, fmt.Errorf("dial WAN peer %s: %w", p.Addr, err)
		}
		c, err = p.Endpoint.Dial(ctx, addr, p.Pins, p.Config)
	} else {
		c, err = Dial(ctx, p.Addr, p.Identity, p.Pins, p.Config, p.Logger)
	}
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

// Get returns the live connection of the lowest slot, waiting until one
// is up or ctx ends. The pool's user opens its own streams (one per file)
// on it, so the peer accepts them in the order they were opened — the
// order a later file's references to an earlier one's chunks rely on —
// while the bulk of the bytes travels as transfers over all connections.
func (p *Pool) Get(ctx context.Context) (*quic.Conn, error) {
	p.init()
	for {
		p.mu.Lock()
		for _, c := range p.conns {
			if c != nil && c.Context().Err() == nil {
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

// adaptEvery is the period of the connection-count decision.
const adaptEvery = 250 * time.Millisecond

// adapt opens more connections while transfers wait and every connection
// writes, yet below the pace (their congestion windows hold it back).
// Connections are never closed for being many: an idle one costs a
// keep-alive.
func (p *Pool) adapt(ctx context.Context, g *errgroup.Group) {
	t := time.NewTicker(RTTEvery)
	defer t.Stop()
	last, lastLog := time.Now(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.sampleRTT()
		if time.Since(last) < adaptEvery {
			continue
		}
		now := time.Now()
		backlogged := p.parts.takeStats()
		unused, pace := p.ctl.takeUnused()
		period := now.Sub(last).Seconds()
		last = now
		p.measureShare()
		// Parts waited and a tenth of the pace's credit went unused: the
		// lanes writing could not take it.
		starved := backlogged && pace > 0 && unused > 0.1*pace*period
		keptUp := unused < 0.01*pace*period
		active := p.parts.adjust(starved, keptUp, len(p.Conns()))
		if time.Since(lastLog) >= time.Second {
			lastLog = time.Now()
			p.logState(active)
		}
		p.mu.Lock()
		live := 0
		for _, c := range p.conns[:p.started] {
			if c != nil {
				live++
			}
		}
		// Every live connection writes and still the pace's credit goes
		// unused: the congestion windows are the limit.
		if starved && active >= live && live == p.started && p.want < len(p.conns) {
			p.want = min(len(p.conns), p.want+max(1, p.want/4))
			orDefault(p.Logger).Info("WAN: more connections (congestion windows hold the pace back)", "peer", p.Addr, "conns", p.want)
			for ; p.started < p.want; p.started++ {
				slot := p.started
				g.Go(func() error { p.keep(ctx, slot); return nil })
			}
		}
		p.mu.Unlock()
	}
}

// logState writes the rate controller's view at debug level.
func (p *Pool) logState(active int) {
	log := orDefault(p.Logger)
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	e := p.Estimates()
	log.Debug("WAN pace", "peer", p.Addr, "state", e.State, "bottleneck_Bps", int64(e.Bottleneck),
		"delivery_Bps", int64(e.Delivery), "pace_Bps", int64(e.Pacing), "base_rtt", e.BaseRTT.Round(time.Millisecond/10),
		"queue_delay", e.QueueDelay.Round(time.Millisecond/10), "conns", e.Conns, "writing", active, "backoffs", e.Backoffs)
}

// sampleRTT gives the rate controller the smallest latest round trip of
// the connections that sent since the last sample (an idle connection's
// is stale).
func (p *Pool) sampleRTT() {
	conns := p.Conns()
	if p.rttSent == nil {
		p.rttSent = make(map[*quic.Conn]uint64)
	}
	var best time.Duration
	for _, c := range conns {
		st := c.ConnectionStats()
		// Until its first samples, a connection reports quic-go's initial
		// RTT (100 ms) as its latest, smoothed and smallest alike.
		measured := st.LatestRTT != st.SmoothedRTT || st.LatestRTT != st.MinRTT
		if prev, ok := p.rttSent[c]; ok && measured && st.BytesSent > prev && (best == 0 || st.LatestRTT < best) {
			best = st.LatestRTT
		}
		p.rttSent[c] = st.BytesSent
	}
	if len(p.rttSent) > 2*len(conns)+8 {
		for c := range p.rttSent {
			if c.Context().Err() != nil {
				delete(p.rttSent, c)
			}
		}
	}
	if best > 0 {
		p.ctl.onRTT(best)
	}
}

// measureShare gives the rate controller the share of stream bytes in the
// QUIC bytes the connections sent, over the last few seconds (adapt's
// goroutine calls it every adaptEvery).
func (p *Pool) measureShare() {
	var quicSent int64
	for _, c := range p.Conns() {
		quicSent += int64(c.ConnectionStats().BytesSent)
	}
	p.ctl.mu.Lock()
	defer p.ctl.mu.Unlock()
	p.shares = append(p.shares, [2]int64{quicSent, p.ctl.m.sent})
	if len(p.shares) > 20 {
		p.shares = p.shares[1:]
	}
	first, last := p.shares[0], p.shares[len(p.shares)-1]
	if dq, ds := last[0]-first[0], last[1]-first[1]; dq > 256<<10 && ds > 0 && ds <= dq {
		p.ctl.m.setShare(float64(ds) / float64(dq))
	}
}

// Writer returns w paced by the pool's rate controller and capped by its
// Throttle: what the pool's user writes on its own streams (file headers,
// small blobs) shares the pace with the transfers.
func (p *Pool) Writer(ctx context.Context, w io.Writer) io.Writer {
	p.init()
	return &pacedWriter{ctx: ctx, c: p.ctl, w: w}
}

// Estimates returns the rate controller's view of the path.
func (p *Pool) Estimates() Estimates {
	p.init()
	e := p.ctl.estimates()
	p.mu.Lock()
	e.ConnsWanted = p.want
	for _, c := range p.conns {
		if c != nil {
			e.Conns++
		}
	}
	p.mu.Unlock()
	e.Retries = p.parts.retries.Load()
	e.Lanes, _ = p.parts.lanesActive()
	return e
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
