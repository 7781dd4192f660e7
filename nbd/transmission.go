package nbd

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// reply is one simple reply queued for the writer.
type reply struct {
	cookie uint64
	errno  uint32
	data   []byte  // READ payload (errno 0 only)
	buf    *[]byte // pooled buffer behind data, returned after writing
}

// transmission serves requests on one connection: this goroutine reads and
// processes them in order; a writer goroutine sends the replies.
type transmission struct {
	s        *Server
	br       *bufio.Reader
	w        io.Writer
	exp      Export
	size     int64
	readOnly bool
	log      *slog.Logger
	replies  chan reply
	budget   *semaphore.Weighted // bytes of READ data queued for the writer
	wbuf     []byte              // WRITE payload buffer, reused
	refused  int                 // requests refused (logged sparingly)
}

func newTransmission(s *Server, br *bufio.Reader, w io.Writer, exp Export, log *slog.Logger) *transmission {
	return &transmission{
		s: s, br: br, w: w, exp: exp, size: exp.Size(), readOnly: exp.ReadOnly(), log: log,
		replies: make(chan reply, 64), budget: semaphore.NewWeighted(2 * int64(s.MaxRequest)),
	}
}

// errDisconnect ends transmission after NBD_CMD_DISC.
var errDisconnect = errors.New("client disconnected")

// run serves until DISC, EOF between requests, an error, or ctx ending.
func (t *transmission) run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return t.writeLoop(gctx) })
	g.Go(func() error {
		defer close(t.replies)
		for {
			if err := t.serveOne(gctx); err != nil {
				return err
			}
		}
	})
	err := g.Wait()
	if errors.Is(err, errDisconnect) {
		return nil
	}
	return err
}

// serveOne reads, checks and processes one request and queues its reply.
func (t *transmission) serveOne(ctx context.Context) error {
	var hdr [requestHdrSize]byte
	if _, err := io.ReadFull(t.br, hdr[:]); err != nil {
		if err == io.EOF {
			return errDisconnect
		}
		return fmt.Errorf("read request: %w", err)
	}
	r, err := parseRequest(hdr[:])
	if err != nil {
		return err
	}
	if r.typ == cmdDisc {
		return errDisconnect
	}
	var payload []byte
	if r.typ == cmdWrite {
		if payload, err = t.readPayload(r); err != nil {
			return err
		}
	}
	errno, reason := check(r, t.size, t.readOnly, t.s.MaxRequest)
	if errno != errnoOK {
		t.refuse(r, errno, reason)
		return t.queue(ctx, reply{cookie: r.cookie, errno: errno})
	}
	return t.process(ctx, r, payload)
}

// readPayload reads a WRITE payload; one larger than MaxRequest is read and
// discarded so the stream stays in step (the request is then refused).
func (t *transmission) readPayload(r request) ([]byte, error) {
	n := int64(r.length)
	if n > int64(t.s.MaxRequest) {
		if _, err := io.CopyN(io.Discard, t.br, n); err != nil {
			return nil, fmt.Errorf("skip oversized WRITE payload: %w", err)
		}
		return nil, nil
	}
	if int64(cap(t.wbuf)) < n {
		t.wbuf = make([]byte, n)
	}
	p := t.wbuf[:n]
	if _, err := io.ReadFull(t.br, p); err != nil {
		return nil, fmt.Errorf("read WRITE payload of %d bytes: %w", n, err)
	}
	return p, nil
}

// refuse logs a refused request (the first few per connection at Warn).
func (t *transmission) refuse(r request, errno uint32, reason string) {
	t.refused++
	lvl := slog.LevelWarn
	if t.refused > 10 {
		lvl = slog.LevelDebug
	}
	t.log.Log(context.Background(), lvl, "nbd: request refused", "cmd", cmdName(r.typ),
		"offset", r.off, "length", r.length, "errno", Errno(errno).Error(), "reason", reason)
}

// process calls the Export for a checked request.
func (t *transmission) process(ctx context.Context, r request, payload []byte) error {
	off, n := int64(r.off), int64(r.length)
	fua := r.flags&cmdFlagFUA != 0
	var err error
	switch r.typ {
	case cmdRead:
		return t.read(ctx, r)
	case cmdWrite:
		err = t.exp.WriteAt(payload, off, fua)
	case cmdFlush:
		err = t.exp.Flush()
	case cmdTrim:
		if n > 0 {
			err = t.exp.Trim(off, n)
		}
		if err == nil && fua {
			err = t.exp.Flush()
		}
	case cmdWriteZeroes:
		if n > 0 {
			err = t.exp.WriteZeroes(off, n, r.flags&cmdFlagNoHole != 0, fua)
		}
	}
	if err != nil {
		t.log.Warn("nbd: export failed", "cmd", cmdName(r.typ), "offset", off, "length", n, "err", err)
	}
	return t.queue(ctx, reply{cookie: r.cookie, errno: errnoOf(err)})
}

// read serves a READ into a pooled buffer handed to the writer.
func (t *transmission) read(ctx context.Context, r request) error {
	n := int64(r.length)
	if err := t.budget.Acquire(ctx, n); err != nil {
		return err
	}
	buf := getBuf(int(n))
	data := (*buf)[:n]
	if err := t.exp.ReadAt(data, int64(r.off)); err != nil {
		putBuf(buf)
		t.budget.Release(n)
		t.log.Warn("nbd: export failed", "cmd", "READ", "offset", r.off, "length", n, "err", err)
		return t.queue(ctx, reply{cookie: r.cookie, errno: errnoOf(err)})
	}
	return t.queue(ctx, reply{cookie: r.cookie, data: data, buf: buf})
}

// queue hands a reply to the writer.
func (t *transmission) queue(ctx context.Context, r reply) error {
	select {
	case t.replies <- r:
		return nil
	case <-ctx.Done():
		t.release(r)
		return ctx.Err()
	}
}

// release returns a reply's buffer and budget.
func (t *transmission) release(r reply) {
	if r.buf != nil {
		t.budget.Release(int64(len(r.data)))
		putBuf(r.buf)
	}
}

// writeLoop sends replies in order, flushing when none are waiting.
func (t *transmission) writeLoop(ctx context.Context) error {
	bw := bufio.NewWriterSize(t.w, 128<<10)
	var hdr [replyHdrSize]byte
	binary.BigEndian.PutUint32(hdr[:], simpleReplyMag)
	for r := range t.replies {
		binary.BigEndian.PutUint32(hdr[4:], r.errno)
		binary.BigEndian.PutUint64(hdr[8:], r.cookie)
		bw.Write(hdr[:])
		bw.Write(r.data)
		t.release(r)
		if len(t.replies) == 0 {
			if err := bw.Flush(); err != nil {
				if c, ok := t.w.(io.Closer); ok {
					c.Close() // unblock the reader
				}
				for r := range t.replies { // drain so the reader is not stuck
					t.release(r)
				}
				return fmt.Errorf("write reply: %w", err)
			}
		}
	}
	return bw.Flush()
}

// Buffer pools by power-of-two size class, for READ replies.
var bufPools [32]sync.Pool

func getBuf(n int) *[]byte {
	c := bits.Len(uint(max(n, 4096) - 1))
	if b, ok := bufPools[c].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 1<<c)
	return &b
}

func putBuf(b *[]byte) {
	c := bits.Len(uint(cap(*b) - 1))
	if 1<<c == cap(*b) {
		bufPools[c].Put(b)
	}
}
