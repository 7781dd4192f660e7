package nbd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/aimwan/aimwan/internal/accept"
	"github.com/aimwan/aimwan/internal/netaddr"
)

// Server serves Exports over NBD (fixed newstyle). Zero values of the limit
// fields mean the defaults.
type Server struct {
	Exports          Exports       // required
	Logger           *slog.Logger  // nil: slog.Default()
	MaxRequest       int           // largest READ/WRITE payload; default 32 MiB (advertised as maximum block size)
	HandshakeTimeout time.Duration // the handshake must finish within this; default 30s
	MaxConns         int           // connections served at once (more are closed at once); default DefaultMaxConns
}

// DefaultMaxRequest is the default MaxRequest (32 MiB, the size clients
// assume without NBD_INFO_BLOCK_SIZE).
const DefaultMaxRequest = 32 << 20

// DefaultMaxConns is the default MaxConns: a host rarely opens more than a
// few connections per export (nbdcopy opens 4, the kernel client one per
// queue).
const DefaultMaxConns = 64

// withDefaults returns a copy of s with zero fields set to their defaults.
func (s *Server) withDefaults() Server {
	c := *s
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxRequest == 0 {
		c.MaxRequest = DefaultMaxRequest
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 30 * time.Second
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	return c
}

// validate checks a populated configuration.
func (s *Server) validate() error {
	if s.Exports == nil {
		return errors.New("nbd server: Exports is nil")
	}
	if s.MaxRequest < 4096 || s.MaxRequest > 1<<30 {
		return fmt.Errorf("nbd server: MaxRequest %d not in 4096..1GiB", s.MaxRequest)
	}
	if s.HandshakeTimeout < 0 || s.MaxConns < 0 {
		return errors.New("nbd server: negative HandshakeTimeout or MaxConns")
	}
	return nil
}

// Serve accepts NBD connections on ln until ctx ends; then it closes the
// listener and every connection, waits for their goroutines (a request being
// processed completes first) and returns nil. Errors of single connections
// are logged; temporary accept errors (out of file descriptors) are retried
// after a backoff and connections over MaxConns are closed at once
// (internal/accept); a failing listener is returned.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	cfg := s.withDefaults()
	if err := cfg.validate(); err != nil {
		ln.Close()
		return err
	}
	if addr := ln.Addr(); !netaddr.ListenerIsLoopback(addr) {
		cfg.Logger.Warn("NBD server on a non-loopback address: NBD has no authentication or encryption, "+
			"so anyone who reaches it can use its exports", "addr", addr.String())
	}
	err := accept.Serve(ctx, ln, accept.Config{Name: "nbd", MaxConns: cfg.MaxConns, Logger: cfg.Logger}, cfg.serveNetConn)
	if err != nil {
		return fmt.Errorf("nbd server: %w", err)
	}
	return nil
}

// serveNetConn runs one TCP connection and logs how it ended.
func (s *Server) serveNetConn(ctx context.Context, nc net.Conn) {
	log := s.Logger.With("peer_addr", nc.RemoteAddr().String())
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(s.HandshakeTimeout))
	err := s.serveStream(ctx, nc, log, func() { nc.SetDeadline(time.Time{}) })
	switch {
	case err == nil, ctx.Err() != nil:
		log.Debug("nbd: connection closed", "err", err)
	default:
		log.Warn("nbd: connection ended", "err", err)
	}
}

// serveStream runs the handshake and then transmission on rw. handshook is
// called between the two (to lift the handshake deadline). A nil result means
// the client ended the session properly (ABORT, DISC or EOF between requests).
func (s *Server) serveStream(ctx context.Context, rw io.ReadWriter, log *slog.Logger, handshook func()) error {
	h := &handshake{s: s, rw: rw, log: log}
	exp, name, err := h.run()
	if err != nil {
		if errors.Is(err, errAborted) {
			return nil
		}
		return fmt.Errorf("handshake: %w", err)
	}
	if handshook != nil {
		handshook()
	}
	log = log.With("export", name)
	log.Debug("nbd: transmission starts", "size", exp.Size(), "read_only", exp.ReadOnly())
	t := newTransmission(s, h.br, rw, exp, log)
	if err := t.run(ctx); err != nil {
		return fmt.Errorf("export %q: %w", name, err)
	}
	return nil
}
