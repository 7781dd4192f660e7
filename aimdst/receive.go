package aimdst

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/aimwan/aimwan/internal/durable"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// partExt is the suffix of a file being received.
const partExt = ".part"

var _ push.Handler = (*Node)(nil)

// Accept is called by the push server per offered file. It checks the offer,
// answers duplicates (held, or destaged per the cursor, with the same
// SHA-256) with push.ErrDuplicate and refuses a known number with other
// contents (push.ErrConflict), refuses with push.ErrBufferFull when the
// destination buffer would pass its limit counting every file being
// received at its full size (except the very file destage waits for, so a
// full buffer can never deadlock on a gap), and otherwise returns a sink that
// appends to <buffer>/<volume>/<name>.part, resuming where an earlier attempt
// stopped. The sink checks the file's header as soon as it has arrived.
func (n *Node) Accept(ctx context.Context, peer push.Hello, o push.Offer) (push.Sink, error) {
	if err := journal.ValidName(o.Volume); err != nil {
		return nil, fmt.Errorf("%w: volume: %w", push.ErrBadOffer, err)
	}
	v, ok := n.vols[o.Volume]
	if !ok {
		return nil, fmt.Errorf("%w: %s", push.ErrUnknownVolume, o.Volume)
	}
	if err := o.Validate(); err != nil { // the push server did; Accept may have other callers
		return nil, fmt.Errorf("%w: %w", push.ErrBadOffer, err)
	}
	seq := o.Seq
	if o.Size < journal.MinFileSize || o.Size > n.cfg.MaxFileSize {
		return nil, fmt.Errorf("%w: %s/%s: size %d outside [%d, %d]", push.ErrBadOffer, o.Volume, o.Name,
			o.Size, journal.MinFileSize, n.cfg.MaxFileSize)
	}
	part := filepath.Join(v.dir, o.Name+partExt)
	if err := v.lockIdle(ctx, seq); err != nil {
		return nil, fmt.Errorf("%w: %s/%s: %w", push.ErrUnavailable, o.Volume, o.Name, err)
	}
	defer v.mu.Unlock()
	if err := v.refusePromoted(); err != nil {
		return nil, err
	}
	if v.rebinding {
		return nil, fmt.Errorf("%w: volume %s is switching to a new journal stream", push.ErrUnavailable, v.name)
	}
	dup, below, err := v.judgeOffer(o)
	if err != nil {
		return nil, fmt.Errorf("receive %s/%s: %w", o.Volume, o.Name, err)
	}
	if dup {
		// A held file whose commit failed at the folder sync is renamed but
		// perhaps not durably: the ack waits for a folder sync that succeeds.
		if v.q.Holds(seq) {
			if err := durable.SyncDir(v.dir); err != nil {
				return nil, fmt.Errorf("%w: %s/%s: %w", push.ErrUnavailable, o.Volume, o.Name, err)
			}
		}
		n.metrics.duplicates.WithLabelValues(v.name).Inc()
		return nil, push.ErrDuplicate
	}
	have := int64(0)
	if fi, err := os.Stat(part); err == nil {
		have = fi.Size()
	}
	// Count what the .part really holds: a write that failed (ENOSPC) may
	// have grown it by bytes its Write never reported.
	v.setPart(seq, have)
	need := o.Size - min(have, o.Size)
	if err := v.reserve(seq, need); err != nil {
		return nil, fmt.Errorf("receive %s/%s: %w", o.Volume, o.Name, err)
	}
	s := &sink{v: v, o: o, seq: seq, part: part, off: have, below: below, reserved: need}
	if s.f, err = os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		s.release()
		return nil, fmt.Errorf("receive %s/%s: %w", o.Volume, o.Name, bufferErr(err))
	}
	if have > o.Size { // not a prefix of this file
		if err := s.f.Truncate(0); err != nil {
			s.f.Close()
			s.release()
			return nil, fmt.Errorf("receive %s/%s: %w", o.Volume, o.Name, err)
		}
		v.setPart(seq, 0)
		s.off = 0
	}
	if s.off >= journal.HeaderSize {
		if err := s.judge(); err != nil { // a resumed file: its header is here
			s.drop()
			return nil, err
		}
	}
	v.receiving[seq] = make(chan struct{})
	return s, nil
}

// reserve books need more bytes of the destination buffer for file seq
// before it is received, refusing with push.ErrBufferFull when the held
// bytes plus every reservation would pass the limit (except the file
// destage needs next, so a full buffer never deadlocks on a gap) or the disk
// lacks the space. Parallel offers therefore cannot overrun the limit
// together. v.mu held.
func (v *volume) reserve(seq uint64, need int64) error {
	n := v.n
	n.roomMu.Lock()
	defer n.roomMu.Unlock()
	var err error
	held, booked := n.bufBytes.Load(), n.reserved.Load()
	if seq != v.q.Next() && held+booked+need > n.cfg.BufferLimit {
		err = fmt.Errorf("%w: destination buffer holds %d of %d bytes, %d more are being received", push.ErrBufferFull,
			held, n.cfg.BufferLimit, booked)
	} else if free, ok := freeSpace(v.dir); ok && free < booked+need {
		err = fmt.Errorf("%w: %d bytes free on the buffer's disk, files being received need %d", push.ErrBufferFull, free, booked+need)
	}
	if err != nil {
		v.refusedFull++
		v.lastFull = n.cfg.Now()
		n.metrics.refusedFull.WithLabelValues(v.name).Inc()
		return err
	}
	n.reserved.Add(need)
	return nil
}

// freeSpace returns the bytes available to us on dir's file system.
func freeSpace(dir string) (int64, bool) {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return 0, false
	}
	return int64(st.Bavail) * st.Bsize, true
}

// bufferErr marks an out-of-space error of the buffer's disk as
// push.ErrBufferFull, so the sender keeps the file and retries later.
func bufferErr(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", push.ErrBufferFull, err)
	}
	return err
}

// lockIdle locks v.mu once file seq is not being received on another
// connection (a resend after the sender gave up on a stalled one): it waits
// for that transfer to end, or for ctx.
func (v *volume) lockIdle(ctx context.Context, seq uint64) error {
	for range 1000 {
		v.mu.Lock()
		busy, ok := v.receiving[seq]
		if !ok {
			return nil
		}
		v.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return errors.New("file keeps being received on other connections")
}

// endReceive marks file seq no longer being received. v.mu held.
func (v *volume) endReceive(seq uint64) {
	if ch, ok := v.receiving[seq]; ok {
		close(ch)
		delete(v.receiving, seq)
	}
}

// setPart records that the .part file of seq holds size bytes (0: it is
// gone), adjusting the buffer counts by the difference. v.mu held.
func (v *volume) setPart(seq uint64, size int64) {
	if v.parts == nil {
		v.parts = map[uint64]int64{}
	}
	d := size - v.parts[seq]
	if size == 0 {
		delete(v.parts, seq)
	} else {
		v.parts[seq] = size
	}
	v.partBytes += d
	v.n.bufBytes.Add(d)
}

// sink receives one file into the destination buffer.
type sink struct {
	v        *volume
	o        push.Offer
	seq      uint64
	f        *os.File
	part     string
	off      int64
	reserved int64 // bytes of the buffer still booked for this file
	below    bool  // the number lies at or below the destage cursor (judgeOffer)
	judged   bool  // the header was checked (judgeHeader)
	rebind   bool  // the file starts a new stream (an initialize)
	stream   journal.StreamID
	refused  bool // judged unfit: the partial file is removed, not kept for a resume
}

var _ push.Sink = (*sink)(nil)

func (s *sink) Offset() int64 { return s.off }

func (s *sink) Write(p []byte) (int, error) {
	if int64(len(p)) > s.o.Size-s.off {
		return 0, fmt.Errorf("%w: %s/%s: more than the offered %d bytes", push.ErrBadOffer, s.o.Volume, s.o.Name, s.o.Size)
	}
	n, err := s.f.WriteAt(p, s.off)
	s.off += int64(n)
	s.v.mu.Lock()
	defer s.v.mu.Unlock()
	s.v.setPart(s.seq, s.off)
	s.unbook(int64(n))
	if err != nil {
		return n, fmt.Errorf("receive %s/%s: %w", s.o.Volume, s.o.Name, bufferErr(err))
	}
	if !s.judged && s.off >= journal.HeaderSize {
		if err := s.judge(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// judge checks the file's header, once it has arrived, against what the
// volume replicates (judgeHeader); a file that does not belong is refused
// before the rest of it is sent. s.v.mu held.
func (s *sink) judge() error {
	b := make([]byte, journal.HeaderSize)
	if _, err := s.f.ReadAt(b, 0); err != nil {
		return fmt.Errorf("receive %s/%s: read header: %w", s.o.Volume, s.o.Name, err)
	}
	h, err := journal.ParseHeader(s.o.Name, b)
	if err == nil && (h.Volume != s.o.Volume || h.FileSeq != s.seq) {
		err = fmt.Errorf("header of volume %q file %d", h.Volume, h.FileSeq)
	}
	if err != nil {
		s.refused = true
		return fmt.Errorf("%w: %s/%s: %w", push.ErrBadOffer, s.o.Volume, s.o.Name, err)
	}
	rebind, err := s.v.judgeHeader(s.seq, h, s.below)
	if err != nil {
		s.refused = true
		return fmt.Errorf("receive %s/%s: %w", s.o.Volume, s.o.Name, err)
	}
	s.judged, s.rebind, s.stream = true, rebind, h.Stream
	if rebind {
		s.v.starting[h.Stream] = s.seq
	}
	return nil
}

// unbook releases n booked bytes (they are counted as the part's now, or
// never will be). s.v.mu held.
func (s *sink) unbook(n int64) {
	n = min(n, s.reserved)
	s.reserved -= n
	s.v.n.reserved.Add(-n)
}

// release ends the sink's claims: its booking and its start-file mark.
// s.v.mu held.
func (s *sink) release() {
	s.unbook(s.reserved)
	if s.rebind && s.v.starting[s.stream] == s.seq {
		delete(s.v.starting, s.stream)
	}
}

// drop removes the partial file of a refused file. s.v.mu held.
func (s *sink) drop() {
	s.f.Close()
	os.Remove(s.part)
	s.v.setPart(s.seq, 0)
	s.release()
}

// Commit verifies the SHA-256 and the journal structure, checks that the
// file belongs to the volume's stream and follows the file before it (when
// that one is known), makes it durable under its final name (fsync file,
// rename, fsync folder) and hands it to the reorder buffer. A first file of
// a new stream rebinds the volume. A file that fails is deleted, so the next
// attempt starts from zero.
func (s *sink) Commit(ctx context.Context) error {
	err := s.commit()
	s.v.mu.Lock()
	defer s.v.mu.Unlock()
	s.release()
	s.v.endReceive(s.seq)
	s.v.notify()
	if err != nil {
		return err
	}
	s.v.n.metrics.filesReceived.WithLabelValues(s.v.name).Inc()
	return nil
}

func (s *sink) commit() error {
	o := s.o
	fail := func(err error) error {
		s.f.Close()
		os.Remove(s.part)
		s.v.mu.Lock()
		s.v.setPart(s.seq, 0)
		s.v.mu.Unlock()
		return fmt.Errorf("receive %s/%s: %w", o.Volume, o.Name, bufferErr(err))
	}
	if s.off != o.Size {
		return fail(fmt.Errorf("%w: %d of %d bytes received", push.ErrBadOffer, s.off, o.Size))
	}
	b := make([]byte, o.Size)
	if _, err := s.f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return fail(err)
	}
	if sum := sha256.Sum256(b); !bytes.Equal(sum[:], o.SHA256[:]) {
		return fail(push.ErrChecksum)
	}
	f, err := journal.ParseExpect(o.Name, b, o.Volume)
	if err != nil {
		return fail(fmt.Errorf("%w: %w", push.ErrBadOffer, err))
	}
	if err := durable.Sync(s.f); err != nil {
		return fail(err)
	}
	if err := s.f.Close(); err != nil {
		return fail(err)
	}
	if s.rebind {
		if err := s.v.rebind(s, f); err != nil {
			if !errors.Is(err, push.ErrUnavailable) {
				return fail(err)
			}
			return fmt.Errorf("receive %s/%s: %w", o.Volume, o.Name, err) // the part is kept: the retry resumes at its end
		}
		return nil
	}
	s.v.mu.Lock()
	if err := s.admit(f); err != nil {
		s.v.mu.Unlock()
		return fail(err)
	}
	s.v.mu.Unlock()
	// Not acked unless the rename is durable; the file is held either way, so
	// a resend after this error is answered as a duplicate once a folder sync
	// succeeds (see Accept).
	if err := durable.SyncDir(s.v.dir); err != nil {
		return fmt.Errorf("receive %s/%s: %w", o.Volume, o.Name, err)
	}
	return nil
}

// admit checks a received file once more against the volume (the binding
// may have changed while it arrived) and against the file before it, then
// renames it to its final name and holds it for destage. s.v.mu held.
func (s *sink) admit(f *journal.File) error {
	v := s.v
	if _, err := v.judgeHeader(s.seq, f.Header, s.seq <= v.cursor.File); err != nil {
		return err
	}
	if err := v.checkFollows(s.seq, f); err != nil {
		return err
	}
	if err := os.Rename(s.part, v.path(s.seq)); err != nil {
		return err
	}
	v.hold(s.seq, f, s.o.SHA256)
	return nil
}

// hold adds received file seq to the reorder buffer. v.mu held.
func (v *volume) hold(seq uint64, f *journal.File, sum [32]byte) {
	v.setPart(seq, 0)
	if v.q.Add(seq, f.Size) { // always, while receiving[seq] is set
		v.n.bufBytes.Add(f.Size) // held now as a received file
		info := infoOf(f)
		info.sha, info.shaKnown = sum, true
		v.info[seq] = info
		delete(v.refusals, seq)
	}
}

// Abort keeps the partial file for a resume, made durable so that its size
// is the resume offset; a file refused for what its header says is removed.
func (s *sink) Abort() {
	_ = durable.Sync(s.f)
	s.f.Close()
	s.v.mu.Lock()
	defer s.v.mu.Unlock()
	if s.refused {
		os.Remove(s.part)
		s.v.setPart(s.seq, 0)
	}
	s.release()
	s.v.endReceive(s.seq)
}
