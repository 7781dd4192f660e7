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
// answers duplicates (held, or destaged per the cursor) with
// push.ErrDuplicate, refuses with push.ErrBufferFull when the destination
// buffer is at its limit (except the very file destage waits for, so a full
// buffer can never deadlock on a gap), and otherwise returns a sink that
// appends to <buffer>/<volume>/<name>.part, resuming where an earlier attempt
// stopped.
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
	if o.Size < journal.HeaderSize+journal.FooterSize || o.Size > n.cfg.MaxFileSize {
		return nil, fmt.Errorf("%w: %s/%s: size %d outside [%d, %d]", push.ErrBadOffer, o.Volume, o.Name,
			o.Size, journal.HeaderSize+journal.FooterSize, n.cfg.MaxFileSize)
	}
	part := filepath.Join(v.dir, o.Name+partExt)
	if err := v.lockIdle(ctx, seq); err != nil {
		return nil, fmt.Errorf("%w: %s/%s: %w", push.ErrUnavailable, o.Volume, o.Name, err)
	}
	defer v.mu.Unlock()
	if v.q.Duplicate(seq) {
		// A held file whose commit failed at the folder sync is renamed but
		// perhaps not durably: the ack waits for a folder sync that succeeds.
		if seq >= v.q.Next() {
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
	if err := v.checkRoom(seq, o.Size-have); err != nil {
		return nil, fmt.Errorf("receive %s/%s: %w", o.Volume, o.Name, err)
	}
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("receive %s/%s: %w", o.Volume, o.Name, bufferErr(err))
	}
	if have > o.Size { // not a prefix of this file
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, fmt.Errorf("receive %s/%s: %w", o.Volume, o.Name, err)
		}
		v.setPart(seq, 0)
		have = 0
	}
	v.receiving[seq] = make(chan struct{})
	return &sink{v: v, o: o, seq: seq, f: f, part: part, off: have}, nil
}

// checkRoom refuses a file of need more bytes with push.ErrBufferFull when
// the destination buffer would pass its limit (except the file destage needs
// next, so a full buffer never deadlocks on a gap) or the disk lacks the
// space. v.mu held.
func (v *volume) checkRoom(seq uint64, need int64) error {
	n := v.n
	var err error
	if held := n.bufBytes.Load(); seq != v.q.Next() && held+need > n.cfg.BufferLimit {
		err = fmt.Errorf("%w: destination buffer holds %d of %d bytes", push.ErrBufferFull, held, n.cfg.BufferLimit)
	} else if free, ok := freeSpace(v.dir); ok && free < need {
		err = fmt.Errorf("%w: %d bytes free on the buffer's disk, file needs %d", push.ErrBufferFull, free, need)
	}
	if err != nil {
		v.refusedFull++
		v.lastFull = n.cfg.Now()
		n.metrics.refusedFull.WithLabelValues(v.name).Inc()
	}
	return err
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
	v    *volume
	o    push.Offer
	seq  uint64
	f    *os.File
	part string
	off  int64
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
	s.v.setPart(s.seq, s.off)
	s.v.mu.Unlock()
	if err != nil {
		return n, fmt.Errorf("receive %s/%s: %w", s.o.Volume, s.o.Name, bufferErr(err))
	}
	return n, nil
}

// Commit verifies the SHA-256 and the journal structure, makes the file
// durable under its final name (fsync file, rename, fsync folder) and hands
// it to the reorder buffer. A file that fails verification is deleted, so the
// next attempt starts from zero.
func (s *sink) Commit(ctx context.Context) error {
	err := s.commit()
	s.v.mu.Lock()
	defer s.v.mu.Unlock()
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
	if _, err := journal.ParseExpect(o.Name, b, o.Volume); err != nil {
		return fail(fmt.Errorf("%w: %w", push.ErrBadOffer, err))
	}
	if err := durable.Sync(s.f); err != nil {
		return fail(err)
	}
	if err := s.f.Close(); err != nil {
		return fail(err)
	}
	final := filepath.Join(s.v.dir, o.Name)
	if err := os.Rename(s.part, final); err != nil {
		return fail(err)
	}
	s.v.mu.Lock()
	s.v.setPart(s.seq, 0)
	if s.v.q.Add(s.seq, o.Size) { // always, while receiving[seq] is set
		s.v.n.bufBytes.Add(o.Size) // held now as a received file
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

// Abort keeps the partial file for a resume, made durable so that its size
// is the resume offset.
func (s *sink) Abort() {
	_ = durable.Sync(s.f)
	s.f.Close()
	s.v.mu.Lock()
	s.v.endReceive(s.seq)
	s.v.mu.Unlock()
}
