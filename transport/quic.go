package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"time"

	"github.com/quic-go/quic-go"
)

// Config tunes the QUIC connections to one peer. The zero value is usable.
type Config struct {
	// LinkRate is the WAN bottleneck rate in bytes per second, a hint: with
	// RTT it sizes the flow-control windows, and the pool's rate controller
	// starts pacing at it (then follows what it measures). 0 means unknown:
	// windows are sized for 12.5e6 (100 Mbit/s) and the controller starts
	// slow. +Inf is treated as 0.
	LinkRate float64
	// RTT is the WAN round-trip time, a hint that sizes the windows. 0 means
	// 50ms.
	RTT time.Duration
	// Conns fixes the number of QUIC connections kept to the peer (each
	// with its own congestion controller). 0 means adaptive: from MinConns,
	// more while the connections' congestion windows hold the pace back, up
	// to MaxConns.
	Conns int
	// MinConns and MaxConns bound the adaptive number of connections. 0
	// means 2 (more with a LinkRate hint: one per 128 KiB of its
	// bandwidth-delay product, up to 16) and 64.
	MinConns, MaxConns int
	// KeepAlive is the period of keep-alive packets on an idle connection.
	// 0 means 5s.
	KeepAlive time.Duration
	// IdleTimeout closes a connection that heard nothing for this long. 0 means
	// 30s.
	IdleTimeout time.Duration
	// HandshakeTimeout bounds connection setup. 0 means 10s.
	HandshakeTimeout time.Duration
	// MinBackoff and MaxBackoff bound the delay between redial attempts, which
	// doubles after each failure. 0 means 200ms and 15s.
	MinBackoff, MaxBackoff time.Duration
	// MaxStreams is the number of concurrent file streams a peer may open
	// on one connection (files in flight). 0 means 1000. The connection's
	// long-lived part streams come on top (QUIC counts them alike), so a
	// small limit still leaves room for files.
	MaxStreams int64
}

// maxConns bounds the connections kept to one peer.
const maxConns = 128

const (
	// Floors of the windows. quic-go's defaults (6 and 15 MiB) would let a
	// sender hand a slow line minutes of data at once: on a 2 Mbit/s link
	// that is memory held for nothing and a wire-byte counter running far
	// ahead of the line. These floors still allow 512 KiB in flight per
	// stream (≈ 100 Mbit/s at 40 ms).
	minStreamWindow = 512 << 10
	minConnWindow   = 2 << 20
	maxWindow       = 1 << 30
)

// WithDefaults returns c with zero fields replaced by their defaults.
func (c Config) WithDefaults() Config {
	if c.LinkRate <= 0 || math.IsInf(c.LinkRate, 0) || math.IsNaN(c.LinkRate) {
		c.LinkRate = 12.5e6
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.RTT, 50*time.Millisecond)
	def(&c.KeepAlive, 5*time.Second)
	def(&c.IdleTimeout, 30*time.Second)
	def(&c.HandshakeTimeout, 10*time.Second)
	def(&c.MinBackoff, 200*time.Millisecond)
	def(&c.MaxBackoff, 15*time.Second)
	if c.MinConns <= 0 {
		c.MinConns = 2
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 64
	}
	c.MaxConns = max(c.MaxConns, c.MinConns)
	if c.Conns > 0 {
		c.MinConns, c.MaxConns = c.Conns, c.Conns
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 1000
	}
	return c
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Conns > maxConns || c.MaxConns > maxConns || c.MinConns > maxConns:
		return fmt.Errorf("transport: %d connections per peer: at most %d", max(c.Conns, c.MinConns, c.MaxConns), maxConns)
	case c.Conns < 0 || c.MinConns < 0 || c.MaxConns < 0:
		return errors.New("transport: negative number of connections")
	case c.MinBackoff > c.MaxBackoff && c.MaxBackoff > 0:
		return fmt.Errorf("transport: min backoff %s above max backoff %s", c.MinBackoff, c.MaxBackoff)
	case c.RTT > time.Minute:
		return fmt.Errorf("transport: RTT %s: at most 1m", c.RTT)
	}
	return nil
}

// BDP is the bandwidth-delay product of the configured link in bytes.
func (c Config) BDP() uint64 {
	c = c.WithDefaults()
	return uint64(c.LinkRate * c.RTT.Seconds())
}

// Windows returns the flow-control windows: the maximum stream window is at
// least 2×BDP (one file can fill the link), the connection window at least
// 4×BDP (several files at once), both never below 512 KiB / 2 MiB.
// Windows start at 2×BDP (bounded by the maximum) and quic-go auto-tunes them
// up to the maximum.
func (c Config) Windows() (initStream, maxStream, initConn, maxConn uint64) {
	bdp := c.BDP()
	clamp := func(v, lo, hi uint64) uint64 { return min(max(v, lo), hi) }
	maxStream = clamp(2*bdp, minStreamWindow, maxWindow)
	maxConn = clamp(4*bdp, minConnWindow, maxWindow)
	initStream = clamp(2*bdp, 512<<10, maxStream)
	initConn = clamp(4*bdp, 512<<10, maxConn)
	return
}

// QUIC returns the quic-go configuration for c.
func (c Config) QUIC() *quic.Config {
	c = c.WithDefaults()
	is, ms, ic, mc := c.Windows()
	return &quic.Config{
		HandshakeIdleTimeout:           c.HandshakeTimeout,
		MaxIdleTimeout:                 c.IdleTimeout,
		KeepAlivePeriod:                c.KeepAlive,
		InitialStreamReceiveWindow:     is,
		MaxStreamReceiveWindow:         ms,
		InitialConnectionReceiveWindow: ic,
		MaxConnectionReceiveWindow:     mc,
		MaxIncomingStreams:             c.MaxStreams + laneStreams,
		MaxIncomingUniStreams:          -1,
	}
}

// Listener accepts authenticated QUIC connections from pinned peers.
type Listener struct {
	ep  *Endpoint
	ln  *quic.Listener
	log *slog.Logger
}

// Listen opens a UDP socket on addr and accepts QUIC connections whose client
// certificate is pinned and whose ALPN matches (see ListenPacket).
func Listen(addr string, id *Identity, pins Pins, cfg Config, log *slog.Logger) (*Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (udp): %w", addr, err)
	}
	ln, err := ListenPacket(udp, id, pins, cfg, log)
	if err != nil {
		udp.Close()
		return nil, err
	}
	return ln, nil
}

// ListenPacket accepts QUIC connections on pc, which the listener then
// owns (Close closes it). pc may be any net.PacketConn: a UDP socket, or a
// simulated network in tests. Its stateless-reset key is derived from the
// identity, so after a crash and restart the node resets the connections
// peers still hold at their next data packet, instead of letting them wait
// for the idle timeout. (Keep-alives are too small to draw a reset.)
func ListenPacket(pc net.PacketConn, id *Identity, pins Pins, cfg Config, log *slog.Logger) (*Listener, error) {
	ep, err := NewEndpoint(pc, id, log)
	if err != nil {
		return nil, err
	}
	ln, err := ep.listen(pins, cfg)
	if err != nil {
		ep.tr.Close()
		return nil, err
	}
	return ln, nil
}

// Accept waits for the next connection that completed its handshake.
func (l *Listener) Accept(ctx context.Context) (*quic.Conn, error) {
	c, err := l.ln.Accept(ctx)
	if err != nil {
		return nil, fmt.Errorf("accept WAN connection: %w", err)
	}
	return c, nil
}

// Addr is the local UDP address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close stops accepting and closes the socket; connections still open end
// abruptly (close them first for a clean shutdown).
func (l *Listener) Close() error {
	err := l.ln.Close()
	if cerr := l.ep.Close(); err == nil {
		err = cerr
	}
	return err
}

// Dial opens one QUIC connection to addr on a new UDP socket of its own,
// presenting id and accepting only a pinned server.
func Dial(ctx context.Context, addr string, id *Identity, pins Pins, cfg Config, log *slog.Logger) (*quic.Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := quic.DialAddr(ctx, addr, ClientTLS(id, pins, addr, log), cfg.QUIC())
	if err != nil {
		return nil, fmt.Errorf("dial WAN peer %s: %w", addr, err)
	}
	return c, nil
}

// Endpoint is one packet socket carrying QUIC connections: a listener's,
// or a client's shared by many connections. It is the seam where tests
// put a simulated network (quic-go's testutils/simnet) in place of UDP.
type Endpoint struct {
	pc  net.PacketConn
	tr  *quic.Transport
	id  *Identity
	log *slog.Logger
}

// NewEndpoint makes an endpoint on pc for identity id; the endpoint owns
// pc (Close closes it).
func NewEndpoint(pc net.PacketConn, id *Identity, log *slog.Logger) (*Endpoint, error) {
	if id == nil {
		return nil, errors.New("transport endpoint: no identity")
	}
	key, err := statelessResetKey(id)
	if err != nil {
		return nil, err
	}
	return &Endpoint{pc: pc, tr: &quic.Transport{Conn: pc, StatelessResetKey: &key}, id: id, log: orDefault(log)}, nil
}

func (e *Endpoint) listen(pins Pins, cfg Config) (*Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := e.tr.Listen(ServerTLS(e.id, pins, e.log), cfg.QUIC())
	if err != nil {
		return nil, fmt.Errorf("listen on %s (quic): %w", e.pc.LocalAddr(), err)
	}
	return &Listener{ep: e, ln: ln, log: e.log}, nil
}

// Dial opens a QUIC connection to addr over the endpoint's socket,
// presenting the endpoint's identity and accepting only a pinned server.
func (e *Endpoint) Dial(ctx context.Context, addr net.Addr, pins Pins, cfg Config) (*quic.Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := e.tr.Dial(ctx, addr, ClientTLS(e.id, pins, addr.String(), e.log), cfg.QUIC())
	if err != nil {
		return nil, fmt.Errorf("dial WAN peer %s: %w", addr, err)
	}
	return c, nil
}

// Addr is the local address of the endpoint's socket.
func (e *Endpoint) Addr() net.Addr { return e.pc.LocalAddr() }

// Close closes the endpoint's connections and its socket.
func (e *Endpoint) Close() error {
	err := e.tr.Close()
	if perr := e.pc.Close(); err == nil && !errors.Is(perr, net.ErrClosed) {
		err = perr
	}
	return err
}

// QUIC application error codes a proxy closes a WAN connection with (named
// Close* so they are not taken for the push protocol's wire codes,
// push.Code*).
const (
	CloseOK       quic.ApplicationErrorCode = 0
	CloseRefused  quic.ApplicationErrorCode = 1 // handshake refused (mismatched protocol settings)
	CloseShutdown quic.ApplicationErrorCode = 2 // the node is stopping
	CloseProtocol quic.ApplicationErrorCode = 3 // malformed frames
)

// IsClosed reports whether err means the connection or context ended (as
// opposed to a protocol fault).
func IsClosed(err error) bool {
	var app *quic.ApplicationError
	var idle *quic.IdleTimeoutError
	return errors.Is(err, context.Canceled) || errors.Is(err, net.ErrClosed) ||
		errors.As(err, &app) || errors.As(err, &idle) || errors.Is(err, quic.ErrServerClosed)
}
