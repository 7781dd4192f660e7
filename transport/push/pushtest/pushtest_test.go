package pushtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/transport/push"
)

// memReceiver is a reference receiver: files in memory, partial files kept
// across attempts for resume.
type memReceiver struct {
	mu      sync.Mutex
	stored  map[string][]byte
	partial map[string][]byte
}

func (m *memReceiver) Accept(_ context.Context, _ push.Hello, o push.Offer) (push.Sink, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := o.Volume + "/" + o.Name
	if _, ok := m.stored[k]; ok {
		return nil, push.ErrDuplicate
	}
	return &memSink{m: m, k: k, o: o, buf: bytes.Clone(m.partial[k])}, nil
}

type memSink struct {
	m   *memReceiver
	k   string
	o   push.Offer
	buf []byte
}

func (s *memSink) Offset() int64 { return int64(len(s.buf)) }
func (s *memSink) Write(p []byte) (int, error) {
	s.buf = append(s.buf, p...)
	s.m.mu.Lock()
	s.m.partial[s.k] = s.buf
	s.m.mu.Unlock()
	return len(p), nil
}
func (s *memSink) Commit(context.Context) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	delete(s.m.partial, s.k)
	if sha256.Sum256(s.buf) != s.o.SHA256 {
		return fmt.Errorf("%s: %w", s.k, push.ErrChecksum)
	}
	s.m.stored[s.k] = s.buf
	return nil
}
func (s *memSink) Abort() {}

func TestReferenceReceiver(t *testing.T) {
	Run(t, func(t *testing.T) Target {
		m := &memReceiver{stored: map[string][]byte{}, partial: map[string][]byte{}}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		srv, cli, _ := testkit.Identities()
		auth := push.Auth{Identity: srv, Peers: testkit.Pins(cli)}
		go func() { done <- (&push.Server{Node: "ref", Handler: m, Auth: auth}).Serve(ctx, ln) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
		return Target{
			Addr:   ln.Addr().String(),
			Auth:   push.Auth{Identity: cli, Peers: testkit.Pins(srv)},
			Volume: "vol1",
			Stored: func(_ *testing.T, volume, name string) ([]byte, bool) {
				m.mu.Lock()
				defer m.mu.Unlock()
				b, ok := m.stored[volume+"/"+name]
				return b, ok
			},
		}
	})
}
