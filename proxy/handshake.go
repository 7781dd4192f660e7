package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aimwan/aimwan/transport"
	"github.com/quic-go/quic-go"
)

// ErrIncompatible is the reason the destination edge refuses a handshake:
// the two proxies disagree on the WAN protocol version or the chunking
// parameters. (dedupe.ErrMismatch is a stream that does not belong to a
// store; the source edge sees a refusal as transport.ErrRefused.)
var ErrIncompatible = errors.New("proxy settings differ")

// handshakeTimeout bounds the control-stream exchange.
const handshakeTimeout = 30 * time.Second

// handshake is the source edge's side of the control stream, run on every
// new connection: it sends its settings and the store epoch its peer index
// describes; the destination edge answers with its store epoch and, when the
// index is stale, the list of chunks its store holds.
//
// Until one succeeded, handshakes run one at a time, so that when several
// connections open at once only the first one fetches the held list
// (handshakeTurn).
func (s *Source) handshake(ctx context.Context, c *quic.Conn) error {
	done := s.handshakeTurn()
	err := s.exchangeHello(ctx, c)
	done(err == nil)
	return err
}

// exchangeHello is the control-stream exchange of handshake.
func (s *Source) exchangeHello(ctx context.Context, c *quic.Conn) error {
	st, err := c.OpenStreamSync(ctx)
	if err != nil {
		return fmt.Errorf("open control stream: %w", err)
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(handshakeTimeout))
	hello := WANHello{Version: Version, Mode: s.cfg.Mode, Node: s.cfg.Node, Params: s.paramsID, Epoch: s.peer.Epoch()}
	if _, err := writeFrame(st, TypeHello, hello.encode(true)); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	var buf []byte
	typ, body, err := readFrame(st, &buf)
	if err != nil {
		return fmt.Errorf("read hello reply: %w", err)
	}
	switch typ {
	case TypeRefuse:
		reason, _ := DecodeRefuse(body)
		s.log.Error("WAN peer refused this proxy", "peer", s.cfg.Peer, "reason", reason)
		return fmt.Errorf("peer %s: %s: %w", s.cfg.Peer, reason, transport.ErrRefused)
	case TypeHelloOK:
	default:
		return fmt.Errorf("%w: hello answered with frame type %d", ErrFrame, typ)
	}
	ok, err := DecodeWANHello(body)
	if err != nil {
		return err
	}
	if reason := mismatch(hello, ok); reason != "" {
		s.log.Error("refusing WAN peer", "peer", s.cfg.Peer, "reason", reason)
		return fmt.Errorf("peer %s: %s: %w", s.cfg.Peer, reason, transport.ErrRefused)
	}
	return s.learnPeer(st, &buf, ok)
}

// learnPeer updates the peer index from the hello reply.
func (s *Source) learnPeer(st *quic.Stream, buf *[]byte, ok WANHello) error {
	idx := s.peer
	if ok.Held == 0 {
		if idx.SetEpoch(ok.Epoch) {
			s.log.Info("WAN peer's cache is new (restarted cold or wiped): forgetting what it held", "epoch", ok.Epoch)
		}
		return nil
	}
	// The held list may be megabytes on a slow line: allow twice its time at
	// the configured link rate on top of the usual timeout.
	rate := s.cfg.Transport.WithDefaults().LinkRate
	_ = st.SetDeadline(time.Now().Add(handshakeTimeout + time.Duration(2*float64(ok.Held)/rate*float64(time.Second))))
	held, err := readBlob(st, buf, TypeHeld, int64(ok.Held), nil)
	if err != nil {
		return fmt.Errorf("read held list: %w", err)
	}
	if err := idx.LoadHeld(held); err != nil {
		return fmt.Errorf("held list: %w", err)
	}
	s.log.Info("learned WAN peer's cache", "epoch", ok.Epoch, "chunks", idx.Len())
	return nil
}

// mismatch explains why two hellos cannot work together ("" = they can).
// Chunking parameters matter only when files are deduplicated.
func mismatch(client, server WANHello) string {
	switch {
	case client.Version != server.Version:
		return fmt.Sprintf("WAN protocol version %d here, %d at the peer", client.Version, server.Version)
	case client.Mode == ModeOptimize && client.Params != server.Params:
		return fmt.Sprintf("chunking parameters differ: source edge %q, destination edge %q", client.Params, server.Params)
	}
	return ""
}

// acceptHandshake is the destination edge's side of the control stream.
func (d *Dest) acceptHandshake(ctx context.Context, c *quic.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	st, err := c.AcceptStream(ctx)
	if err != nil {
		return fmt.Errorf("accept control stream: %w", err)
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(handshakeTimeout))
	var buf []byte
	typ, body, err := readFrame(st, &buf)
	if err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	if typ != TypeHello {
		return fmt.Errorf("%w: control stream opened with frame type %d", ErrFrame, typ)
	}
	hello, err := DecodeWANHello(body)
	if err != nil {
		return err
	}
	mine := WANHello{Version: Version, Mode: hello.Mode, Node: d.cfg.Node, Params: d.paramsID, Epoch: d.store.Epoch()}
	if reason := mismatch(hello, mine); reason != "" {
		_, _ = writeFrame(st, TypeRefuse, encodeRefuse(reason))
		return fmt.Errorf("peer %s (%s): %s: %w", c.RemoteAddr(), hello.Node, reason, ErrIncompatible)
	}
	var held []byte
	if hello.Mode == ModeOptimize && hello.Epoch != mine.Epoch {
		held = d.store.AppendHeld(nil)
		mine.Held = uint64(len(held))
	}
	if _, err := writeFrame(st, TypeHelloOK, mine.encode(true)); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	if len(held) > 0 {
		// The source edge bounds how long it waits for the list (it knows
		// the link rate); here only a generous limit (≥ 16 KB/s).
		_ = st.SetDeadline(time.Now().Add(handshakeTimeout + time.Duration(len(held)/(16<<10))*time.Second))
		n, err := writeBlob(st, TypeHeld, held)
		d.m.wire.Add(float64(n))
		if err != nil {
			return fmt.Errorf("send held list: %w", err)
		}
	}
	d.log.Info("WAN peer connected", "remote", c.RemoteAddr().String(), "node", hello.Node, "mode", hello.Mode.String(),
		"held_sent", len(held))
	return nil
}
