package push

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// relay forwards connections to a target, counts them, and can cut every
// connection it holds at once (a receiver restart, seen from the client).
type relay struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []net.Conn
	count int
}

func newRelay(t *testing.T, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); r.cut(); wg.Wait() })
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, in, out)
			r.count++
			r.mu.Unlock()
			wg.Go(func() { io.Copy(out, in); out.Close() })
			wg.Go(func() { io.Copy(in, out); in.Close() })
		}
	})
	return r
}

func (r *relay) addr() string { return r.ln.Addr().String() }

// cut closes every connection relayed so far.
func (r *relay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}

func (r *relay) dials() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

// TestRedialerLiveness: pushes share one connection; a connection cut
// while idle is replaced within the next push, which succeeds; a verdict
// (NACK) and a canceled push keep the connection; a bad offer never dials.
func TestRedialerLiveness(t *testing.T) {
	store := newMemStore()
	refuse := map[string]bool{"vol1/0000000000000004.aimj": true}
	store.commit = func(_ context.Context, k string) error {
		if refuse[k] {
			delete(refuse, k)
			return ErrBufferFull
		}
		return nil
	}
	rl := newRelay(t, startServer(t, &Server{Handler: store}))
	r := &Redialer{Addr: rl.addr(), Hello: Hello{Node: "src"}, Dial: DialConfig{Auth: clientAuth()}}
	t.Cleanup(func() { r.Close() })
	ctx := context.Background()
	push := func(seq uint64) error {
		b, o := testFile(seq, 300<<10)
		return r.Push(ctx, o, bytes.NewReader(b))
	}
	for seq := uint64(1); seq <= 2; seq++ {
		if err := push(seq); err != nil {
			t.Fatal(err)
		}
	}
	if n := rl.dials(); n != 1 {
		t.Fatalf("%d connections for two pushes, want 1", n)
	}
	rl.cut() // the receiver restarts while the connection is idle
	if err := push(3); err != nil {
		t.Fatalf("push after the connection was cut: %v", err)
	}
	if n := rl.dials(); n != 2 {
		t.Fatalf("%d connections after one cut, want 2", n)
	}
	var re *RemoteError
	if err := push(4); !errors.As(err, &re) || !errors.Is(err, ErrBufferFull) {
		t.Fatalf("refused push: %v, want the receiver's buffer-full verdict", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	b, o := testFile(5, 300<<10)
	if err := r.Push(cctx, o, bytes.NewReader(b)); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled push: %v", err)
	}
	for seq := uint64(4); seq <= 5; seq++ {
		if err := push(seq); err != nil {
			t.Fatal(err)
		}
	}
	if n := rl.dials(); n != 2 {
		t.Fatalf("%d connections, want 2: a verdict or a canceled push dropped a good connection", n)
	}
	if err := push(5); err != nil { // already stored: a duplicate is success
		t.Fatalf("duplicate: %v", err)
	}
	for seq := uint64(1); seq <= 5; seq++ {
		want, o := testFile(seq, 300<<10)
		if got, ok := store.get(key(o)); !ok || !bytes.Equal(got, want) {
			t.Errorf("file %d not stored intact", seq)
		}
	}
	bad := Offer{Volume: "vol1", Name: "x", Seq: 1}
	if err := (&Redialer{Addr: "127.0.0.1:1", Hello: Hello{Node: "src"}, Dial: DialConfig{Auth: clientAuth()}}).Push(ctx, bad, nil); !errors.Is(err, ErrBadOffer) {
		t.Fatalf("bad offer: %v, want ErrBadOffer before any dial", err)
	}
}

// TestRedialerUnreachable: a next hop that is down is ErrUnavailable.
func TestRedialerUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := &Redialer{Addr: addr, Hello: Hello{Node: "src"}, Dial: DialConfig{Auth: clientAuth()}}
	b, o := testFile(1, 10)
	if err := r.Push(context.Background(), o, bytes.NewReader(b)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("push to a closed port: %v, want ErrUnavailable", err)
	}
}
