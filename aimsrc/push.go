package aimsrc

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
	"golang.org/x/sync/errgroup"
)

// pushState is a volume's pushing progress, for status.
type pushState struct {
	mu      sync.Mutex
	waiting map[uint64]time.Time // sealed file seq -> time of its first record (estimated until read)
	lastErr string
	errTime time.Time
	broken  map[uint64]string // files that fail validation: never pushed, never deleted
}

func newPushState() *pushState {
	return &pushState{waiting: map[uint64]time.Time{}, broken: map[uint64]string{}}
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

func (s *pushState) setErr(err error, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.lastErr = ""
		return
	}
	s.lastErr, s.errTime = err.Error(), now
}

// pusher pushes one volume's sealed files.
type pusher struct {
	v        *volume
	p        *push.Redialer
	window   int
	retryMax time.Duration
	done     chan struct{} // a push finished: a window slot is free
}

// Serve pushes sealed files in file-sequence order, up to window at once,
// until ctx ends. Each file is retried with backoff until acked, then
// deleted. A restart resumes from the files on disk.
func (s *pusher) Serve(ctx context.Context) error {
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
	if !s.pushRetry(ctx, o, b) {
		return
	}
	if err := os.Remove(path); err != nil {
		s.v.log.Error("push: cannot delete acked file", "volume", v.name, "file", name, "err", err)
	}
	v.pushing.mu.Lock()
	delete(v.pushing.waiting, seq)
	v.pushing.mu.Unlock()
	v.sealedBytes.Add(-int64(len(b)))
	v.sealedFiles.Add(-1)
	v.pushedN.Add(1)
	v.pushedB.Add(uint64(len(b)))
	v.space.kick()
}

// pushRetry pushes until acked (true) or ctx ends (false), backing off
// exponentially between attempts up to retryMax.
func (s *pusher) pushRetry(ctx context.Context, o push.Offer, b []byte) bool {
	v := s.v
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := s.p.Push(ctx, o, bytes.NewReader(b))
		if err == nil {
			v.pushing.setErr(nil, v.now())
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		err = fmt.Errorf("push %s of volume %s to %s: %w", o.Name, v.name, s.p.Addr, err)
		v.pushing.setErr(err, v.now())
		level := slog.LevelDebug
		if attempt == 1 || attempt%10 == 0 {
			level = slog.LevelWarn
		}
		v.log.Log(ctx, level, "push failed, retrying", "err", err, "attempt", attempt, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		backoff = min(backoff*2, s.retryMax)
	}
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
