package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/aimwan/aimwan/transport/push"
)

// Checksum exchange of a delta initialize (docs/wire-protocol.md): the
// source edge forwards a push SUM on its own WAN stream, the destination
// edge asks dst and sends the answer back. The bodies are the push
// protocol's SUM and SUMS bodies (push.Decode bounds and checks them).
const (
	TypeSum  byte = 40 // client → server, sum stream: a push SUM body (id 0)
	TypeSums byte = 41 // server → client, sum stream: a push SUMS body (id 0); or RESULT with the refusal
)

// sumWait bounds how long the source edge waits for a WAN connection before
// answering a checksum request "unavailable" (src retries).
const sumWait = 10 * time.Second

var _ push.Summer = (*Source)(nil)

// Sums implements push.Summer: it forwards the request over the WAN and
// returns dst's answer. Checksums are not deduplicated or compressed (they
// do not repeat); they are counted on the wire like everything else.
func (s *Source) Sums(ctx context.Context, peer push.Hello, q push.SumRequest) ([][push.SumSize]byte, error) {
	getCtx, cancel := context.WithTimeout(ctx, sumWait)
	conn, err := s.pool.Get(getCtx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%w: checksums of %s: no WAN connection: %w", push.ErrUnavailable, q.Volume, err)
	}
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: checksums of %s: open WAN stream: %w", push.ErrUnavailable, q.Volume, err)
	}
	stop := context.AfterFunc(ctx, func() { st.CancelRead(streamCanceled); st.CancelWrite(streamCanceled) })
	defer stop()
	w := countingWriter{w: st, c: s.m.wire}
	body := push.AppendMsg(nil, push.Msg{Type: push.TypeSum, Sum: q})[5:]
	if _, err := writeFrame(w, TypeSum, body); err != nil {
		return nil, fmt.Errorf("%w: checksums of %s: %w", push.ErrUnavailable, q.Volume, err)
	}
	_ = st.Close()
	var buf []byte
	typ, body, err := readFrame(st, &buf)
	if err != nil {
		return nil, fmt.Errorf("%w: checksums of %s: %w", push.ErrUnavailable, q.Volume, noEOF(err))
	}
	switch typ {
	case TypeResult:
		r, err := DecodeResult(body)
		if err != nil {
			return nil, err
		}
		return nil, push.ErrorOf(push.Code(r.Code), r.Msg)
	case TypeSums:
		m, err := push.Decode(push.TypeSums, body)
		if err != nil {
			return nil, fmt.Errorf("%w: checksums of %s from the WAN peer: %w", ErrFrame, q.Volume, err)
		}
		if len(m.Sums) != q.Count {
			return nil, fmt.Errorf("%w: %d checksums answer a request of %d", ErrFrame, len(m.Sums), q.Count)
		}
		return m.Sums, nil
	}
	return nil, fmt.Errorf("%w: frame type %d answers a checksum request", ErrFrame, typ)
}

// serveSums answers one sum stream whose first frame (body) was read: it
// asks dst and writes the checksums, or a RESULT with the refusal.
func (d *Dest) serveSums(ctx context.Context, st *quic.Stream, body []byte) {
	w := countingWriter{w: st, c: d.m.wire}
	m, err := push.Decode(push.TypeSum, body)
	if err == nil {
		err = m.Sum.Validate()
		if err != nil {
			err = fmt.Errorf("%w: %w", push.ErrBadOffer, err)
		}
	}
	var sums [][push.SumSize]byte
	if err == nil {
		sums, err = d.dst.Sums(ctx, m.Sum)
	}
	if err != nil {
		r := Result{Code: uint16(push.CodeOf(err)), Msg: err.Error()}
		if errors.Is(err, push.ErrProtocol) {
			r.Code = uint16(push.CodeBadOffer)
		}
		_, _ = writeFrame(w, TypeResult, r.encode())
		_ = st.Close()
		return
	}
	out := push.AppendMsg(nil, push.Msg{Type: push.TypeSums, Sums: sums})[5:]
	if _, err := writeFrame(w, TypeSums, out); err != nil {
		d.log.Warn("checksums not delivered", "volume", m.Sum.Volume, "err", err)
	}
	_ = st.Close()
}

// firstFrame reads a stream's first frame and returns its type and body,
// and a reader that yields the frame again followed by the rest of the
// stream (for a file stream, which receive reads from its start).
func firstFrame(st io.Reader) (byte, []byte, io.Reader, error) {
	var buf []byte
	typ, body, err := readFrame(st, &buf)
	if err != nil {
		return 0, nil, nil, err
	}
	var hdr bytes.Buffer
	if _, err := writeFrame(&hdr, typ, body); err != nil {
		return 0, nil, nil, err
	}
	return typ, body, io.MultiReader(&hdr, st), nil
}
