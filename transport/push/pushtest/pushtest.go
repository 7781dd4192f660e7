// Package pushtest is a conformance suite for push receivers: every server
// that speaks the LAN push protocol (aimwan dst, the source-edge proxy with a
// destination behind it) should pass Run.
//
// Glossary: a target is one freshly started receiver under test; a file is
// one journal file pushed to it, named by its sequence number.
package pushtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/transport/push"
	"golang.org/x/sync/errgroup"
)

// Target is one receiver under test.
type Target struct {
	Addr   string    // push server address (loopback)
	Auth   push.Auth // what the suite's clients present and trust (the receiver must pin its identity)
	Volume string    // a volume the receiver accepts
	// File returns the content of file seq (from 1) of Volume: valid journal
	// files when the receiver parses them. nil: 600 KiB of random bytes.
	File func(t *testing.T, seq uint64) []byte
	// Stored returns what the receiver holds durably for a file, to compare
	// with what was pushed. nil: contents are not checked.
	Stored func(t *testing.T, volume, name string) ([]byte, bool)
}

// Run runs the suite; newTarget starts a fresh receiver for each test.
func Run(t *testing.T, newTarget func(t *testing.T) Target) {
	tests := []struct {
		name string
		fn   func(t *testing.T, tg *Target)
	}{
		{"Sequential", testSequential},
		{"Concurrent", testConcurrent},
		{"Duplicate", testDuplicate},
		{"ResumeAfterCut", testResumeAfterCut},
		{"ChecksumMismatch", testChecksumMismatch},
		{"CancelThenRetry", testCancelThenRetry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := newTarget(t)
			if tg.File == nil {
				tg.File = randomFile
			}
			tt.fn(t, &tg)
		})
	}
}

func randomFile(_ *testing.T, seq uint64) []byte {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], seq)
	b := make([]byte, 600<<10)
	rand.NewChaCha8(seed).Read(b)
	return b
}

func (tg *Target) offer(t *testing.T, seq uint64) (push.Offer, []byte) {
	b := tg.File(t, seq)
	return push.FileOffer(tg.Volume, seq, b), b
}

func (tg *Target) dial(t *testing.T, addr string) *push.Client {
	t.Helper()
	c, err := push.Dial(context.Background(), addr, push.Hello{Node: "pushtest", Volumes: []string{tg.Volume}}, tg.Auth)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// check compares a stored file with what was pushed, when the target can tell.
func (tg *Target) check(t *testing.T, o push.Offer, want []byte) {
	t.Helper()
	if tg.Stored == nil {
		return
	}
	got, ok := tg.Stored(t, o.Volume, o.Name)
	if !ok {
		t.Errorf("%s/%s acked but not stored", o.Volume, o.Name)
	} else if !bytes.Equal(got, want) {
		t.Errorf("%s/%s stored %d bytes that differ from the %d pushed", o.Volume, o.Name, len(got), len(want))
	}
}

func testSequential(t *testing.T, tg *Target) {
	c := tg.dial(t, tg.Addr)
	for seq := uint64(1); seq <= 4; seq++ {
		o, b := tg.offer(t, seq)
		if err := c.Push(context.Background(), o, bytes.NewReader(b)); err != nil {
			t.Fatalf("push %d: %v", seq, err)
		}
		tg.check(t, o, b)
	}
}

func testConcurrent(t *testing.T, tg *Target) {
	c := tg.dial(t, tg.Addr)
	var g errgroup.Group
	for seq := uint64(1); seq <= 8; seq++ {
		o, b := tg.offer(t, seq)
		g.Go(func() error { return c.Push(context.Background(), o, bytes.NewReader(b)) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 8; seq++ {
		o, b := tg.offer(t, seq)
		tg.check(t, o, b)
	}
}

func testDuplicate(t *testing.T, tg *Target) {
	c := tg.dial(t, tg.Addr)
	o, b := tg.offer(t, 1)
	for i := range 2 {
		if err := c.Push(context.Background(), o, bytes.NewReader(b)); err != nil {
			t.Fatalf("push %d of the same file: %v", i+1, err)
		}
	}
	// A new connection (a restarted sender) gets the same answer.
	if err := tg.dial(t, tg.Addr).Push(context.Background(), o, bytes.NewReader(b)); err != nil {
		t.Fatalf("push again on a new connection: %v", err)
	}
	tg.check(t, o, b)
}

func testResumeAfterCut(t *testing.T, tg *Target) {
	o, b := tg.offer(t, 1)
	relay := testkit.Cutter(t, tg.Addr, 256+int64(len(b))/2)
	err := tg.dial(t, relay).Push(context.Background(), o, bytes.NewReader(b))
	if err == nil {
		t.Fatal("push through a connection cut mid-file was acked")
	}
	if !errors.Is(err, push.ErrUnavailable) {
		t.Fatalf("push through a cut connection: %v, want ErrUnavailable", err)
	}
	if err := retry(t, func() error { return tg.dial(t, tg.Addr).Push(context.Background(), o, bytes.NewReader(b)) }); err != nil {
		t.Fatalf("push after the cut: %v", err)
	}
	tg.check(t, o, b)
}

func testChecksumMismatch(t *testing.T, tg *Target) {
	c := tg.dial(t, tg.Addr)
	o, b := tg.offer(t, 1)
	bad := o
	bad.SHA256[0] ^= 0xff
	if err := c.Push(context.Background(), bad, bytes.NewReader(b)); err == nil {
		t.Fatal("file with a wrong SHA-256 was acked")
	} else if !errors.Is(err, push.ErrChecksum) && !errors.Is(err, push.ErrBadOffer) {
		t.Errorf("wrong SHA-256: %v, want ErrChecksum (or ErrBadOffer)", err)
	}
	if err := c.Push(context.Background(), o, bytes.NewReader(b)); err != nil {
		t.Fatalf("push of the right content after a checksum failure: %v", err)
	}
	tg.check(t, o, b)
}

func testCancelThenRetry(t *testing.T, tg *Target) {
	c := tg.dial(t, tg.Addr)
	o, b := tg.offer(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	r := &cancelingReader{b: b, at: int64(len(b)) / 2, cancel: cancel}
	if err := c.Push(ctx, o, r); err == nil {
		t.Log("push finished before the cancel took effect") // allowed: tiny files
	}
	if err := retry(t, func() error { return c.Push(context.Background(), o, bytes.NewReader(b)) }); err != nil {
		t.Fatalf("push after a canceled push: %v", err)
	}
	tg.check(t, o, b)
}

// cancelingReader cancels the push once a read reaches offset at.
type cancelingReader struct {
	b      []byte
	at     int64
	cancel context.CancelFunc
}

func (r *cancelingReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) >= r.at {
		r.cancel()
	}
	return bytes.NewReader(r.b).ReadAt(p, off)
}

// retry runs fn until it succeeds or fails with something other than a
// retryable refusal (ErrBufferFull, ErrUnavailable: the receiver may still
// be cleaning up the interrupted attempt), for at most 10 s.
func retry(t *testing.T, fn func() error) error {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) ||
			!errors.Is(err, push.ErrBufferFull) && !errors.Is(err, push.ErrUnavailable) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
