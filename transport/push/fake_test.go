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

// memStore keeps files in memory: committed files, and partial files that
// survive an aborted attempt (so a later attempt resumes).
type memStore struct {
	mu        sync.Mutex
	committed map[string][]byte
	partial   map[string][]byte
	aborts    int
	commit    func(ctx context.Context, key string) error // optional hook before storing
}

func newMemStore() *memStore {
	return &memStore{committed: map[string][]byte{}, partial: map[string][]byte{}}
}

func key(o Offer) string { return o.Volume + "/" + o.Name }

func (s *memStore) Accept(ctx context.Context, peer Hello, o Offer) (Sink, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.committed[key(o)]; ok {
		return nil, ErrDuplicate
	}
	return &memSink{s: s, o: o, buf: bytes.Clone(s.partial[key(o)])}, nil
}

func (s *memStore) get(k string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.committed[k]
	return b, ok
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
	k.s.partial[key(k.o)] = bytes.Clone(k.buf)
	k.s.mu.Unlock()
	return len(p), nil
}

func (k *memSink) Commit(ctx context.Context) error {
	if sha256.Sum256(k.buf) != k.o.SHA256 {
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
