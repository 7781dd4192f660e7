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
	// LinkRate is the WAN bottleneck rate in bytes per second; with RTT it
	// sizes the flow-control windows. 0 means 12.5e6 (100 Mbit/s). +Inf is
	// treated as 0.
	LinkRate float64
	// RTT is the WAN round-trip time. 0 means 50ms.
	RTT time.Duration
	// Conns is the number of QUIC connections kept to the peer (each with its
	// own congestion controller). 0 means 1.
	Conns int
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
	// MaxStreams is the number of concurrent streams a peer may open on one
	// connection (files in flight). 0 means 1000.
	MaxStreams int64
}

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
	if c.Conns <= 0 {
		c.Conns = 1
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 1000
	}
	return c
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Conns > 64:
		return fmt.Errorf("transport: %d connections per peer: at most 64", c.Conns)
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
		MaxIncomingStreams:             c.MaxStreams,
		MaxIncomingUniStreams:          -1,
	}
}

// Listener accepts authenticated QUIC connections from pinned peers.
type Listener struct {
	udp net.PacketConn
	tr  *quic.Transport
	ln  *quic.Listener
	log *slog.Logger
}

// Listen opens a UDP socket on addr and accepts QUIC connections whose client
// certificate is pinned and whose ALPN matches. Its stateless-reset key is
// derived from the identity, so after a crash and restart the node resets
// the connections peers still hold at their next data packet, instead of
// letting them wait for the idle timeout. (Keep-alives are too small to draw
// a reset.)
func Listen(addr string, id *Identity, pins Pins, cfg Config, log *slog.Logger) (*Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log = orDefault(log)
	key, err := statelessResetKey(id)
	if err != nil {
		return nil, err
	}
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (udp): %w", addr, err)
	}
	tr := &quic.Transport{Conn: udp, StatelessResetKey: &key}
	ln, err := tr.Listen(ServerTLS(id, pins, log), cfg.QUIC())
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("listen on %s (quic): %w", addr, err)
	}
	return &Listener{udp: udp, tr: tr, ln: ln, log: log}, nil
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
	if terr := l.tr.Close(); err == nil {
		err = terr
	}
	if uerr := l.udp.Close(); err == nil && !errors.Is(uerr, net.ErrClosed) {
		err = uerr
	}
	return err
}

// Dial opens one QUIC connection to addr, presenting id and accepting only a
// pinned server.
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
