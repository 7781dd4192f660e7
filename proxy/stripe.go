package proxy

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/aimwan/aimwan/transport"
)

// TypeStriped follows FILE on a file stream instead of DATA when the data
// travels as a striped transfer (transport.Pool.NewTransfer): its parts
// come on part streams over any of the connections, and the destination
// edge puts them together (transport.Assembler) by the transfer's ID.
const TypeStriped byte = 15

// stripeMin is the smallest data sent striped; smaller data goes as DATA
// on the file stream.
const stripeMin = 64 << 10

// Striped is the body of STRIPED.
type Striped struct {
	ID       transport.TransferID
	Size     int64 // bytes of the transfer: metadata + stream, as DATA would carry
	PartSize int   // every part but the last
}

func (s Striped) encode() []byte {
	b := make([]byte, 0, 16+8+4)
	b = append(b, s.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(s.Size))
	return binary.BigEndian.AppendUint32(b, uint32(s.PartSize))
}

// DecodeStriped parses a STRIPED body.
func DecodeStriped(body []byte) (Striped, error) {
	var s Striped
	if len(body) != 16+8+4 {
		return s, frameErr("STRIPED body of %d bytes, want 28", len(body))
	}
	copy(s.ID[:], body[:16])
	size := binary.BigEndian.Uint64(body[16:])
	if size > maxSize {
		return s, frameErr("STRIPED size %d out of range", size)
	}
	s.Size = int64(size)
	s.PartSize = int(binary.BigEndian.Uint32(body[24:]))
	if s.PartSize < transport.MinPartSize || s.PartSize > transport.MaxPartSize {
		return s, frameErr("STRIPED part size %d outside [%d, %d]", s.PartSize, transport.MinPartSize, transport.MaxPartSize)
	}
	return s, nil
}

// sendData sends the file's data after its FILE frame: striped over the
// pool's connections when it is large enough, else as DATA on the file
// stream w.
//
// The destination edge answers nothing before it has all the data, unless
// it refuses the file: a response arriving on resp while the transfer runs
// ends the transfer (the response is put back for the caller, who reads
// the verdict or the miss list from it).
func (s *Source) sendData(ctx context.Context, w io.Writer, data []byte, resp chan response) error {
	if len(data) < stripeMin {
		_, err := writeBlob(w, TypeData, data)
		return err
	}
	t := s.pool.NewTransfer(data)
	t.OnSent = func(n int) { s.m.wire.Add(float64(n)) }
	if _, err := writeFrame(w, TypeStriped, Striped{ID: t.ID, Size: int64(len(data)), PartSize: t.PartSize}.encode()); err != nil {
		return err
	}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- t.Send(tctx) }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("striped transfer: %w", err)
		}
		return nil
	case r := <-resp:
		// The destination answers only once it holds all the data (RESULT,
		// or MISS in optimize mode; the acknowledgements of the last parts
		// may still be on their way) or when it refused the file: either
		// way the transfer is over, and the answer is the caller's.
		cancel()
		<-done
		resp <- r
		if r.err != nil {
			return fmt.Errorf("striped transfer: file stream: %w", r.err)
		}
		return nil
	}
}

// receiveData reads the file's data after its FILE frame: DATA pieces on
// the stream, or a STRIPED transfer assembled from part streams.
func (d *Dest) receiveData(ctx context.Context, st io.Reader, buf *[]byte, hdr FileHeader) ([]byte, error) {
	want := hdr.MetaLen + hdr.StreamLen
	typ, body, err := readFrame(st, buf)
	if err != nil {
		return nil, noEOF(err)
	}
	switch typ {
	case TypeData:
		return readBlobRest(st, buf, body, TypeData, want)
	case TypeStriped:
		sp, err := DecodeStriped(body)
		if err != nil {
			return nil, err
		}
		if sp.Size != want {
			return nil, frameErr("STRIPED transfer of %d bytes, the file announced %d", sp.Size, want)
		}
		return d.parts.Receive(ctx, sp.ID, sp.Size, sp.PartSize)
	default:
		return nil, frameErr("got frame type %d where DATA or STRIPED was due", typ)
	}
}

// handshakeTurn waits for the source edge's turn to handshake on a new
// connection and returns the function to call when it is over (with
// whether it succeeded). The first handshakes run one at a time, so that
// only one fetches the peer's held list; once one succeeded and a
// connection is up, the others run at once — a striped pool opens a
// dozen connections, and one at a time they would take a dozen round
// trips. When every connection is gone (the peer may have restarted with
// a new store), handshakes take turns again.
func (s *Source) handshakeTurn() func(ok bool) {
	if s.helloDone.Load() && len(s.pool.Conns()) > 0 {
		return func(bool) {}
	}
	s.handshakeMu.Lock()
	if s.helloDone.Load() && len(s.pool.Conns()) > 0 {
		s.handshakeMu.Unlock()
		return func(bool) {}
	}
	s.helloDone.Store(false)
	return func(ok bool) {
		if ok {
			s.helloDone.Store(true)
		}
		s.handshakeMu.Unlock()
	}
}
