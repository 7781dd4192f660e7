package aimsrc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// pushState is a volume's pushing progress, for status.
type pushState struct {
	mu      sync.Mutex
	waiting map[uint64]time.Time // sealed file seq -> time of its first record (estimated until read)
	lastErr string
	errTime time.Time
	broken  map[uint64]string // files that fail validation: never pushed, never deleted
	// refused are files the next hop refused with a verdict that needs an
	// operator (conflict, bad offer, unknown volume): kept, retried slowly,
	// shown in status until acked or superseded.
	refused    map[uint64]string
	starts     map[uint64]bool   // sealed files that start a journal stream (an initialize)
	streamFrom uint64            // the newest file that starts a stream: older files are superseded
	superseded uint64            // files dropped as superseded since start
	refusals   map[string]uint64 // refusals that need an operator since start, by push code
}

func newPushState() *pushState {
	return &pushState{waiting: map[uint64]time.Time{}, broken: map[uint64]string{}, refused: map[uint64]string{},
		starts: map[uint64]bool{}, refusals: map[string]uint64{}}
}

// setStreamStart records that file seq starts a journal stream.
func (s *pushState) setStreamStart(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streamFrom = max(s.streamFrom, seq)
}

// markStart records that sealed file seq starts a journal stream.
func (s *pushState) markStart(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.starts[seq] = true
	s.streamFrom = max(s.streamFrom, seq)
}

// supersededBy returns the file that starts a newer stream than file seq's,
// or 0.
func (s *pushState) supersededBy(seq uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streamFrom > seq {
		return s.streamFrom
	}
	return 0
}

// pendingBelow reports whether a file of seqs below seq still waits to be
// pushed (files that fail validation are never pushed: they do not count).
func (s *pushState) pendingBelow(seqs []uint64, seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range seqs {
		if q >= seq {
			return false
		}
		if _, broken := s.broken[q]; !broken {
			return true
		}
	}
	return false
}

// isStart reports whether sealed file seq (at path) starts a stream: known
// from its seal or an earlier look, else read from its header (a file
// listed before its seal was reported must not slip past the barrier).
func (s *pushState) isStart(seq uint64, path string) bool {
	s.mu.Lock()
	start, known := s.starts[seq]
	s.mu.Unlock()
	if known {
		return start
	}
	h, err := journal.ReadHeader(path)
	if err != nil {
		return false // pushFile reports the file as broken
	}
	start = h.Start != journal.StartNone
	s.mu.Lock()
	s.starts[seq] = start
	if start {
		s.streamFrom = max(s.streamFrom, seq)
	}
	s.mu.Unlock()
	return start
}

// oldest returns the first-record time of the oldest sealed file waiting.
func (s *pushState) oldest() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t time.Time
	for _, ft := range s.waiting {
		if t.IsZero() || ft.Before(t) {
			t = ft
		}
	}
	return t
}

// setWaiting records the first-record time of a sealed file.
func (s *pushState) setWaiting(seq uint64, first time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiting[seq] = first
}

func (s *pushState) setWaitingIfAbsent(seq uint64, first time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.waiting[seq]; !ok {
		s.waiting[seq] = first
	}
}

// setErr records the newest push error; nil clears it, except while a
// refusal that needs an operator stands (it stays the last error).
func (s *pushState) setErr(err error, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.lastErr = ""
		for _, seq := range slices.Sorted(maps.Keys(s.refused)) {
			s.lastErr = s.refused[seq]
			break
		}
		return
	}
	s.lastErr, s.errTime = err.Error(), now
}

// settle forgets the refusal of file seq (acked, or dropped).
func (s *pushState) settle(seq uint64) {
	s.mu.Lock()
	delete(s.refused, seq)
	delete(s.starts, seq)
	s.mu.Unlock()
}

// needsOperator reports whether a push error is a verdict that resending
// the file unchanged does not cure.
func needsOperator(err error) bool {
	return errors.Is(err, push.ErrConflict) || errors.Is(err, push.ErrBadOffer) || errors.Is(err, push.ErrUnknownVolume)
}

// pusher pushes one volume's sealed files.
type pusher struct {
	v        *volume
	p        *push.Redialer
	pauses   *pauses
	window   int
	retryMax time.Duration
	done     chan struct{} // a push finished: a window slot is free
}

// Serve pushes sealed files in file-sequence order, up to window at once,
// until ctx ends. Each file is retried with backoff until acked, then
// deleted. A restart resumes from the files on disk. While the volume is
// paused nothing is pushed: a pause cancels the pushes in flight (their
// files stay and go first after the resume).
func (s *pusher) Serve(ctx context.Context) error {
	for ctx.Err() == nil {
		by, changed := s.pauses.of(s.v.name)
		if by != "" {
			select {
			case <-ctx.Done():
			case <-changed:
			}
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		watched := make(chan struct{})
		go func() { // cancels the run when this volume is paused
			defer close(watched)
			for {
				select {
				case <-changed:
				case <-rctx.Done():
					return
				}
				if by, changed = s.pauses.of(s.v.name); by != "" {
					cancel()
					return
				}
			}
		}()
		err := s.run(rctx)
		cancel()
		<-watched
		if err != nil {
			return err
		}
	}
	return nil
}

// run pushes until ctx ends (see Serve).
func (s *pusher) run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.window)
	var last uint64
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for ctx.Err() == nil {
		seqs, err := journal.ListSealed(s.v.dir)
		if err != nil {
			s.v.log.Error("push: cannot list journal files", "volume", s.v.name, "err", err)
		}
		for _, seq := range seqs {
			if seq <= last {
				continue
			}
			if s.v.pushing.isStart(seq, filepath.Join(s.v.dir, journal.FileName(seq))) && s.v.pushing.pendingBelow(seqs, seq) {
				// The first file of a new stream waits until every file
				// before it is acked or superseded: the far end rebinds
				// there, and refuses the old stream from then on.
				break
			}
			if !g.TryGo(func() error { s.pushFile(gctx, seq); return nil }) {
				break
			}
			last = seq
		}
		select {
		case <-ctx.Done():
		case <-s.v.pushKick:
		case <-s.done:
		case <-tick.C:
		}
	}
	return g.Wait()
}

// pushFile pushes one file until it is acked (then deletes it) or ctx ends.
func (s *pusher) pushFile(ctx context.Context, seq uint64) {
	defer func() {
		select {
		case s.done <- struct{}{}:
		default:
		}
	}()
	v := s.v
	name := journal.FileName(seq)
	path := filepath.Join(v.dir, name)
	b, err := os.ReadFile(path)
	if err != nil {
		s.fail(seq, fmt.Errorf("read %s: %w", name, err))
		return
	}
	f, err := journal.ParseExpect(name, b, v.name)
	if err != nil {
		s.fail(seq, err)
		return
	}
	// The file's oldest write, when the seal did not record it (a file
	// from before a restart): the oldest record time. That is exact for a
	// plain file; a coalesced record carries the newest time of the writes
	// it merged, so for such a file it may be later than the window's first
	// write, which the seal (SealedFile.FirstTime) knew.
	first := v.now()
	for i, r := range f.Records {
		if i == 0 || r.Time.Before(first) {
			first = r.Time
		}
	}
	v.pushing.setWaitingIfAbsent(seq, first)
	o := push.FileOffer(v.name, seq, b)
	switch s.pushRetry(ctx, o, b) {
	case pushCanceled:
		return
	case pushSuperseded:
		s.supersede(seq, f)
	}
	if err := os.Remove(path); err != nil {
		s.v.log.Error("push: cannot delete acked file", "volume", v.name, "file", name, "err", err)
	}
	v.pushing.mu.Lock()
	delete(v.pushing.waiting, seq)
	v.pushing.mu.Unlock()
	v.pushing.settle(seq)
	v.sealedBytes.Add(-int64(len(b)))
	v.sealedFiles.Add(-1)
	v.pushedN.Add(1)
	v.pushedB.Add(uint64(len(b)))
	v.rate.add(v.now(), int64(len(b)))
	v.space.kick()
}

// Outcomes of pushRetry.
const (
	pushAcked      = iota // the far end holds the file
	pushSuperseded        // refused as not of the far end's stream, and an initialize supersedes it
	pushCanceled          // ctx ended
)

// pushRetry pushes until acked, superseded or ctx ends, backing off
// exponentially between attempts up to retryMax (at once for a refusal
// that needs an operator, which stays in status until it is resolved).
func (s *pusher) pushRetry(ctx context.Context, o push.Offer, b []byte) int {
	v := s.v
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := s.p.Push(ctx, o, bytes.NewReader(b))
		if err == nil {
			v.pushing.settle(o.Seq)
			v.pushing.setErr(nil, v.now())
			return pushAcked
		}
		if ctx.Err() != nil {
			return pushCanceled
		}
		if errors.Is(err, push.ErrConflict) && v.pushing.supersededBy(o.Seq) != 0 {
			return pushSuperseded
		}
		err = fmt.Errorf("push %s of volume %s to %s: %w", o.Name, v.name, s.p.Addr, err)
		v.pushing.setErr(err, v.now())
		level := slog.LevelDebug
		if attempt == 1 || attempt%10 == 0 {
			level = slog.LevelWarn
		}
		if needsOperator(err) {
			v.pushing.mu.Lock()
			v.pushing.refused[o.Seq] = err.Error()
			v.pushing.refusals[push.CodeOf(err).String()]++
			v.pushing.mu.Unlock()
			level, backoff = slog.LevelError, s.retryMax
		}
		v.log.Log(ctx, level, "push failed, retrying", "err", err, "attempt", attempt, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return pushCanceled
		case <-t.C:
		}
		backoff = min(backoff*2, s.retryMax)
	}
}

// supersede drops a file of an old stream that the far end refused: an
// initialize started a newer stream (at a later file), and its copy of the
// whole volume includes every write of this file. Its markers are lost;
// they are logged.
func (s *pusher) supersede(seq uint64, f *journal.File) {
	var markers []string
	for _, r := range f.Records {
		if r.Kind.IsMarker() {
			markers = append(markers, r.Kind.String()+" "+r.Label)
		}
	}
	s.v.pushing.mu.Lock()
	s.v.pushing.superseded++
	s.v.pushing.mu.Unlock()
	s.v.log.Warn("push: file of an old journal stream refused by the far end; dropped, an initialize supersedes it",
		"file", seq, "initialize_from_file", s.v.pushing.supersededBy(seq), "markers_lost", markers)
}

// fail records a file that cannot be pushed (unreadable or invalid). It
// stays on disk; the volume's status shows the error.
func (s *pusher) fail(seq uint64, err error) {
	s.v.log.Error("push: journal file cannot be pushed; it is kept", "volume", s.v.name, "err", err)
	s.v.pushing.mu.Lock()
	s.v.pushing.broken[seq] = err.Error()
	s.v.pushing.mu.Unlock()
	s.v.pushing.setErr(err, s.v.now())
}
