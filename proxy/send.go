package proxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/aimwan/aimwan/dedupe"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
	"github.com/quic-go/quic-go"
)

// Stream error codes used when a file stream is abandoned, or, streamDone,
// released once its exchange is over.
const (
	streamDone     quic.StreamErrorCode = 0
	streamCanceled quic.StreamErrorCode = 1
	streamProtocol quic.StreamErrorCode = 2
)

// verdict is dst's answer relayed by the destination edge: final for this
// attempt, not a transport failure.
type verdict struct{ err error }

func (v *verdict) Error() string { return v.err.Error() }
func (v *verdict) Unwrap() error { return v.err }

// encoded is a file ready for the WAN.
type encoded struct {
	hdr     FileHeader
	data    []byte // compressed metadata then the dedupe stream (or the raw file)
	payload []byte // the payload region (answers to misses are cut from it)
	enc     *dedupe.Encoder
	gen     uint64 // the payload's number at enc (settled when the push ends)
	started func() // called once the FILE frame is written (frees the encoder slot)
}

// push checks the file, encodes it once and pushes it to the destination
// edge over the WAN, retrying over new connections after transport failures
// for up to RetryFor.
func (s *Source) push(ctx context.Context, o push.Offer, file []byte) error {
	name := o.Volume + "/" + o.Name
	if int64(len(file)) != o.Size {
		return fmt.Errorf("file %s: got %d of %d bytes: %w", name, len(file), o.Size, push.ErrBadOffer)
	}
	if sha256.Sum256(file) != o.SHA256 {
		return fmt.Errorf("file %s: %w", name, push.ErrChecksum)
	}
	// The encoder slot is held until the file's FILE frame is on its stream,
	// so the destination sees files in the order the peer index assumed.
	if err := s.encq.acquire(ctx, o.Volume, o.Seq); err != nil { // src gave up while earlier files held the slot
		return fmt.Errorf("file %s: waiting for the encoder: %w", name, err)
	}
	release := sync.OnceFunc(s.encq.release)
	defer release()
	enc, err := s.encode(o, file)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	if enc.enc != nil {
		// However the push ends, later files stop waiting for this one:
		// acknowledged, its chunks are stored at the peer; abandoned, they
		// are misses there, asked back like evicted ones.
		defer enc.enc.Settle(enc.gen)
	}
	enc.started = release
	deadline := time.Now().Add(s.cfg.RetryFor)
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := s.pushOnce(ctx, deadline, enc)
		var v *verdict
		switch {
		case err == nil:
			s.m.logical.Add(float64(len(file)))
			return nil
		case errors.As(err, &v):
			return fmt.Errorf("file %s: destination: %w", name, v.err)
		case ctx.Err() != nil:
			return fmt.Errorf("file %s: %w", name, context.Cause(ctx))
		case time.Now().After(deadline):
			return fmt.Errorf("file %s: WAN push failed %d times, last: %v: %w", name, attempt, err, push.ErrUnavailable)
		}
		s.log.Warn("WAN push failed; retrying", "file", name, "attempt", attempt, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("file %s: %w", name, context.Cause(ctx))
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// encode splits the file into metadata and payload (journal.Split) and
// encodes them for the mode. A file that is not a journal is all payload.
// The caller holds the encoder slot.
func (s *Source) encode(o push.Offer, file []byte) (*encoded, error) {
	hdr := FileHeader{Volume: o.Volume, Name: o.Name, Seq: o.Seq, Size: o.Size, SHA256: o.SHA256, Mode: s.cfg.Mode}
	if s.cfg.Mode == ModePassthrough {
		hdr.PayloadLen, hdr.StreamLen = o.Size, o.Size
		return &encoded{hdr: hdr, data: file, payload: file}, nil
	}
	meta, payload, err := journal.Split(file)
	if err != nil {
		s.log.Debug("not a journal file; sending it all as payload", "file", o.Name, "err", err)
		meta, payload = nil, file
	} else if h, err := journal.ParseHeader(o.Name, file); err == nil {
		hdr.PayloadOff = h.Size() // Split checked the header: 160, or 128 in a version 1 file
	}
	plen := int64(len(payload))
	data := zstdEncoder.EncodeAll(meta, nil)
	hdr.PayloadLen, hdr.MetaLen = plen, int64(len(data))

	level := s.cfg.Level
	if level == 0 {
		maxSecs := math.Inf(1)
		if dedupe.MaxAvailable() {
			maxSecs = float64(plen) / s.maxRate
		}
		level = chooseLevel(s.queueSeconds(), s.encq.waiting(), maxSecs)
	}
	s.m.level.Set(float64(level))
	s.m.byLevel.WithLabelValues(level.String()).Inc()
	enc := s.enc
	if err := enc.SetLevel(level); err != nil {
		return nil, err
	}
	t0 := time.Now()
	data, st, err := enc.Encode(data, payload)
	if err != nil {
		return nil, err
	}
	if level == dedupe.LevelMax && st.LiteralBytes >= maxRateSample {
		s.maxRate = updateMaxRate(s.maxRate, float64(st.LiteralBytes)/time.Since(t0).Seconds())
	}
	hdr.StreamLen = int64(len(data)) - hdr.MetaLen
	hdr.AnyOrder = len(st.After) == 0
	s.m.hits.Add(float64(st.Refs + st.RunChunks))
	s.m.misses.Add(float64(max(st.Chunks-st.Refs-st.RunChunks, 0)))
	return &encoded{hdr: hdr, data: data, payload: payload, enc: enc, gen: st.Gen}, nil
}

// queueSeconds is how long the bytes queued for the WAN take at the current
// cap (or the configured link rate when unlimited); +Inf when paused.
func (s *Source) queueSeconds() float64 {
	q := float64(s.queued.Load())
	r := s.throttle.Rate()
	if math.IsInf(r, 1) {
		r = s.cfg.Transport.WithDefaults().LinkRate
	}
	if r <= 0 {
		if q > 0 {
			return math.Inf(1)
		}
		return 0
	}
	return q / r
}

// pushOnce sends one file on a new stream and waits for the verdict.
// A connection is awaited until deadline at most.
func (s *Source) pushOnce(ctx context.Context, deadline time.Time, enc *encoded) error {
	getCtx, cancel := context.WithDeadline(ctx, deadline)
	conn, err := s.pool.Get(getCtx)
	cancel()
	if err != nil {
		return err
	}
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return fmt.Errorf("open WAN stream: %w", err)
	}
	// Non-incremental: files go out one after the other in stream (= encode)
	// order instead of round-robin, so on a slow line the oldest file lands
	// first rather than all of them at the end, and the chunks a later file
	// references arrive before it.
	st.SetPriority(3, false)
	stop := context.AfterFunc(ctx, func() { st.CancelRead(streamCanceled); st.CancelWrite(streamCanceled) })
	defer stop()
	w := s.pool.Writer(ctx, countingWriter{w: st, c: s.m.wire}) // paced, and capped by the schedule
	_, err = writeFrame(w, TypeFile, enc.hdr.encode())
	if enc.started != nil {
		enc.started()
	}
	if err != nil {
		return fmt.Errorf("send file header: %w", err)
	}
	resp := readResponse(st) // read while the data goes: the destination may refuse early
	n := int64(len(enc.data))
	s.queued.Add(n)
	s.m.queued.Set(float64(s.queued.Load()))
	err = s.sendData(ctx, w, enc.data, resp)
	s.queued.Add(-n)
	s.m.queued.Set(float64(s.queued.Load()))
	if err != nil {
		// End the stream, so the destination edge stops waiting for the
		// parts of a striped transfer, and the response reader ends.
		defer st.CancelRead(streamCanceled)
		defer st.CancelWrite(streamCanceled)
		// The destination may have refused the file early (too large) and
		// stopped reading: its verdict is then waiting on the stream.
		if v := earlyVerdict(resp); v != nil {
			return v
		}
		return fmt.Errorf("send file data: %w", err)
	}
	return s.awaitResult(st, w, enc, resp)
}

// response is the destination edge's first frame on a file stream, read
// while the data is still being sent.
type response struct {
	typ  byte
	body []byte
	err  error
}

// readResponse reads the first response frame of st in the background.
// The reader ends with the frame, or when the stream is canceled.
func readResponse(st io.Reader) chan response {
	ch := make(chan response, 1)
	go func() {
		var buf []byte
		typ, body, err := readFrame(st, &buf)
		ch <- response{typ: typ, body: body, err: err}
	}()
	return ch
}

// earlyVerdict returns the refusal the destination sent before the data
// was through, waiting a second at most; nil when there is none.
func earlyVerdict(resp <-chan response) error {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	var r response
	select {
	case r = <-resp:
	case <-t.C:
		return nil
	}
	if r.err != nil || r.typ != TypeResult {
		return nil
	}
	res, err := DecodeResult(r.body)
	if err != nil || res.Code == uint16(push.CodeOK) {
		return nil
	}
	return &verdict{push.ErrorOf(push.Code(res.Code), res.Msg)}
}

// awaitResult answers miss lists until the RESULT frame arrives.
func (s *Source) awaitResult(st *quic.Stream, w io.Writer, enc *encoded, resp <-chan response) error {
	var buf []byte
	for misses := 0; ; misses++ {
		var typ byte
		var body []byte
		var err error
		if misses == 0 {
			r := <-resp
			typ, body, err = r.typ, r.body, r.err
		} else {
			typ, body, err = readFrame(st, &buf)
		}
		if err != nil {
			st.CancelWrite(streamProtocol)
			return fmt.Errorf("await verdict: %w", err)
		}
		switch {
		case typ == TypeResult:
			r, err := DecodeResult(body)
			if err != nil {
				return err
			}
			st.Close()
			st.CancelRead(streamDone) // the peer's FIN may come later: see Dest.finish
			if r.Code == uint16(push.CodeOK) {
				return nil
			}
			return &verdict{push.ErrorOf(push.Code(r.Code), r.Msg)}
		case typ == TypeMiss && enc.hdr.Mode == ModeOptimize && misses < 4:
			list, err := readBlobRest(st, &buf, body, TypeMiss, int64(MaxPiece)*64)
			if err != nil {
				return err
			}
			if err := s.answer(w, enc, list); err != nil {
				return err
			}
		default:
			st.CancelWrite(streamProtocol)
			return fmt.Errorf("%w: unexpected frame type %d while awaiting the verdict", ErrFrame, typ)
		}
	}
}

// answer sends the literals of the ranges the peer could not resolve.
func (s *Source) answer(w io.Writer, enc *encoded, list []byte) error {
	_, ranges, err := dedupe.ParseMissList(list, len(enc.payload))
	if err != nil {
		return fmt.Errorf("miss list for %s: %w", enc.hdr.Name, err)
	}
	s.m.refMisses.Add(float64(len(ranges)))
	ans, err := enc.enc.Answer(nil, enc.payload, list)
	if err != nil {
		return fmt.Errorf("answer misses of %s: %w", enc.hdr.Name, err)
	}
	n, err := writeBlob(w, TypeAnswer, ans)
	s.m.resent.Add(float64(n))
	if err != nil {
		return fmt.Errorf("send answer: %w", err)
	}
	return nil
}
