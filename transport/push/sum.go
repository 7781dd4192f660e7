package push

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// Limits of a checksum request (SUM). Every field of a SUM frame is bounded
// by them; a request outside them is refused with ErrBadOffer.
const (
	// MinSumRange and MaxSumRange bound the bytes one checksum covers (a
	// power of two).
	MinSumRange = 4 << 10
	MaxSumRange = 1 << 30
	// MaxSums is the most checksums one SUM asks for (its answer is at most
	// MaxSums*32 = 128 KiB, one frame).
	MaxSums = 4096
	// MaxSumSpan bounds the volume bytes one SUM makes the receiver read
	// (Count*Range): the work one request may cause.
	MaxSumSpan = 64 << 30
	// MaxSumEnd bounds the volume size a SUM names (64 PiB).
	MaxSumEnd = 1 << 56
	// SumSize is the size of one checksum (SHA-256).
	SumSize = 32
)

// SumRequest asks the receiver for the SHA-256 of consecutive ranges of a
// volume as it has destaged it: Count ranges of Range bytes from Offset,
// each cut at End (the volume size the sender hashes to; bytes past the
// receiver's own volume read as zeros). Stream names the journal stream the
// sender's initialize started: the receiver answers only once its volume is
// bound to that stream, so no file of an older stream can still change the
// ranges after the answer.
type SumRequest struct {
	Volume string
	Stream [16]byte
	End    int64
	Offset int64
	Range  int64
	Count  int
}

// Span returns the bytes the request covers: [Offset, Offset+n) cut at End.
func (q SumRequest) Span() int64 {
	return min(q.End, q.Offset+int64(q.Count)*q.Range) - q.Offset
}

// Validate checks a request against the limits above.
func (q SumRequest) Validate() error {
	if err := validName(q.Volume); err != nil {
		return fmt.Errorf("volume: %w", err)
	}
	switch {
	case q.Stream == [16]byte{}:
		return errors.New("checksum request names no journal stream")
	case q.Range < MinSumRange || q.Range > MaxSumRange || bits.OnesCount64(uint64(q.Range)) != 1:
		return fmt.Errorf("checksum range %d is not a power of two in [%d, %d]", q.Range, MinSumRange, MaxSumRange)
	case q.Count < 1 || q.Count > MaxSums:
		return fmt.Errorf("checksum count %d outside [1, %d]", q.Count, MaxSums)
	case int64(q.Count)*q.Range > MaxSumSpan:
		return fmt.Errorf("checksum request spans %d bytes, limit %d", int64(q.Count)*q.Range, int64(MaxSumSpan))
	case q.End < 1 || q.End > MaxSumEnd:
		return fmt.Errorf("volume end %d outside [1, %d]", q.End, int64(MaxSumEnd))
	case q.Offset < 0 || q.Offset >= q.End || q.Offset%MinSumRange != 0:
		return fmt.Errorf("checksum offset %d is not a multiple of %d below the volume end %d", q.Offset, MinSumRange, q.End)
	}
	return nil
}

// Summer is implemented by a Handler that answers checksum requests (dst,
// and the source-edge proxy, which forwards them). A Handler without it
// answers every SUM with a NACK (ErrUnknownVolume).
type Summer interface {
	// Sums returns the q.Count checksums of q (fewer is a protocol error),
	// or an error sent back as a wire code: ErrUnavailable (not yet: the
	// volume is not bound to q.Stream, or it is busy; retry), ErrBadOffer,
	// ErrUnknownVolume... It runs off the reader loop and honours ctx.
	Sums(ctx context.Context, peer Hello, q SumRequest) ([][SumSize]byte, error)
}

// maxSumsInFlight bounds the SUM requests one connection has answered at
// once; more are refused with ErrBufferFull.
const maxSumsInFlight = 16

// Sums asks the server for the checksums of q and waits for them. Errors
// are as for Push: *RemoteError for a refusal (errors.Is ErrUnavailable:
// not yet, retry), ErrUnavailable for a lost connection.
func (c *Client) Sums(ctx context.Context, q SumRequest) ([][SumSize]byte, error) {
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOffer, err)
	}
	id, replies := c.register()
	defer c.unregister(id)
	p := &pushing{c: c, ctx: ctx, id: id, replies: replies}
	if err := p.send(Msg{Type: TypeSum, ID: id, Sum: q}, nil); err != nil {
		return nil, err
	}
	m, err := p.wait()
	switch {
	case err != nil:
		return nil, err
	case m.Type == TypeNack:
		return nil, ErrorOf(m.Code, m.Text)
	case m.Type != TypeSums:
		return nil, fmt.Errorf("%w: %s answers SUM", ErrProtocol, m.Type)
	case len(m.Sums) != q.Count:
		return nil, fmt.Errorf("%w: %d checksums answer a SUM of %d", ErrProtocol, len(m.Sums), q.Count)
	}
	return m.Sums, nil
}

// Sums asks the next hop for checksums under the liveness rule of Push.
func (r *Redialer) Sums(ctx context.Context, q SumRequest) ([][SumSize]byte, error) {
	var err error
	for range 2 {
		var c *Client
		if c, err = r.client(ctx); err != nil {
			return nil, err
		}
		var sums [][SumSize]byte
		sums, err = c.Sums(ctx, q)
		var remote *RemoteError
		switch {
		case err == nil:
			return sums, nil
		case errors.As(err, &remote) || ctx.Err() != nil || errors.Is(err, ErrBadOffer):
			return nil, err
		}
		r.drop(c, err)
	}
	return nil, err
}

// onSum answers a SUM off the reader loop.
func (c *serverConn) onSum(ctx context.Context, g interface{ Go(func() error) }, id uint64, q SumRequest) error {
	sm, ok := c.s.Handler.(Summer)
	if !ok {
		return c.nack(ctx, id, fmt.Errorf("%w: node %s does not answer checksum requests", ErrUnknownVolume, c.s.Node))
	}
	if err := q.Validate(); err != nil {
		return c.nack(ctx, id, fmt.Errorf("%w: %w", ErrBadOffer, err))
	}
	c.mu.Lock()
	if c.sums >= maxSumsInFlight {
		c.mu.Unlock()
		return c.nack(ctx, id, fmt.Errorf("%w: %d checksum requests in flight on this connection", ErrBufferFull, maxSumsInFlight))
	}
	c.sums++
	c.mu.Unlock()
	g.Go(func() error {
		sums, err := sm.Sums(ctx, c.peer, q)
		c.mu.Lock()
		c.sums--
		c.mu.Unlock()
		if err == nil && len(sums) != q.Count {
			err = fmt.Errorf("%w: handler gave %d checksums for %d", ErrInternal, len(sums), q.Count)
		}
		if err != nil {
			c.log.Info("push: checksum request refused", "volume", q.Volume, "err", err)
			c.nack(ctx, id, err)
			return nil
		}
		c.reply(ctx, Msg{Type: TypeSums, ID: id, Sums: sums})
		return nil
	})
	return nil
}

// decodeSum reads a SUM body (after the id).
func (d *decoder) sum() SumRequest {
	var q SumRequest
	q.Volume = d.str()
	copy(q.Stream[:], d.bytes(16))
	q.End = d.i64()
	q.Offset = d.i64()
	q.Range = int64(d.u32())
	q.Count = int(d.u16())
	return q
}

func appendSum(b []byte, q SumRequest) []byte {
	b = appendStr(b, q.Volume)
	b = append(b, q.Stream[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(q.End))
	b = binary.BigEndian.AppendUint64(b, uint64(q.Offset))
	b = binary.BigEndian.AppendUint32(b, uint32(q.Range))
	return binary.BigEndian.AppendUint16(b, uint16(q.Count))
}

// sums reads a SUMS body (after the id): a count and the checksums.
func (d *decoder) sums() [][SumSize]byte {
	n := int(d.u16())
	if n > MaxSums && d.err == nil {
		d.err = fmt.Errorf("%d checksums exceed %d", n, MaxSums)
		return nil
	}
	p := d.bytes(n * SumSize)
	if p == nil {
		return nil
	}
	out := make([][SumSize]byte, n)
	for i := range out {
		copy(out[i][:], p[i*SumSize:])
	}
	return out
}

func appendSums(b []byte, sums [][SumSize]byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(sums)))
	for _, s := range sums {
		b = append(b, s[:]...)
	}
	return b
}

func (d *decoder) u32() uint32 {
	if p := d.bytes(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}
