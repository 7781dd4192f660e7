package push

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
)

// fakeHandler is a Handler with function fields.
type fakeHandler struct {
	accept func(ctx context.Context, peer Hello, o Offer) (Sink, error)
}

func (h *fakeHandler) Accept(ctx context.Context, peer Hello, o Offer) (Sink, error) {
	return h.accept(ctx, peer, o)
}

var _ Handler = (*fakeHandler)(nil)

// fakeSink is a Sink with function fields; nil fields do nothing.
type fakeSink struct {
	offset func() int64
	write  func(p []byte) (int, error)
	commit func(ctx context.Context) error
	abort  func()
}

var _ Sink = (*fakeSink)(nil)

func (s *fakeSink) Offset() int64 {
	if s.offset == nil {
		return 0
	}
	return s.offset()
}

func (s *fakeSink) Write(p []byte) (int, error) {
	if s.write == nil {
		return len(p), nil
	}
	return s.write(p)
}

func (s *fakeSink) Commit(ctx context.Context) error {
	if s.commit == nil {
		return nil
	}
	return s.commit(ctx)
}

func (s *fakeSink) Abort() {
	if s.abort != nil {
		s.abort()
	}
}

// memStore is a Handler keeping files in memory: committed files, and
// partial files that survive an aborted attempt (so a later attempt
// resumes), with counters the tests check.
type memStore struct {
	mu        sync.Mutex
	committed map[string][]byte
	partial   map[string][]byte
	resumes   []int64 // resume offset of every accepted attempt
	received  int64   // bytes written to sinks, all attempts
	accepts   int
	dups      int
	aborts    int
	commit    func(ctx context.Context, key string) error // optional hook before storing
}

var _ Handler = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{committed: map[string][]byte{}, partial: map[string][]byte{}}
}

func key(o Offer) string { return o.Volume + "/" + o.Name }

func (s *memStore) Accept(ctx context.Context, peer Hello, o Offer) (Sink, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accepts++
	if _, ok := s.committed[key(o)]; ok {
		s.dups++
		return nil, fmt.Errorf("%s: %w", key(o), ErrDuplicate)
	}
	k := &memSink{s: s, o: o, buf: bytes.Clone(s.partial[key(o)])}
	s.resumes = append(s.resumes, int64(len(k.buf)))
	return k, nil
}

func (s *memStore) get(k string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.committed[k]
	return b, ok
}

func (s *memStore) counts() (accepts, dups, aborts int, received int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepts, s.dups, s.aborts, s.received
}

type memSink struct {
	s   *memStore
	o   Offer
	buf []byte
}

var _ Sink = (*memSink)(nil)

func (k *memSink) Offset() int64 { return int64(len(k.buf)) }

func (k *memSink) Write(p []byte) (int, error) {
	k.buf = append(k.buf, p...)
	k.s.mu.Lock()
	k.s.partial[key(k.o)] = k.buf // bytes below len(k.buf) never change
	k.s.received += int64(len(p))
	k.s.mu.Unlock()
	return len(p), nil
}

func (k *memSink) Commit(ctx context.Context) error {
	if sha256.Sum256(k.buf) != k.o.SHA256 {
		k.s.mu.Lock()
		delete(k.s.partial, key(k.o))
		k.s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrChecksum, key(k.o))
	}
	if k.s.commit != nil {
		if err := k.s.commit(ctx, key(k.o)); err != nil {
			return err
		}
	}
	k.s.mu.Lock()
	defer k.s.mu.Unlock()
	k.s.committed[key(k.o)] = k.buf
	delete(k.s.partial, key(k.o))
	return nil
}

func (k *memSink) Abort() {
	k.s.mu.Lock()
	k.s.aborts++
	k.s.mu.Unlock()
}
