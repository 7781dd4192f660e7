package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/aimwan/aimwan/transport/push"
)

// fakeDst is a push.Handler that keeps files in memory. Hooks, when set,
// replace its behaviour.
type fakeDst struct {
	mu    sync.Mutex
	files map[string][]byte // "volume/name" -> bytes

	// accept, if set, runs first; a non-nil error refuses the file.
	accept func(o push.Offer) error
	// sums, if set, answers checksum requests (else unknown-volume); under mu.
	sums func(q push.SumRequest) ([][push.SumSize]byte, error)
}

func (f *fakeDst) Sums(_ context.Context, _ push.Hello, q push.SumRequest) ([][push.SumSize]byte, error) {
	f.mu.Lock()
	sums := f.sums
	f.mu.Unlock()
	if sums == nil {
		return nil, push.ErrUnknownVolume
	}
	return sums(q)
}

var _ push.Handler = (*fakeDst)(nil)

func (f *fakeDst) Accept(_ context.Context, _ push.Hello, o push.Offer) (push.Sink, error) {
	if f.accept != nil {
		if err := f.accept(o); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.files[o.Volume+"/"+o.Name]; ok {
		return nil, push.ErrDuplicate
	}
	return &fakeSink{f: f, o: o}, nil
}

func (f *fakeDst) get(key string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.files[key]
	return b, ok
}

func (f *fakeDst) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.files)
}

type fakeSink struct {
	f   *fakeDst
	o   push.Offer
	buf bytes.Buffer
}

func (s *fakeSink) Offset() int64               { return 0 }
func (s *fakeSink) Write(p []byte) (int, error) { return s.buf.Write(p) }
func (s *fakeSink) Abort()                      {}

func (s *fakeSink) Commit(context.Context) error {
	if sha256.Sum256(s.buf.Bytes()) != s.o.SHA256 {
		return fmt.Errorf("fake dst: %w", push.ErrChecksum)
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if s.f.files == nil {
		s.f.files = map[string][]byte{}
	}
	s.f.files[s.o.Volume+"/"+s.o.Name] = bytes.Clone(s.buf.Bytes())
	return nil
}
