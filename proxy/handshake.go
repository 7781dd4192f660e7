package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aimwan/aimwan/dedupe"
	"github.com/aimwan/aimwan/internal/units"
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
	hello := WANHello{Version: Version, Mode: s.cfg.Mode, Node: s.cfg.Node, Params: s.paramsID, Epoch: s.peer.Epoch(),
		Mark: s.peer.Mark()}
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

// learnPeer updates the peer index from the hello reply: sized to the
// peer's store, emptied when the peer's store is another generation, then
// fed the held list piece by piece as it arrives (memory: one piece).
func (s *Source) learnPeer(st *quic.Stream, buf *[]byte, ok WANHello) error {
	idx := s.peer
	if ok.Capacity > 0 && int64(ok.Capacity) != idx.PeerCapacity() {
		if err := idx.SetPeerCapacity(int64(ok.Capacity)); err != nil {
			return fmt.Errorf("peer store capacity: %w", err)
		}
		s.log.Info("sized the index of the WAN peer's cache to its capacity", "capacity", units.FormatSize(int64(ok.Capacity)),
			"believes_at_most", units.FormatSize(int64(idx.Stats().Capacity)))
	}
	if ok.Held == 0 {
		if idx.SetEpoch(ok.Epoch) {
			s.log.Info("WAN peer's cache is new (restarted cold or wiped): forgetting what it held", "epoch", ok.Epoch)
		}
		idx.EndHeld(ok.Epoch, ok.Mark)
		return nil
	}
	if idx.BeginHeld(ok.Epoch) {
		s.log.Info("WAN peer's cache is another generation: forgetting what it held, learning it again", "epoch", ok.Epoch)
	}
	// Each piece may take its time at the configured link rate on a slow
	// line: the deadline moves with the pieces.
	rate := s.cfg.Transport.WithDefaults().LinkRate
	pieceTime := time.Duration(2 * float64(MaxPiece) / rate * float64(time.Second))
	var got uint64
	for {
		_ = st.SetDeadline(time.Now().Add(handshakeTimeout + pieceTime))
		typ, body, err := readFrame(st, buf)
		if err != nil {
			return fmt.Errorf("read held list: %w", err)
		}
		if typ != TypeHeld || len(body) < 1 || body[0] > 1 {
			return frameErr("held list: frame type %d, flag %v", typ, body[:min(len(body), 1)])
		}
		entries := body[1:]
		if got += uint64(len(entries) / dedupe.HeldEntryLen); got > ok.Held {
			return frameErr("held list: more than the %d entries announced", ok.Held)
		}
		if err := idx.AddHeld(entries); err != nil {
			return fmt.Errorf("held list: %w", err)
		}
		if body[0] == 1 {
			break
		}
	}
	idx.EndHeld(ok.Epoch, ok.Mark)
	s.log.Info("learned WAN peer's cache", "epoch", ok.Epoch, "mark", ok.Mark, "entries", got, "chunks", idx.Len())
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
	stats := d.store.Stats()
	mine := WANHello{Version: Version, Mode: hello.Mode, Node: d.cfg.Node, Params: d.paramsID, Epoch: stats.Epoch,
		Capacity: stats.Capacity}
	if reason := mismatch(hello, mine); reason != "" {
		_, _ = writeFrame(st, TypeRefuse, encodeRefuse(reason))
		return fmt.Errorf("peer %s (%s): %s: %w", c.RemoteAddr(), hello.Node, reason, ErrIncompatible)
	}
	var held *dedupe.HeldCursor
	if hello.Mode == ModeOptimize {
		held = d.store.HeldFor(hello.Epoch, hello.Mark)
		mine.Epoch, mine.Mark, mine.Held = held.Epoch, held.Mark, uint64(held.Count)
	}
	if _, err := writeFrame(st, TypeHelloOK, mine.encode(true)); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	sent := 0
	if mine.Held > 0 {
		if sent, err = d.sendHeld(st, held); err != nil {
			return fmt.Errorf("send held list: %w", err)
		}
	}
	d.log.Info("WAN peer connected", "remote", c.RemoteAddr().String(), "node", hello.Node, "mode", hello.Mode.String(),
		"index_current", hello.Epoch == mine.Epoch && mine.Held == 0, "held_sent", sent)
	return nil
}

// sendHeld streams the held list, a piece (up to 1 MiB of entries) at a
// time as the cursor reads the store's container tables, then an empty
// last piece: the memory is one piece whatever the store's size. The
// source edge bounds how long it waits for each piece (it knows the link
// rate); here only a generous limit (≥ 16 KB/s).
func (d *Dest) sendHeld(st *quic.Stream, held *dedupe.HeldCursor) (int, error) {
	const per = MaxPiece / dedupe.HeldEntryLen
	piece := make([]byte, 1, 1+MaxPiece)
	entries := 0
	for {
		piece = held.Next(piece[:1], per)
		last := len(piece) == 1
		if last {
			piece[0] = 1
		}
		_ = st.SetDeadline(time.Now().Add(handshakeTimeout + MaxPiece/(16<<10)*time.Second))
		n, err := writeFrame(st, TypeHeld, piece)
		d.m.wire.Add(float64(n))
		if err != nil || last {
			return entries, err
		}
		entries += (len(piece) - 1) / dedupe.HeldEntryLen
	}
}
