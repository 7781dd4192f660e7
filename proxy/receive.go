package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
	"github.com/quic-go/quic-go"
)

// serveFile receives one file on its stream, rebuilds it, pushes it to dst
// and writes dst's verdict back.
// arrived is the file's place in the arrivals (counted when its stream was
// accepted, so in stream order).
func (d *Dest) serveFile(ctx context.Context, st *quic.Stream, r io.Reader, arrived arrival) {
	defer arrived.done()
	d.m.inFlight.Inc()
	defer d.m.inFlight.Dec()
	stop := context.AfterFunc(ctx, func() { st.CancelRead(streamCanceled); st.CancelWrite(streamCanceled) })
	defer stop()
	w := countingWriter{w: st, c: d.m.wire}
	typ, body, rd, err := firstFrame(r)
	if err == nil && typ == TypeSum {
		arrived.done() // not a file: later files need not wait for it
		d.serveSums(ctx, st, body)
		return
	}
	if err != nil {
		rd = errReader{noEOF(err)}
	}
	// The source edge cancels its side when it gives the file up (its
	// stream context here ends): a striped transfer stops waiting then.
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(st.Context(), cancel)()
	hdr, file, err := d.receiveArriving(fctx, rd, w, arrived)
	if err == nil {
		defer d.mem.Add(-fileCost(hdr)) // booked by receiveArriving, held until dst's verdict
	}
	if err != nil {
		if !errors.Is(err, push.ErrChecksum) && !errors.Is(err, push.ErrBadOffer) && !errors.Is(err, push.ErrBufferFull) {
			// The stream broke or spoke nonsense: nothing to answer on it.
			if ctx.Err() == nil {
				d.log.Warn("WAN file stream failed", "file", hdr.Volume+"/"+hdr.Name, "err", err)
			}
			st.CancelRead(streamProtocol)
			st.CancelWrite(streamProtocol)
			return
		}
		// The file was refused or did not rebuild: tell the source edge (it
		// passes the code on to src) and stop reading what may still come.
		d.log.Warn("file not rebuilt", "file", hdr.Volume+"/"+hdr.Name, "err", err)
		d.finish(st, w, hdr, err)
		st.CancelRead(streamCanceled)
		return
	}
	o := push.Offer{Volume: hdr.Volume, Name: hdr.Name, Seq: hdr.Seq, Size: hdr.Size, SHA256: hdr.SHA256}
	err = d.dst.Push(ctx, o, bytes.NewReader(file))
	if err == nil {
		d.m.logical.Add(float64(len(file)))
	}
	d.finish(st, w, hdr, err)
}

// finish writes the RESULT frame and closes the stream.
func (d *Dest) finish(st *quic.Stream, w io.Writer, hdr FileHeader, err error) {
	d.m.files.WithLabelValues(resultLabel(err)).Inc()
	r := Result{Code: uint16(push.CodeOf(err))}
	if err != nil {
		r.Msg = err.Error()
	}
	if _, werr := writeFrame(w, TypeResult, r.encode()); werr != nil {
		d.log.Warn("verdict not delivered", "file", hdr.Volume+"/"+hdr.Name, "err", werr)
	}
	_ = st.Close()
	// Nothing more is read: release the receive side. The source edge
	// closes its side only after reading the verdict, and a stream whose
	// FIN is never read stays open and keeps its place in the source's
	// stream limit (transport.Config.MaxStreams): the 1000th file on a
	// connection then waited for a stream forever.
	st.CancelRead(streamDone)
}

// receive reads the FILE frame and its data, resolves misses and returns the
// verified file (its memory released at once). Errors wrapping
// push.ErrChecksum, push.ErrBadOffer or push.ErrBufferFull are sent back as
// a verdict; any other means the stream is broken.
//
// It has no part streams to take a striped transfer's parts from: one
// fails at once (the context is done).
func (d *Dest) receive(st io.Reader, w io.Writer) (FileHeader, []byte, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	hdr, file, err := d.receiveArriving(ctx, st, w, d.arriving.begin())
	if err == nil {
		d.mem.Add(-fileCost(hdr))
	}
	return hdr, file, err
}

// receiveArriving is receive for a file already counted in the arrivals. A
// file it returns has its fileCost booked (d.book): the caller releases it.
func (d *Dest) receiveArriving(ctx context.Context, st io.Reader, w io.Writer, arrived arrival) (hdr FileHeader, file []byte, err error) {
	defer arrived.done()
	var buf []byte
	typ, body, err := readFrame(st, &buf)
	if err != nil {
		return FileHeader{}, nil, noEOF(err)
	}
	if typ != TypeFile {
		return FileHeader{}, nil, fmt.Errorf("%w: file stream opened with frame type %d", ErrFrame, typ)
	}
	hdr, err = DecodeFileHeader(body)
	if err != nil {
		return hdr, nil, err
	}
	name := hdr.Volume + "/" + hdr.Name
	if hdr.Size > d.cfg.MaxFileSize {
		return hdr, nil, fmt.Errorf("file %s of %d bytes above the limit %d: %w", name, hdr.Size, d.cfg.MaxFileSize, push.ErrBadOffer)
	}
	limit := streamLimit(hdr.Size)
	if hdr.MetaLen > limit || hdr.StreamLen > limit {
		return hdr, nil, fmt.Errorf("%w: file %s announces %d+%d bytes for a %d-byte file", ErrFrame, name, hdr.MetaLen, hdr.StreamLen, hdr.Size)
	}
	if err := d.book(name, fileCost(hdr)); err != nil {
		return hdr, nil, err
	}
	defer func() {
		if err != nil {
			d.mem.Add(-fileCost(hdr))
		}
	}()
	data, err := d.receiveData(ctx, st, &buf, hdr)
	if err != nil {
		return hdr, nil, noEOF(err)
	}
	if int64(len(data)) != hdr.MetaLen+hdr.StreamLen {
		return hdr, nil, fmt.Errorf("%w: file %s: %d data bytes, announced %d", ErrFrame, name, len(data), hdr.MetaLen+hdr.StreamLen)
	}
	file = data
	if hdr.Mode == ModeOptimize {
		if file, err = d.rebuild(ctx, st, w, &buf, hdr, data, arrived); err != nil {
			return hdr, nil, fmt.Errorf("rebuild %s: %w", name, err)
		}
	}
	if sha256.Sum256(file) != hdr.SHA256 {
		return hdr, nil, fmt.Errorf("rebuilt %s: %w", name, push.ErrChecksum)
	}
	return hdr, file, nil
}

// streamLimit bounds the encoded size of a file: zstd and the op stream may
// expand incompressible data a little.
func streamLimit(size int64) int64 { return size + size/8 + 1<<20 }

// rebuild decodes metadata and payload, asking the source edge for the
// chunks the store cannot resolve.
//
// The payload is decoded only once every file accepted before it was
// decoded (awaitTurn): in the order the source edge encoded them, so the
// chunks and successor links an earlier file brings are in the store, as
// the encoder's peer index assumed when it wrote references, runs and
// dictionary bases against them. A file the source edge marked AnyOrder
// relies on no chunk of a file still unacknowledged there, and is decoded
// at once: behind a large file still crossing, the small ones after it
// (a clone's files against a template that crossed long ago) would wait
// for it, their acknowledgements with them, and the source's push window
// ran dry. The file stops counting as arriving once its chunks are all in
// the store: after its decode and, if it asked some back, their answer
// (see arrivals).
func (d *Dest) rebuild(ctx context.Context, st io.Reader, w io.Writer, buf *[]byte, hdr FileHeader, data []byte, arrived arrival) ([]byte, error) {
	meta, err := unzstd(data[:hdr.MetaLen], hdr.Size-hdr.PayloadLen)
	if err != nil {
		return nil, errors.Join(push.ErrChecksum, err)
	}
	if !hdr.AnyOrder && d.awaitTurn(ctx, arrived.seq) {
		d.m.missWaits.Inc()
	}
	// The turn ends once the file's chunks are all in the store: after its
	// misses were answered, not at the end of Decode. Literals a file could
	// not decode (its dictionary's bases were missing) and references it
	// missed are stored only when the answer comes; the next file, encoded
	// against them, decoded meanwhile missed them in turn, its own literals
	// were stored late too, and so on: in the seed-scale run 883 files in a
	// row asked back all their literals (843 MB resent) after a few misses.
	// (receiveArriving ends the turn on the paths that fail.)
	pend, err := d.dec.Decode(data[hdr.MetaLen:])
	if err != nil {
		return nil, errors.Join(push.ErrChecksum, err)
	}
	if !pend.Complete() {
		misses := pend.Misses()
		d.m.refMisses.Add(float64(len(misses)))
		ps := pend.Stats()
		d.log.Info("asking the source edge for chunks the store cannot resolve", "file", hdr.Volume+"/"+hdr.Name,
			"ranges", len(misses), "bytes", ps.MissBytes, "payload", ps.Payload)
		if _, err := writeBlob(w, TypeMiss, pend.AppendMissList(nil)); err != nil {
			return nil, fmt.Errorf("send miss list: %w", err)
		}
		ans, err := readBlob(st, buf, TypeAnswer, streamLimit(hdr.PayloadLen), nil)
		if err != nil {
			return nil, noEOF(err)
		}
		if err := pend.Resolve(ans); err != nil {
			return nil, errors.Join(push.ErrChecksum, err)
		}
	}
	arrived.done()
	payload, err := pend.Payload()
	if err != nil {
		return nil, errors.Join(push.ErrChecksum, err)
	}
	if int64(len(payload)) != hdr.PayloadLen {
		return nil, fmt.Errorf("payload of %d bytes, announced %d: %w", len(payload), hdr.PayloadLen, push.ErrChecksum)
	}
	if len(meta) == 0 { // not a journal file: it travelled as all payload
		return payload, nil
	}
	file, err := journal.Join(meta, payload)
	if err != nil {
		return nil, errors.Join(push.ErrChecksum, err)
	}
	return file, nil
}

// connSet tracks the live WAN connections for statistics.
type connSet struct {
	mu    sync.Mutex
	conns []*quic.Conn
}

func (s *connSet) add(c *quic.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns = append(s.conns, c)
}

func (s *connSet) remove(c *quic.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns = slices.DeleteFunc(s.conns, func(x *quic.Conn) bool { return x == c })
}

func (s *connSet) list() []*quic.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.conns)
}

// arrivals tracks the files whose data is arriving or being decoded, in the
// order their streams were accepted (the source edge opens them in encode
// order). A file may reference chunks of files encoded before it — as
// references, runs (which follow the successor links the earlier file
// recorded) or dictionary bases — and with striped transfers over parallel
// connections a later (smaller) file can be complete first. Decoded first,
// it would miss those chunks, and it would record its own successor links
// first (the store keeps the first link of a chunk), so runs and bases the
// encoder built on the earlier file's links would miss too: a file whose
// dictionary cannot be rebuilt has all its literals asked back. So a file
// waits for its turn: until every file accepted before it was decoded. The
// wait always ends, since every earlier file is decoded or fails (MissWait
// is only a safety cap). A file stops counting once it was decoded and
// its misses answered.
type arrivals struct {
	mu      sync.Mutex
	next    uint64
	pending map[uint64]struct{}
	changed chan struct{}
	waiting int // files waiting for their turn (awaitTurn)
}

// arrival is one counted file: its place in the order, and done, which
// uncounts it (idempotent).
type arrival struct {
	seq  uint64
	done func()
}

// begin counts one arriving file.
func (a *arrivals) begin() arrival {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending == nil {
		a.pending = map[uint64]struct{}{}
	}
	seq := a.next
	a.next++
	a.pending[seq] = struct{}{}
	var once sync.Once
	return arrival{seq: seq, done: func() {
		once.Do(func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			delete(a.pending, seq)
			if a.changed != nil {
				close(a.changed)
				a.changed = nil
			}
		})
	}}
}

// earlier returns how many files accepted before seq are still arriving and
// a channel closed at the next change.
func (a *arrivals) earlier(seq uint64) (int, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.changed == nil {
		a.changed = make(chan struct{})
	}
	n := 0
	for s := range a.pending {
		if s < seq {
			n++
		}
	}
	return n, a.changed
}

// waiters is the number of files waiting for their turn.
func (a *arrivals) waiters() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.waiting
}

// wait counts a file waiting for its turn (d > 0) or no longer (d < 0).
func (a *arrivals) wait(d int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.waiting += d
}

// awaitTurn waits until no file accepted before seq is still arriving or
// being decoded, MissWait passed or ctx ended, and reports whether it
// waited.
func (d *Dest) awaitTurn(ctx context.Context, seq uint64) bool {
	if d.cfg.MissWait <= 0 {
		return false
	}
	var timer *time.Timer
	for waited := false; ; waited = true {
		n, changed := d.arriving.earlier(seq)
		if n == 0 {
			return waited
		}
		if timer == nil {
			timer = time.NewTimer(d.cfg.MissWait)
			defer timer.Stop()
			d.arriving.wait(1)
			defer d.arriving.wait(-1)
		}
		select {
		case <-changed:
		case <-timer.C:
			d.log.Warn("decoding a file before files accepted earlier: they took longer than the miss wait",
				"earlier", n, "miss_wait", d.cfg.MissWait)
			return true
		case <-ctx.Done():
			return waited
		}
	}
}

// errReader fails every read with err (a stream whose first frame did not
// arrive).
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
