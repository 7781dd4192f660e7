package push

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/aimwan/aimwan/internal/accept"
)

// Handler decides what happens to offered files. It is implemented by the
// destination node and by the source-edge proxy.
type Handler interface {
	// Accept is called per offered file. Return a Sink positioned at the
	// resume offset, or ErrDuplicate (already stored durably: acked at once),
	// or an error that is sent back as a wire code (ErrBufferFull,
	// ErrUnknownVolume, ErrBadOffer, ErrUnavailable...; any other error ->
	// internal). It may block (it runs off the reader loop) and should honour
	// ctx, which ends with the connection. It is called concurrently for
	// files in flight and for several connections.
	Accept(ctx context.Context, peer Hello, o Offer) (Sink, error)
}

// Sink receives one accepted file. Exactly one of Commit and Abort is called
// on every Sink that Accept returned. Its methods are called one after the
// other, never concurrently (though not always from the same goroutine).
// Write must not block indefinitely: it runs in the connection's reader loop.
type Sink interface {
	// Offset returns how many bytes of this file are already held from an
	// earlier attempt; sending starts there. Called once, after Accept.
	Offset() int64
	// Write takes the next bytes of the file, in order. p is only valid
	// during the call. An error ends the file with a NACK of its code.
	Write(p []byte) (int, error)
	// Commit is called when all bytes are written: verify the SHA-256 and
	// store durably (or forward and await the far end's ack). nil (or
	// ErrDuplicate) is acked; any other error is sent as a NACK. It runs off
	// the reader loop and must honour ctx, which ends with the connection.
	Commit(ctx context.Context) error
	// Abort is called instead of Commit when the connection is lost, the
	// sender gave up, or the file broke the protocol.
	Abort()
}

// Server accepts push connections and hands offered files to Handler. Zero
// values of the limit fields mean the defaults.
type Server struct {
	Node             string        // this node's name, sent in HELLO_OK (required, name rules)
	Volumes          []string      // volumes this node accepts, sent in HELLO_OK (informative, optional)
	Handler          Handler       // required
	Auth             Auth          // mutual TLS: identity and the pinned clients (required)
	Logger           *slog.Logger  // nil: slog.Default()
	MaxFileSize      int64         // largest offered file accepted; default 256 MiB
	MaxFiles         int           // files in flight per connection; default 64 (more: NACK buffer-full)
	HandshakeTimeout time.Duration // TLS handshake and HELLO must finish within this; default 10s
	KeepAlive        time.Duration // PING after this long without writing; default 15s
	IdleTimeout      time.Duration // close after this long without reading; default 60s
	// ProgressTimeout aborts a file (NACK ErrStalled) when no DATA for it
	// arrived for this long while it was receiving; PINGs and other files'
	// DATA do not count. Default DefaultProgressTimeout.
	ProgressTimeout time.Duration
	// MaxConns caps the connections open at once, MaxConnsPerHost those from
	// one remote IP; more are closed at once. Defaults DefaultMaxConns and
	// DefaultMaxConnsPerHost.
	MaxConns        int
	MaxConnsPerHost int
}

// Connection caps of a push server.
const (
	DefaultMaxConns        = 256
	DefaultMaxConnsPerHost = 64
)

// withDefaults returns a copy of s with zero fields set to their defaults.
func (s *Server) withDefaults() Server {
	c := *s
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxFileSize == 0 {
		c.MaxFileSize = DefaultMaxFileSize
	}
	if c.MaxFiles == 0 {
		c.MaxFiles = 64
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshake
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ProgressTimeout == 0 {
		c.ProgressTimeout = DefaultProgressTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxConnsPerHost == 0 {
		c.MaxConnsPerHost = min(DefaultMaxConnsPerHost, c.MaxConns)
	}
	return c
}

// validate checks a populated configuration.
func (s *Server) validate() error {
	if s.Handler == nil {
		return errors.New("push server: Handler is nil")
	}
	if err := validateHello(Hello{Node: s.Node, Volumes: s.Volumes}); err != nil {
		return fmt.Errorf("push server: %w", err)
	}
	if err := s.Auth.validate(); err != nil {
		return fmt.Errorf("push server: %w", err)
	}
	if s.MaxFileSize < 0 || s.MaxFiles < 0 || s.HandshakeTimeout < 0 || s.KeepAlive < 0 || s.IdleTimeout < 0 ||
		s.ProgressTimeout < 0 || s.MaxConns < 0 || s.MaxConnsPerHost < 0 {
		return errors.New("push server: negative limit")
	}
	if s.KeepAlive >= s.IdleTimeout {
		return fmt.Errorf("push server: KeepAlive %v must be shorter than IdleTimeout %v", s.KeepAlive, s.IdleTimeout)
	}
	return nil
}

// Serve accepts connections on ln until ctx ends, then closes the listener
// and every connection (aborting files in flight) and returns nil once all
// goroutines are done. Errors of single connections are logged, not
// returned; temporary accept errors are retried after a backoff and
// connections over the caps are closed at once (internal/accept); a failing
// listener is returned.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	cfg := s.withDefaults()
	if err := cfg.validate(); err != nil {
		ln.Close()
		return err
	}
	tlsCfg := cfg.Auth.pinned(cfg.Logger).ServerConfig()
	acfg := accept.Config{Name: "push " + cfg.Node, MaxConns: cfg.MaxConns, MaxPerHost: cfg.MaxConnsPerHost, Logger: cfg.Logger}
	return accept.Serve(ctx, ln, acfg, func(ctx context.Context, nc net.Conn) { cfg.serveConn(ctx, nc, tlsCfg) })
}

// serveConn runs one connection to its end and logs why it ended.
func (s *Server) serveConn(ctx context.Context, nc net.Conn, tlsCfg *tls.Config) {
	log := s.Logger.With("peer_addr", nc.RemoteAddr().String())
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	// The TLS handshake and HELLO share one deadline: a peer that connects
	// and says nothing holds a slot for HandshakeTimeout at most.
	hctx, cancel := context.WithTimeout(ctx, s.HandshakeTimeout)
	defer cancel()
	nc.SetDeadline(time.Now().Add(s.HandshakeTimeout))
	tc, fp, err := serverTLS(hctx, nc, tlsCfg, s.Auth, log)
	if err != nil {
		log.Debug("push: TLS handshake failed", "err", err) // the refusal was logged, paced
		return
	}
	log = log.With("peer_fp", fp.String())
	w := newWire(tc, s.KeepAlive, s.IdleTimeout)
	w.raw = nc
	peer, err := s.handshake(w)
	if err != nil {
		log.Warn("push: handshake refused", "err", err)
		return
	}
	log = log.With("peer", peer.Node)
	log.Debug("push: peer connected", "volumes", len(peer.Volumes))
	sc := &serverConn{s: s, w: w, peer: peer, log: log, files: map[uint64]*inFile{}}
	err = sc.run(ctx)
	switch {
	case ctx.Err() != nil, errors.Is(err, errPeerClosed):
		log.Debug("push: connection closed", "err", err)
	default:
		log.Warn("push: connection ended", "err", err)
	}
}

// handshake reads HELLO and answers HELLO_OK, or a NACK (id 0) naming why
// the peer is refused.
func (s *Server) handshake(w *wire) (Hello, error) {
	nc := w.nc // the handshake deadline set by serveConn holds
	defer nc.SetDeadline(time.Time{})
	var buf []byte
	m, err := ReadMsg(nc, &buf)
	if err == nil && m.Type != TypeHello {
		err = fmt.Errorf("%w: first frame is %s, want HELLO", ErrProtocol, m.Type)
	}
	if err == nil && m.Version != Version {
		err = fmt.Errorf("%w: peer speaks version %d, this node speaks %d", ErrVersion, m.Version, Version)
	}
	if err == nil {
		if verr := validateHello(m.Hello); verr != nil {
			err = fmt.Errorf("%w: hello: %w", ErrProtocol, verr)
		}
	}
	if err != nil {
		if errors.Is(err, ErrProtocol) || errors.Is(err, ErrVersion) {
			nc.Write(AppendMsg(nil, Msg{Type: TypeNack, Code: CodeOf(err), Text: err.Error()}))
		}
		return Hello{}, err
	}
	ok := Msg{Type: TypeHelloOK, Version: Version, Hello: Hello{Node: s.Node, Volumes: s.Volumes}}
	if _, err := nc.Write(AppendMsg(nil, ok)); err != nil {
		return Hello{}, fmt.Errorf("send HELLO_OK: %w", err)
	}
	return m.Hello, nil
}
